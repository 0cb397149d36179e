"""The recommendation: among the measured rungs, the cheapest that meets the target (or, with prefer: quality, a
significantly better one), within the cost tolerance; else the best measured and the next rung to try."""

from __future__ import annotations

from ladder.decide.cost import duration, money
from ladder.decide.policy import fmt, next_rung_after
from ladder.record import PairedComparison, Recommendation, RungResult
from ladder.scoring.format import interval_text, p_text
from ladder.scoring.stats import holm
from ladder.spec import LADDER, PolicySpec


class _Pairs:
    """The dev paired comparisons of the target metric between every two measured rungs, Holm-adjusted."""

    def __init__(self, results: list[RungResult], metric: str):
        self.found: dict[tuple[str, str], PairedComparison] = {}  # (later, earlier) -> later vs earlier
        for j, later in enumerate(results):
            for earlier in results[:j]:
                cmp = later.splits["dev"].comparison(earlier.name, metric)
                if cmp is not None:
                    self.found[(later.name, earlier.name)] = cmp
        keys = list(self.found)
        self.adjusted = dict(zip(keys, holm([self.found[k].p_value for k in keys])))

    def delta(self, a: str, b: str) -> tuple[float, float, float, float] | None:
        """(delta, low, high, Holm p) of a minus b, whichever order they were measured in."""
        if (a, b) in self.found:
            c = self.found[(a, b)]
            return c.delta, c.low, c.high, self.adjusted[(a, b)]
        if (b, a) in self.found:
            c = self.found[(b, a)]
            return 0.0 - c.delta, 0.0 - c.high, 0.0 - c.low, self.adjusted[(b, a)]  # no -0.0
        return None

    def versus(self, a: str, b: str, alpha: float) -> str | None:
        """``a vs b: +0.030 [-0.010, +0.070], not significant (Holm p = 0.21)``, or None (same rung, not paired)."""
        d = self.delta(a, b) if a != b else None
        if d is None:
            return None
        verdict = "significant" if d[3] < alpha else "not significant"
        return f"{a} vs {b}: {d[0]:+.3f} {interval_text(d[1], d[2], signed=True)}, {verdict} (Holm {p_text(d[3], digits=2)})"

    def beats(self, a: str, b: str, alpha: float) -> bool:
        d = self.delta(a, b)
        return d is not None and d[0] > 0 and d[3] < alpha


COST_TOLERANCE = 0.1  # costs within 10% count as equal (a training's wall time varies that much between runs)


def cheapest(results: list[RungResult]) -> RungResult:
    """The cheapest by total cost at the expected volume; a rung higher on the ladder must be cheaper by more
    than the noise (COST_TOLERANCE, or the run's measured per-token noise where larger) to win: within it the
    costs are a tie, and the lower rung, simpler to run, keeps it."""
    ordered = sorted(results, key=lambda r: (LADDER.index(r.type), results.index(r)))
    chosen = ordered[0]
    for r in ordered[1:]:
        if r.cost is None or chosen.cost is None:
            continue
        tolerance = max(COST_TOLERANCE, r.cost.noise, chosen.cost.noise)
        if r.cost.total_cost < (1 - tolerance) * chosen.cost.total_cost:
            chosen = r
    return chosen


def _cost_words(result: RungResult) -> str:
    c = result.cost
    if c is None:
        return ""
    return f"{money(c.cost_per_1k_calls, c.unit)} per 1k calls, {money(c.total_cost, c.unit)} over {c.calls:,.0f} calls"


def recommend(
    results: list[RungResult],
    metric: str,
    threshold: float,
    policy: PolicySpec,
    configured_later: list[str],
    unavailable: dict[str, str] | None = None,
) -> Recommendation:
    if not results:
        return Recommendation(rung=None, met=False, best_rung=None, next_rung=None, summary="no rung was measured")
    pairs = _Pairs(results, metric)
    holm_p = {f"{a} vs {b}": p for (a, b), p in pairs.adjusted.items()}
    dev = {r.name: r.splits["dev"].deciding(metric) for r in results}
    top = max(results, key=lambda r: (dev[r.name].mean, -results.index(r)))
    reasons: list[str] = []
    for r in results:
        if r.decision.status == "meets" and not r.certified():
            failed = r.certificate.failure() if r.certificate is not None else None
            reasons.append(
                f"{r.name} meets the target but is not recommended: its adapter certificate "
                + (f"failed ({failed.name}: {failed.detail})" if failed else "is missing")
            )
    meeting = [r for r in results if r.decision.status == "meets" and r.certified()]

    if meeting:
        cheap = cheapest(meeting)
        chosen, rule = cheap, "policy.prefer: cost, the cheapest rung that meets the target"
        better = [r for r in meeting if pairs.beats(r.name, cheap.name, policy.alpha)]
        if policy.prefer == "quality":
            while better:  # up to the rung no other meeting rung beats significantly
                chosen = max(better, key=lambda r: (dev[r.name].mean, -results.index(r)))
                better = [r for r in meeting if pairs.beats(r.name, chosen.name, policy.alpha)]
            if chosen is not cheap:
                rule = (
                    f"policy.prefer: quality, significantly better than {cheap.name}, the cheapest rung that meets "
                    "the target"
                )
        elif better:
            names = ", ".join(r.name for r in better)
            reasons.append(
                f"{names} {'is' if len(better) == 1 else 'are'} significantly better than {cheap.name} on dev "
                "but costlier: policy.prefer: quality would choose by quality"
            )
        if chosen is not top:
            d = pairs.delta(chosen.name, top.name)
            if d is not None:
                within = d[1] > -policy.non_inferiority_margin
                reasons.append(
                    f"{chosen.name} is {'within' if within else 'not shown to be within'} "
                    f"{policy.non_inferiority_margin:.3f} of the best measured, {top.name} "
                    f"(Δ {d[0]:+.3f} {interval_text(d[1], d[2], signed=True)})"
                    + ("" if within else ": the paired interval is too wide to tell; more dev examples would")
                )
        test = chosen.splits["test"].calibrated.get(metric) or chosen.splits["test"].metrics.get(metric)
        reasons.insert(
            0,
            f"{chosen.name} meets {metric} ≥ {threshold:.3f} at {fmt(dev[chosen.name])} on dev"
            + (f" (test {fmt(test)})" if test is not None else ""),
        )
        for other in results:
            words = pairs.versus(other.name, chosen.name, policy.alpha)
            if words is None:
                continue
            if other.cost is not None and chosen.cost is not None:
                extra = other.cost.adaptation_s - chosen.cost.adaptation_s
                if extra > 1:
                    words += f", for {duration(extra)} more adaptation"
                words += f"; {other.name} costs {_cost_words(other)}"
            reasons.append(words)
        if chosen.cost is not None:
            reasons.append(f"{chosen.name} costs {_cost_words(chosen)}")
        return Recommendation(
            rung=chosen.name,
            met=True,
            best_rung=top.name,
            next_rung=None,
            summary=f"use {chosen.name!r} (dev {metric} {fmt(dev[chosen.name])}): {rule}",
            reasons=reasons,
            holm_p=holm_p,
        )

    # none meets: the cheapest rung that no other rung beats significantly
    undominated = [r for r in results if not any(pairs.beats(o.name, r.name, policy.alpha) for o in results)]
    best = cheapest(undominated or [top])
    nxt, passed_over = next_rung_after([r.type for r in results], configured_later, unavailable)
    reasons += [words for other in results if (words := pairs.versus(other.name, best.name, policy.alpha))]
    pending = [r for r in results if r.decision.status == "inconclusive" and r.decision.n_needed]
    tail = f"; next rung to try: {nxt}" if nxt else "; no higher rung is left to try"
    if passed_over:
        tail += " (" + "; ".join(passed_over) + ")"
    if pending and policy.inconclusive == "report":
        r = pending[-1]
        waiting, available = r.decision, r.decision.dev_available
        if dev[r.name].mean >= threshold and available is not None and (waiting.n_needed or 0) > available:
            nxt = None  # more dev data, not a costlier rung, is what decides it
            tail = (
                f"; {r.name}'s dev mean is above the target but the task's dev split ({available} examples) cannot "
                f"confirm it: about {waiting.n_needed} would; add labelled dev examples (e.g. move "
                f"{(waiting.n_needed or 0) - available} from train to dev, or data.reserve for `ladder resolve`) before trying a "
                "costlier rung"
            )
        else:
            tail = f"; {r.name} is inconclusive: about {waiting.n_needed} dev examples would resolve it" + tail
    return Recommendation(
        rung=None,
        met=False,
        best_rung=best.name,
        next_rung=nxt,
        summary=f"no rung meets the target {metric} >= {threshold:.3f}; best measured: {best.name!r} "
        f"(dev {fmt(dev[best.name])}){tail}",
        reasons=reasons,
        holm_p=holm_p,
    )
