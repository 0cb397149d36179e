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

import datetime as _dt
import hashlib
import json
import math
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

from pydantic import Field, ValidationError

import ladder
from ladder.errors import LadderError
from ladder.fileio import atomic_write_text, read_json
from ladder.record import AssessmentRun, ExampleRecord, ModelIdentity, RungResult
from ladder.report.document import Document, Items, Paragraph, Section, Table
from ladder.scoring.compare import compare_by_id, is_binary, measured_binary
from ladder.scoring.stats import (
    PairedComparison,
    minimum_detectable_effect,
    n_to_decide,
    power_at,
    score_sd,
    shifted_p,
)
from ladder.spec import Strict

BASELINE_FORMAT = "ladder-baseline"
BASELINE_VERSION = 1
VISIBLE_DROP = 0.05  # the drop every gate states its power against
INCONCLUSIVE_EXIT = 3
Verdict = Literal["pass", "regression", "inconclusive"]


class BaselineExample(Strict):
    id: str
    scores: dict[str, float]
    output_sha256: str


class Baseline(Strict):
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
    if not result.certified():
        failed = result.certificate.failure() if result.certificate is not None else None
        why = (f"its adapter certificate failed {failed.name}: {failed.detail}" if failed else
               "it has no adapter certificate (a record from before certificates: re-run the assessment)")
        raise LadderError(f"{source}: rung {result.name!r} is a trained rung the gate cannot trust: {why}")
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
        verdict = verdict_of(cmp, margin, p, alpha)
        checks.append(GateCheck(
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
        ))
        if is_binary(binary, a) and margin > 0:
            notes.append(f"{metric}: with a margin the test is a paired bootstrap of delta = -{margin}, not McNemar")
    return GateResult(task_name=run.task_name, rung=result.name, split=split, n=len(baseline.examples), margin=margin,
                      alpha=alpha, checks=checks, notes=notes, on_inconclusive=on_inconclusive)


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


WORDS = {"pass": "pass", "regression": "REGRESSION", "inconclusive": "INCONCLUSIVE"}


def why(result: GateResult, c: GateCheck) -> str:
    """The verdict in words: what the interval rules out, and for an inconclusive check what would decide it."""
    m = result.margin
    if c.verdict == "pass":
        return f"the interval rules out a drop larger than {m:g}"
    if c.verdict == "regression":
        return f"a drop beyond {m:g} is shown"
    decide = (f"about {c.n_to_decide} paired examples would decide at this margin and spread" if c.n_to_decide
              else "no number of examples decides it at this margin (the difference sits on it)")
    return (f"the interval reaches below -{m:g} but no drop beyond it is shown: the gate cannot tell; {decide}; "
            f"it would pass at a margin of {c.passing_margin:.3f}")


def check_line(result: GateResult, c: GateCheck) -> str:
    cmp = c.comparison
    return (f"{WORDS[c.verdict]}: {result.rung} {c.metric} {c.candidate_mean:.3f} vs baseline {c.baseline_mean:.3f}, "
            f"Δ {cmp.delta:+.3f} [{cmp.low:+.3f}, {cmp.high:+.3f}], {_p(c.p_regression)} ({cmp.method}; "
            f"{cmp.wins} better, {cmp.losses} worse, {c.changed_outputs} outputs changed); {why(result, c)}; n={result.n}, "
            f"margin {result.margin}, alpha {result.alpha}; this gate sees drops of {c.mde:.3f} or more "
            f"(power {c.power_at_visible_drop:.0%} against a {VISIBLE_DROP:.2f} drop)")


HEADS = {"pass": "✅ ladder gate: PASS", "regression": "❌ ladder gate: REGRESSION",
         "inconclusive": "⚠️ ladder gate: INCONCLUSIVE"}


def gate_document(results: list[GateResult]) -> Document:
    """Every gate's verdict as one report document: Markdown for a pull-request comment, HTML for a dashboard."""
    verdicts = {r.verdict for r in results}
    overall = "regression" if "regression" in verdicts else "inconclusive" if "inconclusive" in verdicts else "pass"
    sections = []
    for k, result in enumerate(results):
        rows = []
        for c in result.checks:
            cmp = c.comparison
            rows.append([c.metric, f"{c.baseline_mean:.3f}", f"{c.candidate_mean:.3f}",
                         f"{cmp.delta:+.3f} [{cmp.low:+.3f}, {cmp.high:+.3f}]", f"{cmp.wins} / {cmp.losses}",
                         _p(c.p_regression), f"**{WORDS[c.verdict]}**",
                         str(c.n_to_decide) if c.n_to_decide else "—", f"{c.mde:.3f}", f"{c.power_at_visible_drop:.0%}"])
        blocks: list = [
            Paragraph(f"**{HEADS[result.verdict]}** — `{result.task_name}` / `{result.rung}` on {result.split} "
                      f"(n={result.n}, paired on the same examples, margin {result.margin:g}, alpha {result.alpha:g})"),
            Table(["metric", "baseline", "candidate", "Δ [95% CI]", "better / worse", "p (drop beyond margin)", "verdict",
                   "n to decide", "detectable drop (80% power)", "power vs 5-pt drop"], rows),
            Items([f"{c.metric}: {why(result, c)}" for c in result.checks] + [f"note: {n}" for n in result.notes]),
        ]
        if result.verdict == "inconclusive" and result.on_inconclusive:
            blocks.append(Paragraph(f"Inconclusive counts as **{result.on_inconclusive}** here (`--on-inconclusive "
                                    f"{result.on_inconclusive}`)."))
        sections.append(Section(f"gate-{k}", f"{result.task_name} / {result.rung}" if len(results) > 1 else "", blocks))
    sections.append(Section("rule", "How to read it", [Paragraph(
        "Non-inferiority on the same examples: **pass** when the 95% interval of the paired difference (candidate − "
        "baseline) rules out a drop larger than the margin; **regression** when a drop beyond the margin is shown "
        "(exact McNemar for yes/no scores without a margin, paired bootstrap otherwise); **inconclusive** when the "
        "interval allows such a drop but does not show it: the gate could not have seen a regression, so it does not "
        "say pass. The detectable drop assumes independent errors between the two runs (a conservative bound).")]))
    return Document(title=f"ladder gate: {overall.upper()}", sections=sections)


def render_gate_markdown(result: GateResult) -> str:
    from ladder.report.markdown import render_document

    return render_document(gate_document([result]))


def render_gate(results: list[GateResult], fmt: Literal["md", "html"]) -> str:
    doc = gate_document(results)
    if fmt == "md":
        from ladder.report.markdown import render_document

        return render_document(doc)
    from ladder.report.html import render_html

    return render_html(doc)


def render_junit(results: list[GateResult]) -> str:
    """One <testsuite> per gate, one <testcase> per metric checked; a regression is a <failure>; an inconclusive
    check is a <failure> with its own message, or <skipped> where inconclusive counts as a pass."""
    suites = []
    failures = skipped = 0
    for result in results:
        cases = []
        suite_failures = suite_skipped = 0
        for c in result.checks:
            body = escape(check_line(result, c))
            if c.verdict == "regression" or (c.verdict == "inconclusive" and result.on_inconclusive != "pass"):
                suite_failures += 1
                inner = f'<failure message={quoteattr(c.verdict + ": " + c.metric)}>{body}</failure>'
            elif c.verdict == "inconclusive":
                suite_skipped += 1
                inner = f'<skipped message={quoteattr("inconclusive: " + c.metric)}>{body}</skipped>'
            else:
                inner = f"<system-out>{body}</system-out>"
            cases.append(f'    <testcase classname={quoteattr("ladder.gate.verdict." + result.task_name)} '
                         f'name={quoteattr(result.rung + "." + c.metric)} time="0">{inner}</testcase>')
        failures += suite_failures
        skipped += suite_skipped
        suites.append(f'  <testsuite name={quoteattr("ladder gate " + result.task_name + " " + result.rung)} '
                      f'tests="{len(result.checks)}" failures="{suite_failures}" errors="0" skipped="{suite_skipped}">\n'
                      + "\n".join(cases) + "\n  </testsuite>")
    tests = sum(len(r.checks) for r in results)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuites tests="{tests}" failures="{failures}" skipped="{skipped}">\n'
            + "\n".join(suites) + "\n</testsuites>\n")
