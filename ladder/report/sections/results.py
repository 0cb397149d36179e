"""The results: the opening summary, paired comparisons, the noise floor, the diagnosis, every metric, the decisions."""

from __future__ import annotations

from ladder.decide.diagnosis import gap_kind
from ladder.record import AssessmentRun
from ladder.report.document import (
    Block,
    Figure,
    Items,
    Notice,
    Paragraph,
    Section,
    Table,
)
from ladder.report.sections.cells import chosen_rung, ci, delta, interval, p_text
from ladder.scoring.format import interval_text


def opening(run: AssessmentRun) -> Section:
    metric, threshold, policy = run.target.metric, run.target.threshold, run.spec.policy
    blocks: list[Block] = []
    if run.status != "complete":
        blocks.append(
            Notice(f"**Run {run.status}**" + (f": {run.error}" if run.error else "") + " — results below are partial.")
        )
    if run.recommendation is not None:
        blocks.append(Paragraph(f"**Recommendation:** {run.recommendation.summary}."))
        if run.recommendation.reasons:
            blocks.append(Items(list(run.recommendation.reasons)))
    blocks.append(
        Paragraph(
            f"Target: {metric} ≥ {threshold:.3f}, decided on the dev split; test is held out and reported beside it. "
            "Intervals are 95% (Wilson for yes/no metrics, bootstrap otherwise); Δ is a paired comparison with the "
            "rung before (same examples; exact McNemar p for yes/no metrics, paired bootstrap otherwise). "
            f"A rung meets the target when its dev {'interval' if policy.confidence == 'lower_bound' else 'mean'} "
            "is at or above it, shows a gap when its whole interval is below it, and is inconclusive otherwise"
            + (" (every rung was run: --exhaustive)." if run.exhaustive else ".")
        )
    )
    rows = []
    for i, r in enumerate(run.rungs):
        previous = run.rungs[i - 1] if i else None
        rows.append(
            [
                r.name,
                ci(r.splits["dev"].deciding(metric)),
                ci(r.splits["test"].deciding(metric)),
                delta(r, previous, "test", metric),
                f"{r.splits['test'].invalid_share:.1%}",
                r.decision.status,
                r.decision.action,
            ]
        )
    for s in run.skipped:
        rows.append([s.name, "—", "—", "—", "—", "—", f"skipped: {s.reason}"])
    chosen = chosen_rung(run)
    blocks.append(
        Table(
            [
                "rung",
                f"dev {metric}",
                f"test {metric}",
                "Δ test vs previous",
                "invalid outputs (test)",
                "dev status",
                "decision",
            ],
            rows,
            frozenset(i for i, r in enumerate(run.rungs) if r.name == chosen),
        )
    )
    if run.rungs:
        blocks.append(
            Figure(
                "scores",
                {
                    "metric": metric,
                    "threshold": threshold,
                    "rungs": [r.name for r in run.rungs],
                    "dev": [interval(r.splits["dev"].deciding(metric)) for r in run.rungs],
                    "test": [interval(r.splits["test"].deciding(metric)) for r in run.rungs],
                },
                f"{metric} per rung, dev and test, with 95% intervals; the dashed line is the target {threshold:.3f}. "
                "The numbers are the table above.",
            )
        )
    if any(metric in r.splits["dev"].calibrated for r in run.rungs):
        blocks.append(
            Paragraph(
                f"{metric} is graded by a judge calibrated against people's grades: the scores above are on the "
                "people's scale (prediction-powered inference), the judge's own beside them under The judge."
            )
        )
    kind = run.spec.output.kind
    if kind != "text":
        form = "one of the labels" if kind == "label" else "JSON of the target's kind (object or array)"
        blocks.append(
            Paragraph(
                f"An invalid output is an answer that is not {form}: a rung can fail at the format as well as at the task."
            )
        )
    return Section("summary", "", blocks)


def paired(run: AssessmentRun) -> Section:
    metric, policy = run.target.metric, run.spec.policy
    holm = run.recommendation.holm_p if run.recommendation is not None else {}
    pairs = [(r, c) for r in run.rungs for c in r.splits["dev"].comparisons if c.metric == metric]
    section = Section("paired", f"Paired comparisons on dev ({metric})")
    if not pairs:
        return section
    rows = []
    for r, c in pairs:
        adjusted = holm.get(f"{r.name} vs {c.baseline}")
        rows.append(
            [
                r.name,
                c.baseline,
                f"{c.delta:+.3f}",
                f"{interval_text(c.low, c.high, signed=True)}",
                f"{c.wins} / {c.losses}",
                p_text(c.p_value),
                p_text(adjusted) if adjusted is not None else "—",
                c.method,
            ]
        )
    section.blocks += [
        Table(["rung", "vs", "Δ", "95% interval", "wins / losses", "p", "Holm p", "test"], rows),
        Paragraph(
            f"A costlier rung counts as better only when its Holm-adjusted p is below {policy.alpha}. Among the "
            "rungs that meet the target the recommendation is "
            + (
                "the cheapest (`policy.prefer: cost`)."
                if policy.prefer == "cost"
                else "the cheapest, or a costlier one that is significantly better (`policy.prefer: quality`)."
            )
        ),
    ]
    return section


def repeats(run: AssessmentRun) -> Section:
    """``assess --repeats K``: how often an example's score changed between independent evaluations of one rung."""
    section = Section("repeats", f"The noise floor ({run.repeats} evaluations of every example)")
    if run.repeats < 2:
        return section
    metric = run.target.metric
    rows = [
        [r.name, *(f"{r.splits[s].flaky.get(metric, 0.0):.1%} of {r.splits[s].n}" for s in ("dev", "test"))]
        for r in run.rungs
    ]
    section.blocks += [
        Table(["rung", f"dev: examples whose {metric} changed", f"test: examples whose {metric} changed"], rows),
        Paragraph(
            f"Each rung was evaluated {run.repeats} times, the result cache bypassed after the first, with other "
            "batches (a shuffled order: other padding and batch-mates) and, when sampling, other seeds. An "
            "example's score is its mean over the repeats, and every interval and paired test resamples examples, "
            "not repeats."
        ),
    ]
    return section


def diagnosis(run: AssessmentRun) -> Section:
    section = Section("diagnosis", "What kind of gap is left")
    d = run.diagnosis
    if d is None or d.kind == "none":
        return section
    names = {
        "invalid_outputs": "outputs not of the declared form",
        "lenient_gap": "lenient vs strict score",
        "fewshot_gain": "few-shot gain",
        "rag_gain": "retrieval gain",
        "recall_follows": "answers follow retrieval",
        "unknown_share": "wrong whatever the demonstrations",
    }
    section.blocks += [
        Paragraph(
            f"After the prompt-side rungs the best is **{d.best_rung}**, "
            + (
                f"{d.gap:.3f} below the target on dev. "
                if d.gap > 0
                else f"{-d.gap:.3f} above the target on its dev mean but not conclusively (its interval reaches below). "
            )
            + f"The gap {gap_kind(d.kind, bold=True)}: {d.advice}."
        ),
        Table(
            ["signal", "points to", "evidence"],
            [[names.get(e.signal, e.signal), e.points_to, e.text] for e in d.evidence],
        ),
    ]
    return section


def all_metrics(run: AssessmentRun) -> Section:
    section = Section("metrics", "All metrics (test)")
    metrics = run.spec.metric_names
    if len(metrics) > 1:
        section.blocks.append(
            Table(
                ["rung", *metrics], [[r.name, *(ci(r.splits["test"].metrics[m]) for m in metrics)] for r in run.rungs]
            )
        )
    return section


def decisions(run: AssessmentRun) -> Section:
    trail = [f"**{r.name}** — {r.decision.status}, {r.decision.action}: {r.decision.reason}." for r in run.rungs]
    trail += [f"**{s.name}** — skipped: {s.reason}." for s in run.skipped]
    return Section("decisions", "Decisions", [Items(trail, numbered=True)] if trail else [])
