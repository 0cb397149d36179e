"""A migration as people read it, from its record alone (``migration.json``): the verdict, old against new per rung
(Δ with intervals, the gate's verdict, cost per 1k calls side by side), the examples won and lost, and how to read
it. One Document, rendered as Markdown (pull requests) and as one self-contained HTML file."""

from __future__ import annotations

from typing import Literal

from ladder.decide.cost import money
from ladder.gate.migration import Migration, MigrationCandidate
from ladder.gate.render import render_as
from ladder.record import RungCost
from ladder.report.document import Block, Document, Items, Paragraph, Section, Table
from ladder.scoring.format import interval_text, p_text

EXAMPLES_SHOWN = 5  # won and lost test examples shown per new rung
CELL = 160

WORDS = {
    "non-inferior": "**non-inferior**",
    "regression": "**worse**",
    "inconclusive": "inconclusive",
    "untrusted": "untrusted",
}
HEADS = {"migrate": "✅ MIGRATE", "stay": "⛔ STAY", "inconclusive": "⚠️ INCONCLUSIVE"}


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= CELL else text[: CELL - 1] + "…"


def _per_1k(cost: RungCost | None) -> str:
    return money(cost.cost_per_1k_calls, cost.unit) if cost is not None else "—"


def _adapt(cost: RungCost | None) -> str:
    return money(cost.adaptation_cost, cost.unit) if cost is not None else "—"


def _row(m: Migration, c: MigrationCandidate) -> list[str]:
    cmp = c.comparison
    name = f"**{c.rung}**" if c.rung == m.rung else c.rung
    return [
        f"new: {name}",
        m.new_model.name,
        f"{c.test.mean:.3f} {interval_text(c.test.low, c.test.high)}",
        f"{cmp.delta:+.3f} {interval_text(cmp.low, cmp.high, signed=True)}",
        f"{len(c.won)} / {len(c.lost)}",
        c.gate_verdict or "—",
        p_text(c.p_adjusted, compact=True) if c.verdict != "untrusted" else "—",
        WORDS[c.verdict] + (f" ({c.untrusted})" if c.untrusted else ""),
        str(c.n_to_decide) if c.n_to_decide else "—",
        _per_1k(c.cost),
        _adapt(c.cost),
    ]


def _examples(m: Migration, c: MigrationCandidate) -> list[Block]:
    rows = []
    for kind, ids in (("won", c.won), ("lost", c.lost)):
        for i in ids[:EXAMPLES_SHOWN]:
            ex = m.examples[i]
            rows.append([kind, i, _cut(ex.input), ex.target, _cut(ex.shipped), _cut(ex.outputs.get(c.rung, ""))])
    if not rows:
        return [Paragraph(f"{c.rung}: no test example scored differently from {m.shipped.rung}.")]
    return [
        Paragraph(
            f"**{c.rung}** against {m.shipped.rung}: {len(c.won)} won, {len(c.lost)} lost "
            f"(up to {EXAMPLES_SHOWN} of each shown; every id is in migration.json)."
        ),
        Table(["", "id", "input", "target", f"shipped ({m.shipped.rung})", f"new ({c.rung})"], rows),
    ]


def migration_document(m: Migration) -> Document:
    s = m.shipped
    header = [
        "rung",
        "base model",
        f"test {m.metric} [95% CI]",
        "Δ vs shipped [95% CI]",
        "won / lost",
        "gate alone",
        "Holm p (non-inferiority)",
        "verdict",
        "n to decide",
        "cost per 1k calls",
        "to adapt",
    ]
    rows = [
        [
            f"shipped: {s.rung}",
            s.model.name,
            f"{s.test.mean:.3f} {interval_text(s.test.low, s.test.high)}",
            "—",
            "—",
            "—",
            "—",
            "reference",
            "—",
            _per_1k(s.cost),
            _adapt(s.cost),
        ]
    ] + [_row(m, c) for c in m.candidates]
    chosen = {i + 1 for i, c in enumerate(m.candidates) if c.rung == m.rung}
    opening: list[Block] = [
        Paragraph(f"**{HEADS[m.verdict]}** — {m.summary}"),
        Paragraph(
            f"`{m.task_name}`: what ships today is `{s.rung}` on `{s.model.name}` ({s.model.backend}, run {s.run_id}); "
            f"the task was climbed again on `{m.new_model.name}` ({m.new_model.backend}, run {m.new_run_id}) and every "
            f"new rung was gated against it on the same {m.n} test examples (margin {m.margin:g}, alpha {m.alpha:g})."
        ),
    ]
    sections = [
        Section("verdict", "", opening),
        Section("rungs", "Old against new, per rung", [Table(header, rows, frozenset(chosen)), Items(m.reasons)]),
    ]
    if m.skipped:
        sections[-1].blocks.append(Items([f"{k.name}: not run: {k.reason}" for k in m.skipped]))
    examples: list[Block] = []
    for c in m.candidates:
        examples += _examples(m, c)
    sections.append(Section("examples", "Examples won and lost", examples))
    sections.append(
        Section(
            "method",
            "How to read it",
            [
                Paragraph(
                    "Each new rung is paired with the shipped rung on the same test examples (the run's --limit). "
                    "**gate alone** is what `ladder gate` says of that rung by itself: pass when the 95% interval of the "
                    "paired difference (new − shipped) rules out a drop larger than the margin, regression when a drop "
                    "beyond it is shown, inconclusive otherwise. Choosing the cheapest of several passing rungs would "
                    "promise more than one gate's 95%, so a rung is **non-inferior** only when its gate passes and its "
                    "one-sided p-value (share of the paired bootstrap's differences below −margin) stays at most "
                    "alpha/2 after Holm's adjustment over the rungs gated. **Migrate** names the cheapest non-inferior rung "
                    "(total cost at the task's expected volume); **stay** means every trusted rung is shown worse; "
                    "otherwise the migration is **inconclusive**, with the examples that would decide the closest rung. "
                    "Costs are each run's own measurement on its own machine and backend: compare them where both runs "
                    "used the same machine, or where the task gives token prices."
                )
            ],
        )
    )
    footer = f"ladder {m.ladder_version} · migration created {m.created}" + (f" · `{m.command}`" if m.command else "")
    title = f"Migration of {m.task_name}: {s.rung} on {s.model.name} → {m.new_model.name}"
    return Document(title=title, sections=sections, footer=footer)


def render_migration(m: Migration, fmt: Literal["md", "html"]) -> str:
    return render_as(migration_document(m), fmt)
