"""How numbers and texts are written in a report's cells: intervals, deltas, seconds, cut texts; which rung was chosen."""

from __future__ import annotations

from ladder.record import AssessmentRun, DevEvaluation, Estimate, PairedComparison, RungResult
from ladder.scoring.format import interval_text
from ladder.scoring.format import p_text as format_p

EXAMPLES_SHOWN = 3  # won and lost examples shown per adjacent pair of rungs

CELL_CHARS = 240  # an input or output longer than this is cut in the examples table


def ci(m: Estimate) -> str:
    return f"{m.mean:.3f} {interval_text(m.low, m.high)}"


def p_text(p: float) -> str:
    return format_p(p, compact=True)


def delta_ci(cmp: PairedComparison) -> str:
    return f"{cmp.delta:+.3f} {interval_text(cmp.low, cmp.high, signed=True)}"


def delta(result: RungResult, previous: RungResult | None, split: str, metric: str) -> str:
    cmp = result.splits[split].comparison(previous.name, metric) if previous is not None else None
    if cmp is None:
        return "—"
    return f"{delta_ci(cmp)}, {p_text(cmp.p_value)}"


def seconds(value: float) -> str:
    if value < 0.01:
        return f"{value * 1000:.2f} ms"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def dev_eval(evaluation: DevEvaluation | None, metric: str) -> str:
    """The last dev evaluation of a training: its loss, and the target metric when it decided."""
    if evaluation is None:
        return "—"
    text = f"loss {evaluation.dev_loss}"
    if evaluation.reward_accuracy is not None:
        text += f", reward accuracy {evaluation.reward_accuracy:.2f}, margin {evaluation.reward_margin:.3f}"
    return text + (f", {metric} {evaluation.dev_metric:.3f}" if evaluation.dev_metric is not None else "")


def cut(text: str, limit: int = CELL_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def chosen_rung(run: AssessmentRun) -> str | None:
    """The rung a report highlights: the recommended one, else the best measured."""
    rec = run.recommendation
    return (rec.rung or rec.best_rung) if rec is not None else None


def why_chosen(run: AssessmentRun) -> str:
    return "recommended" if run.recommendation and run.recommendation.rung else "best measured"


def interval(m: Estimate) -> list[float]:
    return [m.mean, m.low, m.high]
