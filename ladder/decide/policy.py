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

from ladder.record import Decision, Estimate
from ladder.record.parts import Action, Status
from ladder.scoring.format import interval_text
from ladder.scoring.sequential import SequentialDecision
from ladder.scoring.stats import n_to_decide
from ladder.spec import LADDER, TRAINED_RUNGS, PolicySpec


def fmt(m: Estimate) -> str:
    return f"{m.mean:.3f} {interval_text(m.low, m.high)} (n={m.n})"


def status_of(dev: Estimate, threshold: float, policy: PolicySpec) -> Status:
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
    return (
        f"dev n={dev.n} is too small to decide: its 95% interval spans {dev.high - dev.low:.2f} "
        f"(±{dev.half_width:.2f}); about {needed} dev examples would narrow it to ±{policy.resolution:.2f}"
    )


SERVES_ZERO_SHOT = TRAINED_RUNGS  # trained rungs answer the zero-shot prompt

LONG_PROMPTS = ("fewshot", "rag")  # demonstrations or passages in every call


def cheaper_per_call(kind: str, next_kind: str | None) -> bool:
    """Whether the next rung serves a shorter prompt than this one (a trained rung after demonstrations or
    passages): cheaper per call on the same model, whatever its one-time training costs."""
    return kind in LONG_PROMPTS and next_kind in SERVES_ZERO_SHOT


def decide(
    dev: Estimate,
    sd: float,
    metric: str,
    threshold: float,
    policy: PolicySpec,
    available: int | None = None,
    kind: str = "",
    next_rung: tuple[str, str] | None = None,
) -> Decision:
    """``sd``: the per-example standard deviation of the dev scores; ``available``: the dev examples the task can
    supply (its whole dev split); ``kind`` and ``next_rung`` (name, kind): this rung's kind and the next one the
    climb would measure, for an inconclusive rung under ``policy.inconclusive: report``."""
    status = status_of(dev, threshold, policy)
    where = f"dev {metric} {fmt(dev)}"
    n_needed: int | None = None
    action: Action = "stop"
    if status == "meets":
        how = "its whole interval is at or above" if policy.confidence == "lower_bound" else "its mean is at or above"
        reason = f"{where} meets the target {threshold:.3f}: {how} it"
    elif status == "gap":
        action, reason = (
            "climb",
            f"{where} is below the target {threshold:.3f} by its whole interval: the gap is measured",
        )
    else:
        spread = sd if sd > 0 else math.sqrt(threshold * (1 - threshold))
        n_needed = n_to_decide(dev.mean, threshold, dev.method == "wilson", spread, dev.n, policy.power)
        reason = f"{where} is inconclusive against the target {threshold:.3f} (its interval contains it); "
        if policy.inconclusive != "report":
            action = "climb" if policy.inconclusive == "climb" else "stop"
            reason += (
                f"{'climbing anyway' if action == 'climb' else 'stopping'} (policy.inconclusive: {policy.inconclusive})"
            )
        else:
            action, then = _settle(dev, threshold, policy, n_needed, available, kind, next_rung)
            reason += then
    small = too_small(dev, policy) if status == "inconclusive" and n_needed is None else None
    if small:
        reason += f"; {small}"
    return Decision(
        action=action,
        status=status,
        meets_target=status == "meets",
        reason=reason,
        n_needed=n_needed,
        dev_available=available,
    )


def decide_sequential(
    seq: SequentialDecision,
    available: int,
    metric: str,
    threshold: float,
    policy: PolicySpec,
    kind: str = "",
    next_rung: tuple[str, str] | None = None,
) -> Decision:
    """``policy.sequential``: the dev status from the confidence sequence walked over the dev examples in order."""
    where = (
        f"dev {metric}: anytime-valid confidence sequence {interval_text(seq.low, seq.high)} after {seq.n} of "
        f"{available} dev examples"
    )
    if seq.verdict == "meets":
        return Decision(
            action="stop",
            status="meets",
            meets_target=True,
            dev_available=available,
            reason=f"{where} meets the target {threshold:.3f}: it excludes every value below it",
        )
    if seq.verdict == "gap":
        return Decision(
            action="climb",
            status="gap",
            meets_target=False,
            dev_available=available,
            reason=f"{where} is below the target {threshold:.3f}: the gap is measured",
        )
    reason = f"{where} has not decided against the target {threshold:.3f}; "
    action: Action
    if policy.inconclusive != "report":
        action = "climb" if policy.inconclusive == "climb" else "stop"
        reason += (
            f"{'climbing anyway' if action == 'climb' else 'stopping'} (policy.inconclusive: {policy.inconclusive})"
        )
    elif next_rung is not None and cheaper_per_call(kind, next_rung[1]):
        action = "climb"
        reason += f"climbing: {next_rung[0]} serves the zero-shot prompt, cheaper per call than {kind}'s"
    else:
        action = "stop"
        reason += "stopping: `ladder resolve RUN` continues the sequence with data.reserve"
    return Decision(
        action=action,
        status="inconclusive",
        meets_target=False,
        reason=reason,
        dev_available=available,
    )


def _settle(
    dev: Estimate,
    threshold: float,
    policy: PolicySpec,
    n_needed: int | None,
    available: int | None,
    kind: str,
    next_rung: tuple[str, str] | None,
) -> tuple[Action, str]:
    """``policy.inconclusive: report``: stop and say how many dev examples would decide, unless more data cannot
    decide it (the task has fewer dev examples than needed) or the next rung is cheaper per call; then climb."""
    above = dev.mean >= threshold
    verb = "confirm" if above else "resolve"
    if n_needed is None:
        return "stop", "stopping: its mean sits on the target, so no number of examples resolves it"
    need = f"about {n_needed} dev examples would {verb} it ({policy.power:.0%} power, if its mean holds)"
    short = available is not None and n_needed > available
    if next_rung is not None and above and cheaper_per_call(kind, next_rung[1]):
        return "climb", (
            f"{need}; climbing: {next_rung[0]} serves the zero-shot prompt, cheaper per call than "
            f"{kind}'s, and may meet the target outright"
        )
    if short and not above:
        return "climb", (
            f"{need}, more than the task's {available}: its mean is below the target and the dev split "
            "cannot show it, so climbing"
        )
    if short and available is not None:
        return "stop", (
            f"stopping: the dev split ({available} examples) cannot {verb} it: {need}; add labelled dev "
            f"examples (e.g. move {n_needed - available} from train to dev, or hold some in data.reserve "
            "for `ladder resolve`): a costlier rung is not the cure for a small dev split"
        )
    more = (
        f" (this run measured {dev.n} of the task's {available}: `ladder resolve RUN` walks the rest until it decides)"
        if available and dev.n < available
        else ""
    )
    return "stop", f"stopping: {need}{more}"


def next_rung_after(
    measured: list[str], configured_later: list[str], unavailable: dict[str, str] | None = None
) -> tuple[str | None, list[str]]:
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
        if kind == "continued":
            continue  # opt-in: on quiz-facts' knowledge gap it did not close it (docs/benchmarks.md); never suggested
        if unavailable and kind in unavailable:
            passed_over.append(f"{kind} would need {unavailable[kind]}")
            continue
        return kind, passed_over
    return None, passed_over
