"""Several runs of one task over time (weeks apart, before and after a base-model change): the target
metric per rung and run, and paired changes between consecutive runs where they scored the same examples."""

from __future__ import annotations

from ladder.errors import LadderError
from ladder.record import AssessmentRun
from ladder.report.document import Document, Figure, Items, Paragraph, Section, Table
from ladder.report.sections.cells import ci, delta_ci, interval, p_text
from ladder.scoring.compare import compare_by_id, measured_binary, split_scores


def _label(run: AssessmentRun) -> str:
    return f"{run.created[:10]} {run.run_id[-6:]}"


def _what_changed(before: AssessmentRun, after: AssessmentRun) -> str:
    changes = []
    if before.model.weights_sha256 != after.model.weights_sha256:
        changes.append(
            f"base model ({before.model.name} `{before.model.weights_sha256[:12]}` → "
            f"{after.model.name} `{after.model.weights_sha256[:12]}`)"
        )
    if before.model.backend != after.model.backend:
        changes.append(f"backend ({before.model.backend} → {after.model.backend})")
    changed = sorted(
        s
        for s in set(before.data_hashes) | set(after.data_hashes)
        if before.data_hashes.get(s) != after.data_hashes.get(s)
    )
    if changed:
        changes.append("data (" + ", ".join(changed) + ")")
    if before.spec.prompt != after.spec.prompt:
        changes.append("prompt")
    if before.ladder_version != after.ladder_version:
        changes.append(f"ladder ({before.ladder_version} → {after.ladder_version})")
    return "; ".join(changes) or "nothing recorded (same model, data, prompt and ladder)"


def build_comparison(runs: list[AssessmentRun], sources: list[str]) -> Document:
    tasks = sorted({r.task_name for r in runs})
    if len(tasks) > 1:
        raise LadderError(f"{sources[1]}: a comparison is of one task's runs; these are of {', '.join(tasks)}")
    runs = sorted(runs, key=lambda r: r.created)
    last = runs[-1]
    metric, threshold = last.target.metric, last.target.threshold
    labels = [_label(r) for r in runs]
    rungs = list(dict.fromkeys(r.name for run in runs for r in run.rungs))

    overview = [
        [
            label,
            run.run_id,
            run.status,
            f"{run.model.name} `{run.model.weights_sha256[:12]}`",
            run.recommendation.rung or "none" if run.recommendation else "—",
        ]
        for label, run in zip(labels, runs)
    ]
    sections = [
        Section(
            "runs",
            "",
            [
                Paragraph(
                    f"{len(runs)} runs of **{last.task_name}**, oldest first. Target: {metric} ≥ {threshold:.3f}; intervals "
                    "are 95%; a change between consecutive runs is paired on the examples both scored (exact McNemar "
                    "for yes/no metrics, paired bootstrap otherwise), and left unpaired when their examples differ."
                ),
                Table(["run", "id", "status", "base model", "recommended"], overview),
            ],
        )
    ]

    rows, series = [], {}
    for name in rungs:
        cells, points = [name], []
        for run in runs:
            result = run.rung(name)
            cells += [ci(result.splits[s].metrics[metric]) if result else "—" for s in ("dev", "test")]
            m = result.splits["test"].metrics[metric] if result else None
            points.append(interval(m) if m else None)
        rows.append(cells)
        series[name] = points
    header = ["rung"] + [f"{label} {split}" for label in labels for split in ("dev", "test")]
    sections.append(
        Section(
            "over-time",
            f"{metric} per rung and run",
            [
                Table(header, rows),
                Figure(
                    "over_time",
                    {"metric": metric, "threshold": threshold, "runs": labels, "series": series},
                    f"Test {metric} of each rung in each run (95% intervals); the dashed line is the target. "
                    "The numbers are the table above.",
                ),
            ],
        )
    )

    changes, notes = [], []
    for (label_a, a), (label_b, b) in zip(zip(labels, runs), zip(labels[1:], runs[1:])):
        notes.append(f"{label_a} → {label_b}: what changed: {_what_changed(a, b)}")
        for name in rungs:
            ra, rb = a.rung(name), b.rung(name)
            if ra is None or rb is None:
                continue
            for split in ("dev", "test"):
                before, after = split_scores(ra.examples, split, metric), split_scores(rb.examples, split, metric)
                if set(before) != set(after):
                    changes.append(
                        [
                            name,
                            f"{label_a} → {label_b}",
                            split,
                            "—",
                            "—",
                            "—",
                            f"not paired: different examples ({len(before)} vs {len(after)})",
                        ]
                    )
                    continue
                binary = measured_binary(ra.splits[split], metric) and measured_binary(rb.splits[split], metric)
                cmp = compare_by_id(before, after, metric, name, last.seed, binary)
                changes.append(
                    [
                        name,
                        f"{label_a} → {label_b}",
                        split,
                        delta_ci(cmp),
                        f"{cmp.wins} / {cmp.losses}",
                        p_text(cmp.p_value),
                        f"{cmp.method}, n={cmp.n}",
                    ]
                )
    sections.append(
        Section(
            "changes",
            f"Paired changes between consecutive runs ({metric})",
            [
                Items(notes),
                Table(["rung", "runs", "split", "Δ [95% interval]", "wins / losses", "p", "test"], changes),
            ]
            if changes
            else [Items(notes)],
        )
    )
    sections.append(
        Section(
            "recommendations",
            "Recommendation of each run",
            [
                Items(
                    [
                        f"{label}: {run.recommendation.summary if run.recommendation else 'no recommendation (run ' + run.status + ')'}"
                        for label, run in zip(labels, runs)
                    ]
                ),
            ],
        )
    )
    footer = "Rendered by ladder from the run records " + ", ".join(r.run_id for r in runs) + "."
    return Document(f"ladder comparison: {last.task_name}", sections, footer)
