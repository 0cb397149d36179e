"""Examples: per label, the confusion matrix, the examples won and lost between adjacent rungs."""

from __future__ import annotations

from ladder.record import AssessmentRun, ExampleRecord, RungResult
from ladder.report.document import (
    Figure,
    Paragraph,
    Section,
    Table,
)
from ladder.report.sections.cells import EXAMPLES_SHOWN, chosen_rung, cut, why_chosen


def _test_records(rung: RungResult) -> list[ExampleRecord]:
    return [e for e in rung.examples if e.split == "test"]


def per_label(run: AssessmentRun) -> Section:
    section = Section("labels", "Per label (test)")
    labels = run.spec.output.labels
    if run.spec.output.kind != "label" or not labels or not run.rungs:
        return section
    header = ["label", "n"] + [f"{r.name} recall" for r in run.rungs] + [f"{r.name} precision" for r in run.rungs]
    tested = [_test_records(r) for r in run.rungs]
    rows = []
    for label in labels:
        row = [label, str(sum(1 for e in tested[0] if e.target == label))]
        recalls, precisions = [], []
        for records in tested:
            gold = [e for e in records if e.target == label]
            said = [e for e in records if e.output == label]
            hit = sum(1 for e in gold if e.output == label)
            recalls.append(f"{hit / len(gold):.2f} ({hit}/{len(gold)})" if gold else "—")
            right = sum(1 for e in said if e.target == label)
            precisions.append(f"{right / len(said):.2f} ({right}/{len(said)})" if said else "—")
        rows.append(row + recalls + precisions)
    section.blocks += [
        Table(header, rows),
        Paragraph(
            "Recall: the share of a label's test examples answered with that label; precision: the share of "
            "answers of that label that were right (counts in brackets)."
        ),
    ]
    return section


def confusion(run: AssessmentRun) -> Section:
    section = Section("confusion", "Confusion matrix (test)", in_markdown=False)
    labels = run.spec.output.labels
    name = chosen_rung(run)
    rung = run.rung(name) if name else None
    if run.spec.output.kind != "label" or not labels or rung is None:
        return section
    records = _test_records(rung)
    columns = list(labels) + ["(invalid)"]
    counts = [
        [
            sum(1 for e in records if e.target == gold and (e.output if e.output in labels else "(invalid)") == said)
            for said in columns
        ]
        for gold in labels
    ]
    keep = [j for j, _ in enumerate(columns) if j < len(labels) or any(row[j] for row in counts)]
    columns = [columns[j] for j in keep]
    counts = [[row[j] for j in keep] for row in counts]
    section.blocks += [
        Paragraph(f"Rung **{rung.name}** ({why_chosen(run)}): rows are the target label, columns the answer."),
        Table(["target \\ answer"] + columns, [[gold] + [str(c) for c in row] for gold, row in zip(labels, counts)]),
        Figure(
            "confusion",
            {"rung": rung.name, "labels": list(labels), "columns": columns, "counts": counts},
            f"Confusion matrix of {rung.name} on test: the counts of the table above.",
        ),
    ]
    return section


def won_and_lost(run: AssessmentRun) -> Section:
    section = Section("examples", "Examples won and lost between adjacent rungs (test)", in_markdown=False)
    metric = run.target.metric
    inputs = run.inputs.get("test", {})
    for previous, current in zip(run.rungs, run.rungs[1:]):
        before = {e.id: e for e in _test_records(previous)}
        after = [e for e in _test_records(current) if e.id in before]
        change = {e.id: e.scores[metric] - before[e.id].scores[metric] for e in after}
        won = sorted((e for e in after if change[e.id] > 0), key=lambda e: -change[e.id])  # biggest changes first
        lost = sorted((e for e in after if change[e.id] < 0), key=lambda e: change[e.id])
        section.blocks.append(
            Paragraph(
                f"**{current.name}** vs **{previous.name}**: {len(won)} won, {len(lost)} lost, "
                f"{len(after) - len(won) - len(lost)} unchanged of {len(after)} ({metric}; the {EXAMPLES_SHOWN} biggest "
                "changes each way shown, in data order among equals)."
            )
        )
        rows = []
        for verdict, chosen in (("won", won[:EXAMPLES_SHOWN]), ("lost", lost[:EXAMPLES_SHOWN])):
            for e in chosen:
                rows.append(
                    [
                        verdict,
                        e.id,
                        cut(inputs.get(e.id, "(input not recorded)")),
                        cut(before[e.id].output),
                        cut(e.output),
                        cut(e.target),
                    ]
                )
        if rows:
            section.blocks.append(Table(["", "id", "input", previous.name, current.name, "target"], rows))
    return section
