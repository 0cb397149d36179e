"""Regression gates for CI: a baseline file from one rung of a run, and a paired verdict of a new run
against it on the same example ids. Imports no model code.

- ``make_baseline``: per-example ids, scores and output hashes of one rung on one split, with the data
  hashes, model identity and ladder version that produced them.
- ``gate``: the same pairing and tests as ``assess`` (``scoring.compare.compare_by_id``), framed as
  non-inferiority. Three verdicts per metric:
  **pass** when the 95% interval of the paired difference (candidate - baseline) rules out a drop larger
  than ``margin`` (its lower bound is at or above -margin; identical outputs give [0, 0] and pass at margin 0);
  **regression** when a drop beyond the margin is shown (the difference is below -margin and the paired
  test of H0: delta = -margin rejects at ``alpha``: exact McNemar for yes/no scores with no margin, a paired
  bootstrap otherwise); **inconclusive** otherwise, with the n that would decide at this margin and spread.
  A gate that could not have seen a regression never says pass. Every check also states what the gate can
  see: the minimum detectable drop at the baseline's n (80% power) and its power against a 5-point drop.
- Exit codes (``GateResult.exit_code``): 0 pass, 1 regression, 3 inconclusive (``on_inconclusive`` turns it
  into 1 or 0, a team's choice); bad input is a LadderError (exit 2).
"""

from __future__ import annotations

import math
from typing import Literal

from ladder.errors import LadderError
from ladder.gate.baseline import Baseline, find_rung, judge_keys, output_hash
from ladder.record import AssessmentRun, PairedComparison
from ladder.scoring.compare import compare_by_id, is_binary, measured_binary
from ladder.scoring.stats import (
    minimum_detectable_effect,
    n_to_decide,
    power_at,
    score_sd,
    shifted_p,
)
from ladder.spec import Strict

VISIBLE_DROP = 0.05  # the drop every gate states its power against

INCONCLUSIVE_EXIT = 3

Verdict = Literal["pass", "regression", "inconclusive"]


class GateCheck(Strict):
    metric: str
    comparison: PairedComparison  # candidate vs baseline, same ids
    baseline_mean: float
    candidate_mean: float
    p_regression: float  # the test's p-value for H0: delta = -margin
    verdict: Verdict
    n_to_decide: int | None = None  # inconclusive: examples that would decide at this margin and spread (80% power)
    passing_margin: float  # the smallest margin this interval passes at (-low, at least 0)
    mde: float  # minimum detectable effect at the baseline's n (80% power, two-sided alpha)
    power_at_visible_drop: float  # power against a VISIBLE_DROP drop
    changed_outputs: int  # examples whose output differs from the baseline's

    @property
    def regressed(self) -> bool:
        return self.verdict == "regression"


class GateResult(Strict):
    task_name: str
    rung: str
    split: str
    n: int
    margin: float
    alpha: float
    checks: list[GateCheck]
    notes: list[str] = []
    on_inconclusive: Literal["fail", "pass"] | None = None  # None: exit 3

    @property
    def verdict(self) -> Verdict:
        verdicts = {c.verdict for c in self.checks}
        return "regression" if "regression" in verdicts else "inconclusive" if "inconclusive" in verdicts else "pass"

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def exit_code(self) -> int:
        if self.verdict == "inconclusive":
            return {"fail": 1, "pass": 0, None: INCONCLUSIVE_EXIT}[self.on_inconclusive]
        return 0 if self.verdict == "pass" else 1


def verdict_of(cmp: PairedComparison, margin: float, p_regression: float, alpha: float) -> Verdict:
    """Non-inferiority: pass when the interval's lower bound is at or above -margin; regression when the
    difference is beyond the margin and the test says so; inconclusive otherwise."""
    if cmp.low >= -margin:
        return "pass"
    if cmp.delta < -margin and p_regression < alpha:
        return "regression"
    return "inconclusive"


def _n_to_decide(diffs: list[float], margin: float) -> int | None:
    """Paired examples at which the interval of the difference would lie wholly above -margin (or below it,
    for a drop beyond it) with 80% power, if the mean difference and its spread hold."""
    n = len(diffs)
    mean = sum(diffs) / n
    return n_to_decide(mean, -margin, False, score_sd(diffs), n, 0.8)


def check_levels(margin: float, alpha: float) -> None:
    if not 0 < alpha < 1:
        raise LadderError(f"--alpha: must be between 0 and 1, got {alpha}")
    if not 0 <= margin < 1:
        raise LadderError(f"--margin: must be in [0, 1), got {margin}")


def gate(
    run: AssessmentRun,
    baseline: Baseline,
    rung: str | None = None,
    metrics: list[str] | None = None,
    margin: float = 0.0,
    alpha: float = 0.05,
    source: str = "run",
    baseline_source: str = "baseline",
    on_inconclusive: Literal["fail", "pass"] | None = None,
) -> GateResult:
    check_levels(margin, alpha)
    split = baseline.split
    ours, theirs = run.data_hashes.get(split), baseline.data_hashes.get(split)
    if ours != theirs:
        raise LadderError(
            f"{source}: the {split} data differs from the baseline's (sha256 {str(ours)[:12]} vs {str(theirs)[:12]} "
            f"in {baseline_source}): a gate pairs the same examples; rebuild the baseline on the new data"
        )
    result = find_rung(run, rung or baseline.rung, source)
    if not result.certified():
        failed = result.certificate.failure() if result.certificate is not None else None
        why = (
            f"its adapter certificate failed {failed.name}: {failed.detail}"
            if failed
            else "it has no adapter certificate (a record from before certificates: re-run the assessment)"
        )
        raise LadderError(f"{source}: rung {result.name!r} is a trained rung the gate cannot trust: {why}")
    candidate = {r.id: r for r in result.examples if r.split == split}
    wanted = metrics or [baseline.metric]
    notes = []
    if run.model.weights_sha256 != baseline.model.weights_sha256:
        notes.append(f"the model differs from the baseline's ({run.model.name} vs {baseline.model.name})")
    checks = []
    for metric in wanted:
        if metric not in baseline.metrics:
            raise LadderError(
                f"--metric: {metric!r} is not in {baseline_source} (metrics: {', '.join(baseline.metrics)})"
            )
        if candidate and metric not in next(iter(candidate.values())).scores:
            raise LadderError(f"{source}: rung {result.name!r} has no {metric!r} scores")
        ours, theirs = judge_keys(run).get(metric), baseline.judges.get(metric)
        if ours != theirs:
            raise LadderError(
                f"{source}: {metric!r} was graded by {ours or 'no judge'} here and by {theirs or 'no judge'} in "
                f"{baseline_source}: judged scores compare only under the same judge and rubric; rebuild the baseline"
            )
        base_scores = {e.id: e.scores[metric] for e in baseline.examples}
        cand_scores = {i: r.scores[metric] for i, r in candidate.items()}
        binary = measured_binary(result.splits[split], metric)
        try:
            cmp = compare_by_id(base_scores, cand_scores, metric, f"baseline {baseline.rung}", run.seed, binary)
        except LadderError as exc:
            raise LadderError(f"{source}: {exc}; was it run with the baseline's --limit ({baseline.limit})?") from None
        ids = list(base_scores)
        a, b = [base_scores[i] for i in ids], [cand_scores[i] for i in ids]
        if margin == 0:
            p = cmp.p_value
        else:
            p = shifted_p(a, b, -margin, seed=run.seed)
        mde, power = _sensitivity(a, is_binary(binary, a), alpha)
        changed = sum(1 for e in baseline.examples if output_hash(candidate[e.id]) != e.output_sha256)
        verdict = verdict_of(cmp, margin, p, alpha)
        checks.append(
            GateCheck(
                metric=metric,
                comparison=cmp,
                baseline_mean=sum(a) / len(a),
                candidate_mean=sum(b) / len(b),
                p_regression=p,
                verdict=verdict,
                n_to_decide=_n_to_decide([y - x for x, y in zip(a, b)], margin) if verdict == "inconclusive" else None,
                passing_margin=max(0.0, -cmp.low),
                mde=mde,
                power_at_visible_drop=power,
                changed_outputs=changed,
            )
        )
        if is_binary(binary, a) and margin > 0:
            notes.append(f"{metric}: with a margin the test is a paired bootstrap of delta = -{margin}, not McNemar")
    return GateResult(
        task_name=run.task_name,
        rung=result.name,
        split=split,
        n=len(baseline.examples),
        margin=margin,
        alpha=alpha,
        checks=checks,
        notes=notes,
        on_inconclusive=on_inconclusive,
    )


def _sensitivity(baseline: list[float], binary: bool, alpha: float) -> tuple[float, float]:
    """(minimum detectable drop at 80% power, power against a VISIBLE_DROP drop) at the baseline's n,
    assuming the candidate's errors independent of the baseline's (the paired test does at least as well
    when they are correlated). For yes/no scores the spread is that of the scores before and after the
    drop, p(1-p) + q(1-q) with q = p - drop, so a perfect baseline still gets an honest, non-zero MDE."""
    n = len(baseline)
    if not binary:
        sd = math.sqrt(2) * score_sd(baseline)
        return minimum_detectable_effect(n, sd, alpha), power_at(VISIBLE_DROP, n, sd, alpha)
    p = sum(baseline) / n

    def sd_for(drop: float) -> float:
        q = min(1.0, max(0.0, p - drop))
        return math.sqrt(p * (1 - p) + q * (1 - q))

    mde = VISIBLE_DROP
    for _ in range(50):  # fixed point of mde = MDE(n, sd(mde))
        mde = min(p, minimum_detectable_effect(n, sd_for(mde), alpha)) if p > 0 else 0.0
    return mde, power_at(VISIBLE_DROP, n, sd_for(VISIBLE_DROP), alpha)
