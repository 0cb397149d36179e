"""The judge: who graded the judge metrics, how far it agrees with people, and every judged score beside its
calibrated (human-scale) interval and the verdicts out of form."""

from __future__ import annotations

from ladder.record import AssessmentRun, JudgeSummary
from ladder.report.document import Block, Paragraph, Section, Table
from ladder.report.sections.cells import ci


def _how(s: JudgeSummary) -> str:
    how = (
        "the probability-weighted grade over its likelihood of every grade (it cannot answer out of form)"
        if s.mode == "scores"
        else "a written verdict parsed strictly, asked again when out of form, then graded by likelihood"
    )
    per = f", {s.questions} criteria asked apart (the score is the share passed)" if s.questions > 1 else ""
    return f"**{s.metric}** is graded by a judge model, {s.judge}, on the scale {s.scale}{per}: {how}."


def _number(value: float) -> str:
    return "—" if value != value else f"{value:+.2f}"  # nan: a constant side, no rank correlation


def judges(run: AssessmentRun) -> Section:
    section = Section("judge", "The judge")
    if not run.judges:
        return section
    blocks: list[Block] = [Paragraph(_how(s)) for s in run.judges.values()]
    calibrated = [s for s in run.judges.values() if s.calibration is not None]
    for s in run.judges.values():
        if s.calibration is None:
            blocks.append(
                Paragraph(
                    f"**{s.metric} is not calibrated**: the task gives no human grades for it (data.human_grades), so "
                    "how far the judge agrees with people is unknown, and its scores are the judge's, not people's."
                )
            )
    if calibrated:
        blocks.append(
            Table(
                [
                    "metric",
                    "answers people graded",
                    "same grade",
                    "Cohen's κ",
                    "Spearman ρ",
                    "judge mean / people's",
                    "ρ with length: judge / people",
                    "verdicts out of form",
                ],
                [
                    [
                        s.metric,
                        f"{a.n} ({s.calibration_source})",
                        ci(a.accuracy),
                        ci(a.kappa),
                        ci(a.spearman),
                        f"{a.judge_mean:.3f} / {a.human_mean:.3f}",
                        f"{_number(a.judge_length_spearman)} / {_number(a.human_length_spearman)}",
                        str(s.calibration_invalid),
                    ]
                    for s in calibrated
                    for a in [s.calibration]
                    if a is not None
                ],
            )
        )
        blocks.append(
            Paragraph(
                "Agreement is measured on the answers people graded: the judge's discrete grade against theirs (at the "
                "nearest grade), Cohen's κ (agreement beyond chance), and Spearman's ρ of the judge's score with "
                "theirs, with 95% intervals. A judge whose ρ with the answer's length exceeds the people's favours "
                "long answers. The calibrated score is the judged mean corrected by the calibration set "
                "(prediction-powered inference, Angelopoulos et al. 2023): the judged mean plus the people's mean "
                "difference from the judge, its interval wider by the judge's error; the decisions read it. It "
                "assumes the graded answers are like the rung's, which a calibration set of other answers only "
                "approximates."
            )
        )
    rows = []
    for r in run.rungs:
        for m in run.judges:
            dev, test = r.splits["dev"], r.splits["test"]
            rows.append(
                [
                    r.name,
                    m,
                    ci(dev.metrics[m]),
                    ci(dev.calibrated[m]) if m in dev.calibrated else "—",
                    ci(test.metrics[m]),
                    ci(test.calibrated[m]) if m in test.calibrated else "—",
                    f"{dev.judge_invalid.get(m, 0)} / {test.judge_invalid.get(m, 0)}",
                ]
            )
    if rows:
        blocks.append(
            Table(
                ["rung", "metric", "dev judged", "dev calibrated", "test judged", "test calibrated", "out of form"],
                rows,
            )
        )
    section.blocks = blocks
    return section
