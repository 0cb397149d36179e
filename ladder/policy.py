"""Pure decision functions (no I/O): climb or stop after each rung, and the final recommendation.

Decisions use the dev split; the held-out test split is reported beside them, never used to choose.
This first policy climbs while a rung's dev score is below the target and stops at the first rung that
meets it; the reason always states the interval, so a "gap" inside the noise is visible as such.
"""

from __future__ import annotations

from ladder.record import Decision, MetricSummary, Recommendation, RungResult
from ladder.spec import LADDER


def _fmt(m: MetricSummary) -> str:
    return f"{m.mean:.3f} [{m.low:.3f}, {m.high:.3f}] (n={m.n})"


def decide(dev: MetricSummary, metric: str, threshold: float) -> Decision:
    if dev.mean >= threshold:
        return Decision(action="stop", meets_target=True, reason=f"dev {metric} {_fmt(dev)} meets the target {threshold:.3f}")
    if dev.high < threshold:
        certainty = "the whole interval is below the target: the gap is measured"
    else:
        certainty = "the interval still reaches the target: the gap is not yet certain"
    return Decision(
        action="climb",
        meets_target=False,
        reason=f"dev {metric} {_fmt(dev)} is below the target {threshold:.3f}; {certainty}",
    )


def next_rung_after(measured: list[str], configured_later: list[str]) -> str | None:
    """The next rung to try: a configured rung not yet run, else the next kind up the ladder."""
    if configured_later:
        return configured_later[0]
    top = max((LADDER.index(t) for t in measured), default=-1)
    return LADDER[top + 1] if top + 1 < len(LADDER) else None


def recommend(results: list[RungResult], metric: str, threshold: float, configured_later: list[str]) -> Recommendation:
    for result in results:
        if result.decision.meets_target:
            test = result.splits["test"].metrics[metric]
            return Recommendation(
                rung=result.name,
                met=True,
                best_rung=result.name,
                next_rung=None,
                summary=f"use {result.name!r}: the cheapest rung meeting the target "
                f"(dev {metric} {_fmt(result.splits['dev'].metrics[metric])}; test {_fmt(test)})",
            )
    if not results:
        return Recommendation(rung=None, met=False, best_rung=None, next_rung=None, summary="no rung was measured")
    best = max(results, key=lambda r: r.splits["dev"].metrics[metric].mean)
    nxt = next_rung_after([r.type for r in results], configured_later)
    tail = f"; next rung to try: {nxt}" if nxt else "; no higher rung is left to try"
    return Recommendation(
        rung=None,
        met=False,
        best_rung=best.name,
        next_rung=nxt,
        summary=f"no rung meets the target {metric} >= {threshold:.3f}; best measured: {best.name!r} "
        f"(dev {_fmt(best.splits['dev'].metrics[metric])}){tail}",
    )
