"""Regression gates for CI: a baseline file from one rung of a run, and a paired verdict of a new run
against it on the same example ids. Imports no model code.

- ``make_baseline``: per-example ids, scores and output hashes of one rung on one split, with the data
  hashes, model identity and ladder version that produced them.
- ``gate``: the same pairing and tests as ``assess`` (``scoring.compare.compare_by_id``). A metric
  regresses when the candidate is worse than the baseline by more than ``margin`` and the paired test
  says so at ``alpha`` (exact McNemar for yes/no scores with no margin; otherwise a paired bootstrap of
  H0: delta = -margin). Every check also states what the gate can see: the minimum detectable effect at
  the baseline's n (80% power) and its power against a 5-point drop, so nobody trusts a blind gate.
- Exit codes (``GateResult.exit_code``): 0 pass, 1 regression; bad input is a LadderError (exit 2).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

from pydantic import BaseModel, ConfigDict, Field, ValidationError

import ladder
from ladder.errors import LadderError
from ladder.fileio import atomic_write_text, read_json
from ladder.record import AssessmentRun, ExampleRecord, ModelIdentity, RungResult
from ladder.scoring.compare import compare_by_id, is_binary, measured_binary
from ladder.scoring.stats import PairedComparison, minimum_detectable_effect, power_at, score_sd, shifted_p

BASELINE_FORMAT = "ladder-baseline"
BASELINE_VERSION = 1
VISIBLE_DROP = 0.05  # the drop every gate states its power against


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BaselineExample(_Strict):
    id: str
    scores: dict[str, float]
    output_sha256: str


class Baseline(_Strict):
    format: Literal["ladder-baseline"] = BASELINE_FORMAT
    version: int = BASELINE_VERSION
    task_name: str
    rung: str
    rung_type: str
    settings: dict
    split: Literal["dev", "test"]
    metric: str  # the metric gated by default (the task's target metric)
    metrics: list[str]
    data_hashes: dict[str, str]
    limit: int | None
    model: ModelIdentity
    ladder_version: str
    run_id: str
    created: str
    examples: list[BaselineExample] = Field(min_length=1)


def output_hash(record: ExampleRecord) -> str:
    answers = record.samples or [record.output]
    return hashlib.sha256(json.dumps(answers, ensure_ascii=False).encode()).hexdigest()


def _find_rung(run: AssessmentRun, name: str, source: str) -> RungResult:
    result = run.rung(name)
    if result is None:
        measured = ", ".join(r.name for r in run.rungs) or "none"
        raise LadderError(f"{source}: rung {name!r} was not measured in run {run.run_id} (measured: {measured})")
    return result


def make_baseline(run: AssessmentRun, rung: str, split: str = "test", source: str = "run") -> Baseline:
    result = _find_rung(run, rung, source)
    examples = [r for r in result.examples if r.split == split]
    if not examples:
        raise LadderError(f"{source}: rung {rung!r} has no {split} examples")
    return Baseline(
        task_name=run.task_name,
        rung=rung,
        rung_type=result.type,
        settings=result.settings,
        split=split,  # type: ignore[arg-type]
        metric=run.target.metric,
        metrics=run.spec.metric_names,
        data_hashes=run.data_hashes,
        limit=run.limit,
        model=run.model,
        ladder_version=ladder.__version__,
        run_id=run.run_id,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        examples=[BaselineExample(id=r.id, scores=r.scores, output_sha256=output_hash(r)) for r in examples],
    )


def save_baseline(baseline: Baseline, path: Path) -> None:
    atomic_write_text(path, baseline.model_dump_json(indent=1) + "\n")


def load_baseline(path: str | Path) -> Baseline:
    path = Path(path)
    raw = read_json(path, "baseline")
    if not isinstance(raw, dict) or raw.get("format") != BASELINE_FORMAT:
        raise LadderError(f"{path}: not a ladder baseline file (make one with `ladder baseline RUN --rung NAME --to FILE`)")
    if raw.get("version") != BASELINE_VERSION:
        raise LadderError(f"{path}: baseline version {raw.get('version')!r} is not {BASELINE_VERSION}")
    try:
        return Baseline.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise LadderError(f"{path}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None


class GateCheck(_Strict):
    metric: str
    comparison: PairedComparison  # candidate vs baseline, same ids
    baseline_mean: float
    candidate_mean: float
    p_regression: float  # the test's p-value for H0: delta = -margin
    regressed: bool
    mde: float  # minimum detectable effect at the baseline's n (80% power, two-sided alpha)
    power_at_visible_drop: float  # power against a VISIBLE_DROP drop
    changed_outputs: int  # examples whose output differs from the baseline's


class GateResult(_Strict):
    task_name: str
    rung: str
    split: str
    n: int
    margin: float
    alpha: float
    checks: list[GateCheck]
    notes: list[str] = []

    @property
    def passed(self) -> bool:
        return not any(c.regressed for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


def gate(
    run: AssessmentRun,
    baseline: Baseline,
    rung: str | None = None,
    metrics: list[str] | None = None,
    margin: float = 0.0,
    alpha: float = 0.05,
    source: str = "run",
    baseline_source: str = "baseline",
) -> GateResult:
    if not 0 < alpha < 1:
        raise LadderError(f"--alpha: must be between 0 and 1, got {alpha}")
    if not 0 <= margin < 1:
        raise LadderError(f"--margin: must be in [0, 1), got {margin}")
    split = baseline.split
    ours, theirs = run.data_hashes.get(split), baseline.data_hashes.get(split)
    if ours != theirs:
        raise LadderError(
            f"{source}: the {split} data differs from the baseline's (sha256 {str(ours)[:12]} vs {str(theirs)[:12]} "
            f"in {baseline_source}): a gate pairs the same examples; rebuild the baseline on the new data"
        )
    result = _find_rung(run, rung or baseline.rung, source)
    candidate = {r.id: r for r in result.examples if r.split == split}
    wanted = metrics or [baseline.metric]
    notes = []
    if run.model.weights_sha256 != baseline.model.weights_sha256:
        notes.append(f"the model differs from the baseline's ({run.model.name} vs {baseline.model.name})")
    checks = []
    for metric in wanted:
        if metric not in baseline.metrics:
            raise LadderError(f"--metric: {metric!r} is not in {baseline_source} (metrics: {', '.join(baseline.metrics)})")
        if candidate and metric not in next(iter(candidate.values())).scores:
            raise LadderError(f"{source}: rung {result.name!r} has no {metric!r} scores")
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
        checks.append(GateCheck(
            metric=metric,
            comparison=cmp,
            baseline_mean=sum(a) / len(a),
            candidate_mean=sum(b) / len(b),
            p_regression=p,
            regressed=cmp.delta < -margin and p < alpha,
            mde=mde,
            power_at_visible_drop=power,
            changed_outputs=changed,
        ))
        if is_binary(binary, a) and margin > 0:
            notes.append(f"{metric}: with a margin the test is a paired bootstrap of delta = -{margin}, not McNemar")
    return GateResult(task_name=run.task_name, rung=result.name, split=split, n=len(baseline.examples), margin=margin,
                      alpha=alpha, checks=checks, notes=notes)


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


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3g}"


def check_line(result: GateResult, c: GateCheck) -> str:
    cmp = c.comparison
    verdict = "REGRESSION" if c.regressed else "pass"
    return (f"{verdict}: {result.rung} {c.metric} {c.candidate_mean:.3f} vs baseline {c.baseline_mean:.3f}, "
            f"Δ {cmp.delta:+.3f} [{cmp.low:+.3f}, {cmp.high:+.3f}], {_p(c.p_regression)} ({cmp.method}; "
            f"{cmp.wins} better, {cmp.losses} worse, {c.changed_outputs} outputs changed); n={result.n}, margin "
            f"{result.margin}, alpha {result.alpha}; this gate sees drops of {c.mde:.3f} or more "
            f"(power {c.power_at_visible_drop:.0%} against a {VISIBLE_DROP:.2f} drop)")


def render_gate_markdown(result: GateResult) -> str:
    head = "✅ **ladder gate passed**" if result.passed else "❌ **ladder gate: regression**"
    lines = [f"{head} — `{result.task_name}` / `{result.rung}` on {result.split} (n={result.n}, paired on the same examples)", "",
             "| metric | baseline | candidate | Δ [95% CI] | better / worse | p | verdict | detectable drop (80% power) | power vs 5-pt drop |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in result.checks:
        cmp = c.comparison
        lines.append(
            f"| {c.metric} | {c.baseline_mean:.3f} | {c.candidate_mean:.3f} | {cmp.delta:+.3f} [{cmp.low:+.3f}, {cmp.high:+.3f}] "
            f"| {cmp.wins} / {cmp.losses} | {_p(c.p_regression)} | {'regression' if c.regressed else 'pass'} "
            f"| {c.mde:.3f} | {c.power_at_visible_drop:.0%} |"
        )
    lines += ["", f"A regression is a drop of more than {result.margin} with p below {result.alpha} (two-sided; exact "
              "McNemar for yes/no scores without a margin, paired bootstrap otherwise). The detectable drop assumes "
              "independent errors between the two runs (a conservative bound)."]
    lines += [f"- note: {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def render_junit(results: list[GateResult]) -> str:
    """One <testsuite> per gate, one <testcase> per metric checked; a regression is a <failure>."""
    suites = []
    for result in results:
        failures = sum(c.regressed for c in result.checks)
        cases = []
        for c in result.checks:
            body = escape(check_line(result, c))
            inner = (f'<failure message={quoteattr("regression: " + c.metric)}>{body}</failure>' if c.regressed
                     else f"<system-out>{body}</system-out>")
            cases.append(f'    <testcase classname={quoteattr("ladder.gate." + result.task_name)} '
                         f'name={quoteattr(result.rung + "." + c.metric)} time="0">{inner}</testcase>')
        suites.append(f'  <testsuite name={quoteattr("ladder gate " + result.task_name + " " + result.rung)} '
                      f'tests="{len(result.checks)}" failures="{failures}" errors="0">\n' + "\n".join(cases) + "\n  </testsuite>")
    tests = sum(len(r.checks) for r in results)
    failures = sum(c.regressed for r in results for c in r.checks)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuites tests="{tests}" failures="{failures}">\n'
            + "\n".join(suites) + "\n</testsuites>\n")
