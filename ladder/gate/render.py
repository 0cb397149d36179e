"""A gate's verdicts as people and CI tools read them: one line per check, one Document (Markdown, HTML) and
JUnit XML."""

from __future__ import annotations

from typing import Literal
from xml.sax.saxutils import escape, quoteattr

from ladder.gate.verdict import VISIBLE_DROP, GateCheck, GateResult
from ladder.report.document import Block, Document, Items, Paragraph, Section, Table
from ladder.scoring.format import interval_text, p_text


def _p(p: float) -> str:
    return p_text(p)


WORDS = {"pass": "pass", "regression": "REGRESSION", "inconclusive": "INCONCLUSIVE"}


def why(result: GateResult, c: GateCheck) -> str:
    """The verdict in words: what the interval rules out, and for an inconclusive check what would decide it."""
    m = result.margin
    if c.verdict == "pass":
        return f"the interval rules out a drop larger than {m:g}"
    if c.verdict == "regression":
        return f"a drop beyond {m:g} is shown"
    decide = (
        f"about {c.n_to_decide} paired examples would decide at this margin and spread"
        if c.n_to_decide
        else "no number of examples decides it at this margin (the difference sits on it)"
    )
    return (
        f"the interval reaches below -{m:g} but no drop beyond it is shown: the gate cannot tell; {decide}; "
        f"it would pass at a margin of {c.passing_margin:.3f}"
    )


def check_line(result: GateResult, c: GateCheck) -> str:
    cmp = c.comparison
    return (
        f"{WORDS[c.verdict]}: {result.rung} {c.metric} {c.candidate_mean:.3f} vs baseline {c.baseline_mean:.3f}, "
        f"Δ {cmp.delta:+.3f} {interval_text(cmp.low, cmp.high, signed=True)}, {_p(c.p_regression)} ({cmp.method}; "
        f"{cmp.wins} better, {cmp.losses} worse, {c.changed_outputs} outputs changed); {why(result, c)}; n={result.n}, "
        f"margin {result.margin}, alpha {result.alpha}; this gate sees drops of {c.mde:.3f} or more "
        f"(power {c.power_at_visible_drop:.0%} against a {VISIBLE_DROP:.2f} drop)"
    )


HEADS = {
    "pass": "✅ ladder gate: PASS",
    "regression": "❌ ladder gate: REGRESSION",
    "inconclusive": "⚠️ ladder gate: INCONCLUSIVE",
}


def gate_document(results: list[GateResult]) -> Document:
    """Every gate's verdict as one report document: Markdown for a pull-request comment, HTML for a dashboard."""
    verdicts = {r.verdict for r in results}
    overall = "regression" if "regression" in verdicts else "inconclusive" if "inconclusive" in verdicts else "pass"
    sections = []
    for k, result in enumerate(results):
        rows = []
        for c in result.checks:
            cmp = c.comparison
            rows.append(
                [
                    c.metric,
                    f"{c.baseline_mean:.3f}",
                    f"{c.candidate_mean:.3f}",
                    f"{cmp.delta:+.3f} {interval_text(cmp.low, cmp.high, signed=True)}",
                    f"{cmp.wins} / {cmp.losses}",
                    _p(c.p_regression),
                    f"**{WORDS[c.verdict]}**",
                    str(c.n_to_decide) if c.n_to_decide else "—",
                    f"{c.mde:.3f}",
                    f"{c.power_at_visible_drop:.0%}",
                ]
            )
        blocks: list[Block] = [
            Paragraph(
                f"**{HEADS[result.verdict]}** — `{result.task_name}` / `{result.rung}` on {result.split} "
                f"(n={result.n}, paired on the same examples, margin {result.margin:g}, alpha {result.alpha:g})"
            ),
            Table(
                [
                    "metric",
                    "baseline",
                    "candidate",
                    "Δ [95% CI]",
                    "better / worse",
                    "p (drop beyond margin)",
                    "verdict",
                    "n to decide",
                    "detectable drop (80% power)",
                    "power vs 5-pt drop",
                ],
                rows,
            ),
            Items([f"{c.metric}: {why(result, c)}" for c in result.checks] + [f"note: {n}" for n in result.notes]),
        ]
        if result.verdict == "inconclusive" and result.on_inconclusive:
            blocks.append(
                Paragraph(
                    f"Inconclusive counts as **{result.on_inconclusive}** here (`--on-inconclusive "
                    f"{result.on_inconclusive}`)."
                )
            )
        sections.append(Section(f"gate-{k}", f"{result.task_name} / {result.rung}" if len(results) > 1 else "", blocks))
    sections.append(
        Section(
            "rule",
            "How to read it",
            [
                Paragraph(
                    "Non-inferiority on the same examples: **pass** when the 95% interval of the paired difference (candidate − "
                    "baseline) rules out a drop larger than the margin; **regression** when a drop beyond the margin is shown "
                    "(exact McNemar for yes/no scores without a margin, paired bootstrap otherwise); **inconclusive** when the "
                    "interval allows such a drop but does not show it: the gate could not have seen a regression, so it does not "
                    "say pass. The detectable drop assumes independent errors between the two runs (a conservative bound)."
                )
            ],
        )
    )
    return Document(title=f"ladder gate: {overall.upper()}", sections=sections)


def render_gate_markdown(result: GateResult) -> str:
    from ladder.report.markdown import render_document

    return render_document(gate_document([result]))


def render_as(doc: Document, fmt: Literal["md", "html"]) -> str:
    if fmt == "md":
        from ladder.report.markdown import render_document

        return render_document(doc)
    from ladder.report.html import render_html

    return render_html(doc)


def render_gate(results: list[GateResult], fmt: Literal["md", "html"]) -> str:
    return render_as(gate_document(results), fmt)


def render_junit(results: list[GateResult]) -> str:
    """One <testsuite> per gate, one <testcase> per metric checked; a regression is a <failure>; an inconclusive
    check is a <failure> with its own message, or <skipped> where inconclusive counts as a pass."""
    suites = []
    failures = skipped = 0
    for result in results:
        cases = []
        suite_failures = suite_skipped = 0
        for c in result.checks:
            body = escape(check_line(result, c))
            if c.verdict == "regression" or (c.verdict == "inconclusive" and result.on_inconclusive != "pass"):
                suite_failures += 1
                inner = f"<failure message={quoteattr(c.verdict + ': ' + c.metric)}>{body}</failure>"
            elif c.verdict == "inconclusive":
                suite_skipped += 1
                inner = f"<skipped message={quoteattr('inconclusive: ' + c.metric)}>{body}</skipped>"
            else:
                inner = f"<system-out>{body}</system-out>"
            cases.append(
                f"    <testcase classname={quoteattr('ladder.gate.verdict.' + result.task_name)} "
                f'name={quoteattr(result.rung + "." + c.metric)} time="0">{inner}</testcase>'
            )
        failures += suite_failures
        skipped += suite_skipped
        suites.append(
            f"  <testsuite name={quoteattr('ladder gate ' + result.task_name + ' ' + result.rung)} "
            f'tests="{len(result.checks)}" failures="{suite_failures}" errors="0" skipped="{suite_skipped}">\n'
            + "\n".join(cases)
            + "\n  </testsuite>"
        )
    tests = sum(len(r.checks) for r in results)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuites tests="{tests}" failures="{failures}" skipped="{skipped}">\n'
        + "\n".join(suites)
        + "\n</testsuites>\n"
    )


def _github(text: str, property: bool = False) -> str:
    """GitHub Actions' escaping of a workflow command's message (and, ``property``, of a property's value)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if property else text


ANNOTATION = {"regression": "error", "inconclusive": "warning", "pass": "notice"}


def render_github_annotations(results: list[GateResult]) -> str:
    """One GitHub Actions annotation per check (``::error`` a regression, ``::warning`` an inconclusive check,
    ``::notice`` a pass), titled with the gate, its message the check's line: printed to stdout inside a workflow,
    they show on the run's page and the pull request."""
    lines = []
    for result in results:
        for c in result.checks:
            title = _github(f"ladder gate {result.task_name}/{result.rung} {c.metric}: {WORDS[c.verdict]}", True)
            lines.append(f"::{ANNOTATION[c.verdict]} title={title}::{_github(check_line(result, c))}")
    return "\n".join(lines) + ("\n" if lines else "")
