"""Pure decision functions (no I/O): what each rung's dev result says, whether to climb, and the final
recommendation. Decisions use the dev split; the held-out test split is reported beside them, never
used to choose.

- Each rung's dev interval against the target: ``meets`` (with ``confidence: lower_bound`` the whole
  95% interval is at or above it; with ``point`` the mean is), ``gap`` (the whole interval is below it:
  a gap is measured, so the ladder climbs) or ``inconclusive`` (then ``policy.inconclusive`` decides;
  ``report`` stops and says how many dev examples would resolve it).
- A costlier rung counts as better than a cheaper one only when the paired test on the same dev
  examples says so at ``alpha``, Holm-corrected across every pair of rungs compared.
- The recommendation: among the rungs that meet the target, the cheapest by the cost model at the expected
  volume (``policy.prefer: cost``, the default), or, with ``prefer: quality``, a costlier one where the paired
  test says it is significantly better (Holm). A cheaper rung is never passed over because a paired test
  lacked the power to show it within ``non_inferiority_margin`` of the best: that is reported, not decided on.
  When none meets, the cheapest rung that no other rung beats significantly, and the next rung to try.
"""

from __future__ import annotations

import math

from ladder.decide.cost import duration, money
from ladder.record import Decision, Recommendation, RungResult
from ladder.scoring.format import interval_text, p_text
from ladder.scoring.sequential import SequentialDecision
from ladder.scoring.stats import Estimate, PairedComparison, holm, n_to_decide
from ladder.spec import LADDER, PolicySpec


def fmt(m: Estimate) -> str:
    return f"{m.mean:.3f} {interval_text(m.low, m.high)} (n={m.n})"


def _p(p: float) -> str:
    return p_text(p, digits=2)  # the policy's reasons, kept in records, have always said two digits


def status_of(dev: Estimate, threshold: float, policy: PolicySpec) -> str:
    level = dev.low if policy.confidence == "lower_bound" else dev.mean
    if level >= threshold:
        return "meets"
    if dev.high < threshold:
        return "gap"
    return "inconclusive"


def too_small(dev: Estimate, policy: PolicySpec) -> str | None:
    """A plain sentence when the dev interval is too wide to decide anything, with the n it would take."""
    if dev.n == 0 or math.isnan(dev.low) or dev.half_width <= policy.resolution:
        return None
    needed = math.ceil(dev.n * (dev.half_width / policy.resolution) ** 2)
    return (f"dev n={dev.n} is too small to decide: its 95% interval spans {dev.high - dev.low:.2f} "
            f"(±{dev.half_width:.2f}); about {needed} dev examples would narrow it to ±{policy.resolution:.2f}")


SERVES_ZERO_SHOT = ("distill", "lora", "preference", "full")  # trained rungs answer the zero-shot prompt
LONG_PROMPTS = ("fewshot", "rag")  # demonstrations or passages in every call


def cheaper_per_call(kind: str, next_kind: str | None) -> bool:
    """Whether the next rung serves a shorter prompt than this one (a trained rung after demonstrations or
    passages): cheaper per call on the same model, whatever its one-time training costs."""
    return kind in LONG_PROMPTS and next_kind in SERVES_ZERO_SHOT


def decide(dev: Estimate, sd: float, metric: str, threshold: float, policy: PolicySpec, available: int | None = None,
           kind: str = "", next_rung: tuple[str, str] | None = None) -> Decision:
    """``sd``: the per-example standard deviation of the dev scores; ``available``: the dev examples the task can
    supply (its whole dev split); ``kind`` and ``next_rung`` (name, kind): this rung's kind and the next one the
    climb would measure, for an inconclusive rung under ``policy.inconclusive: report``."""
    status = status_of(dev, threshold, policy)
    where = f"dev {metric} {fmt(dev)}"
    n_needed = None
    action = "stop"
    if status == "meets":
        how = "its whole interval is at or above" if policy.confidence == "lower_bound" else "its mean is at or above"
        reason = f"{where} meets the target {threshold:.3f}: {how} it"
    elif status == "gap":
        action, reason = "climb", f"{where} is below the target {threshold:.3f} by its whole interval: the gap is measured"
    else:
        spread = sd if sd > 0 else math.sqrt(threshold * (1 - threshold))
        n_needed = n_to_decide(dev.mean, threshold, dev.method == "wilson", spread, dev.n, policy.power)
        reason = f"{where} is inconclusive against the target {threshold:.3f} (its interval contains it); "
        if policy.inconclusive != "report":
            action = "climb" if policy.inconclusive == "climb" else "stop"
            reason += f"{'climbing anyway' if action == 'climb' else 'stopping'} (policy.inconclusive: {policy.inconclusive})"
        else:
            action, then = _settle(dev, threshold, policy, n_needed, available, kind, next_rung)
            reason += then
    small = too_small(dev, policy) if status == "inconclusive" and n_needed is None else None
    if small:
        reason += f"; {small}"
    return Decision(action=action, status=status, meets_target=status == "meets", reason=reason, n_needed=n_needed,  # type: ignore[arg-type]
                    dev_available=available)


def decide_sequential(seq: SequentialDecision, available: int, metric: str, threshold: float, policy: PolicySpec,
                      kind: str = "", next_rung: tuple[str, str] | None = None) -> Decision:
    """``policy.sequential``: the dev status from the confidence sequence walked over the dev examples in order."""
    where = (f"dev {metric}: anytime-valid confidence sequence {interval_text(seq.low, seq.high)} after {seq.n} of "
             f"{available} dev examples")
    if seq.verdict == "meets":
        return Decision(action="stop", status="meets", meets_target=True, dev_available=available,
                        reason=f"{where} meets the target {threshold:.3f}: it excludes every value below it")
    if seq.verdict == "gap":
        return Decision(action="climb", status="gap", meets_target=False, dev_available=available,
                        reason=f"{where} is below the target {threshold:.3f}: the gap is measured")
    reason = f"{where} has not decided against the target {threshold:.3f}; "
    if policy.inconclusive != "report":
        action = "climb" if policy.inconclusive == "climb" else "stop"
        reason += f"{'climbing anyway' if action == 'climb' else 'stopping'} (policy.inconclusive: {policy.inconclusive})"
    elif next_rung is not None and cheaper_per_call(kind, next_rung[1]):
        action = "climb"
        reason += f"climbing: {next_rung[0]} serves the zero-shot prompt, cheaper per call than {kind}'s"
    else:
        action = "stop"
        reason += "stopping: `ladder resolve RUN` continues the sequence with data.reserve"
    return Decision(action=action, status="inconclusive", meets_target=False, reason=reason,  # type: ignore[arg-type]
                    dev_available=available)


def _settle(dev: Estimate, threshold: float, policy: PolicySpec, n_needed: int | None, available: int | None,
            kind: str, next_rung: tuple[str, str] | None) -> tuple[str, str]:
    """``policy.inconclusive: report``: stop and say how many dev examples would decide, unless more data cannot
    decide it (the task has fewer dev examples than needed) or the next rung is cheaper per call; then climb."""
    above = dev.mean >= threshold
    verb = "confirm" if above else "resolve"
    if n_needed is None:
        return "stop", "stopping: its mean sits on the target, so no number of examples resolves it"
    need = f"about {n_needed} dev examples would {verb} it ({policy.power:.0%} power, if its mean holds)"
    short = available is not None and n_needed > available
    if next_rung is not None and above and cheaper_per_call(kind, next_rung[1]):
        return "climb", (f"{need}; climbing: {next_rung[0]} serves the zero-shot prompt, cheaper per call than "
                         f"{kind}'s, and may meet the target outright")
    if short and not above:
        return "climb", (f"{need}, more than the task's {available}: its mean is below the target and the dev split "
                         "cannot show it, so climbing")
    if short:
        return "stop", (f"stopping: the dev split ({available} examples) cannot {verb} it: {need}; add labelled dev "
                        f"examples (e.g. move {n_needed - available} from train to dev, or hold some in data.reserve "
                        "for `ladder resolve`): a costlier rung is not the cure for a small dev split")
    more = (f" (this run measured {dev.n} of the task's {available}: `ladder resolve RUN` walks the rest until it "
            "decides)" if available and dev.n < available else "")
    return "stop", f"stopping: {need}{more}"


def next_rung_after(measured: list[str], configured_later: list[str],
                    unavailable: dict[str, str] | None = None) -> tuple[str | None, list[str]]:
    """The next rung to try: a configured rung not yet run, else the next kind up the ladder that this
    task can run. ``unavailable``: kind -> what the task would need for it (a corpus for rag); returns
    the rung and one line per kind passed over."""
    if configured_later:
        return configured_later[0], []
    top = max((LADDER.index(t) for t in measured), default=-1)
    passed_over = []
    for kind in LADDER[top + 1 :]:
        if kind == "distill":
            continue  # it learns a lower rung's answers: it cuts the cost per call, it does not close a gap
        if unavailable and kind in unavailable:
            passed_over.append(f"{kind} would need {unavailable[kind]}")
            continue
        return kind, passed_over
    return None, passed_over


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
        return f"{a} vs {b}: {d[0]:+.3f} {interval_text(d[1], d[2], signed=True)}, {verdict} (Holm {_p(d[3])})"

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
    results: list[RungResult], metric: str, threshold: float, policy: PolicySpec, configured_later: list[str],
    unavailable: dict[str, str] | None = None,
) -> Recommendation:
    if not results:
        return Recommendation(rung=None, met=False, best_rung=None, next_rung=None, summary="no rung was measured")
    pairs = _Pairs(results, metric)
    holm_p = {f"{a} vs {b}": p for (a, b), p in pairs.adjusted.items()}
    dev = {r.name: r.splits["dev"].metrics[metric] for r in results}
    top = max(results, key=lambda r: (dev[r.name].mean, -results.index(r)))
    reasons: list[str] = []
    for r in results:
        if r.decision.status == "meets" and not r.certified():
            failed = r.certificate.failure() if r.certificate is not None else None
            reasons.append(f"{r.name} meets the target but is not recommended: its adapter certificate "
                           + (f"failed ({failed.name}: {failed.detail})" if failed else "is missing"))
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
                rule = (f"policy.prefer: quality, significantly better than {cheap.name}, the cheapest rung that meets "
                        "the target")
        elif better:
            names = ", ".join(r.name for r in better)
            reasons.append(f"{names} {'is' if len(better) == 1 else 'are'} significantly better than {cheap.name} on dev "
                           "but costlier: policy.prefer: quality would choose by quality")
        if chosen is not top:
            d = pairs.delta(chosen.name, top.name)
            if d is not None:
                within = d[1] > -policy.non_inferiority_margin
                reasons.append(f"{chosen.name} is {'within' if within else 'not shown to be within'} "
                               f"{policy.non_inferiority_margin:.3f} of the best measured, {top.name} "
                               f"(Δ {d[0]:+.3f} {interval_text(d[1], d[2], signed=True)})" + ("" if within else
                               ": the paired interval is too wide to tell; more dev examples would"))
        test = chosen.splits["test"].metrics.get(metric)
        reasons.insert(0, f"{chosen.name} meets {metric} ≥ {threshold:.3f} at {fmt(dev[chosen.name])} on dev"
                          + (f" (test {fmt(test)})" if test is not None else ""))
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
        d, available = r.decision, r.decision.dev_available
        if dev[r.name].mean >= threshold and available is not None and (d.n_needed or 0) > available:
            nxt = None  # more dev data, not a costlier rung, is what decides it
            tail = (f"; {r.name}'s dev mean is above the target but the task's dev split ({available} examples) cannot "
                    f"confirm it: about {d.n_needed} would; add labelled dev examples (e.g. move "
                    f"{d.n_needed - available} from train to dev, or data.reserve for `ladder resolve`) before trying a "
                    "costlier rung")
        else:
            tail = f"; {r.name} is inconclusive: about {d.n_needed} dev examples would resolve it" + tail
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
