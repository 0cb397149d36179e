"""``ladder migrate``'s verdict: what ships today (one rung of a finished run, on its base model, local or hosted)
against every rung of a new climb on another base model, paired on the same test examples. Pure: no model code.

Per new rung, the gate's own check (``gate.verdict``: the paired 95% interval of new - shipped on the target
metric; pass, regression or inconclusive at the margin), and a one-sided non-inferiority p-value (the share of
the paired bootstrap's mean differences below -margin), Holm-adjusted over the rungs gated: taking the cheapest
of several rungs that each pass alone would promise more than one gate's 95%. Then one of three:

- **migrate**: the cheapest new rung (total cost at the task's expected volume, ``decide.recommend.cheapest``)
  that passes its gate and stays non-inferior after the adjustment (adjusted p at most alpha / 2);
- **stay**: every new rung that can be trusted shows a drop beyond the margin (each gate's regression test at
  alpha; all of them must show it, so no adjustment is needed), or none can be trusted (a failed adapter
  certificate); with the rung that came closest and by how much;
- **inconclusive**: neither; with the paired test examples that would decide the closest rung.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Literal

from pydantic import Field

import ladder
from ladder.decide.cost import money
from ladder.decide.recommend import cheapest
from ladder.errors import LadderError
from ladder.gate.baseline import Baseline, find_rung, load_document, make_baseline
from ladder.gate.verdict import Verdict, check_levels, gate
from ladder.record import (
    AssessmentRun,
    Estimate,
    ModelIdentity,
    PairedComparison,
    RungCost,
    RungResult,
    SkippedRung,
)
from ladder.scoring.compare import compare_by_id
from ladder.scoring.format import interval_text, p_text
from ladder.scoring.stats import holm, noninferiority_p
from ladder.spec import Strict

MIGRATION_FORMAT: Literal["ladder-migration"] = "ladder-migration"
MIGRATION_VERSION = 1

MigrationVerdict = Literal["migrate", "stay", "inconclusive"]
RungVerdict = Literal["non-inferior", "regression", "inconclusive", "untrusted"]


class Shipped(Strict):
    """What ships today: one rung of the old run, its test score and what it costs."""

    run_id: str
    source: str  # the old run as given on the command line
    model: ModelIdentity
    rung: str
    type: str
    test: Estimate  # the target metric on the test examples both runs share
    cost: RungCost | None = None


class MigrationCandidate(Strict):
    """One rung of the new climb, gated against what ships today."""

    rung: str
    type: str
    test: Estimate
    dev_mean: float | None = None
    comparison: PairedComparison  # new - shipped, same test examples
    gate_verdict: Verdict | None = None  # ``ladder gate``'s verdict for this rung alone (None: untrusted)
    p_regression: float | None = None
    p_noninferior: float  # one-sided, H0: new is worse by more than the margin
    p_adjusted: float  # Holm over the trusted rungs
    verdict: RungVerdict
    n_to_decide: int | None = None
    mde: float | None = None  # the drop this gate can see (80% power)
    cost: RungCost | None = None
    won: list[str] = []  # test ids the new rung gets right (scores higher) where the shipped one did not
    lost: list[str] = []
    untrusted: str | None = None  # why it cannot be gated (its adapter certificate)


class MigrationExample(Strict):
    input: str
    target: str
    shipped: str  # the shipped rung's answer
    outputs: dict[str, str]  # new rung -> its answer


class Migration(Strict):
    format: Literal["ladder-migration"] = MIGRATION_FORMAT
    version: int = MIGRATION_VERSION
    created: str
    ladder_version: str
    command: str | None = None
    task_name: str
    metric: str
    split: Literal["test"] = "test"
    n: int
    margin: float
    alpha: float
    to: str  # the new base model as given (--to)
    shipped: Shipped
    new_run_id: str
    new_run: str  # the new climb's record, as written
    new_model: ModelIdentity
    candidates: list[MigrationCandidate] = Field(min_length=1)
    skipped: list[SkippedRung] = []
    verdict: MigrationVerdict
    rung: str | None = None  # migrate: the new rung to ship
    closest: str | None = None  # stay, inconclusive: the rung that came closest
    n_to_decide: int | None = None  # inconclusive: paired test examples that would decide the closest rung
    summary: str
    reasons: list[str] = []
    examples: dict[str, MigrationExample] = {}  # every example some rung won or lost


def reference(old: AssessmentRun, shipped: str, source: str) -> RungResult:
    """The rung that ships today, checked: measured on test, and trusted (a trained rung's certificate passed)."""
    result = find_rung(old, shipped, source)
    if not result.certified():
        raise LadderError(
            f"{source}: rung {shipped!r} failed or lacks its adapter certificate: it cannot be the reference"
        )
    if not any(r.split == "test" for r in result.examples):
        raise LadderError(f"{source}: rung {shipped!r} has no test examples to pair with")
    return result


def load_migration(path: str | Path) -> Migration:
    return load_document(path, Migration, "migration record", "`ladder migrate RUN --to MODEL`")


def _scores(run: AssessmentRun, rung: str, metric: str) -> dict[str, float]:
    result = run.rung(rung)
    assert result is not None
    return {r.id: r.scores[metric] for r in result.examples if r.split == "test"}


def _candidate(
    new: AssessmentRun,
    baseline: Baseline,
    result: RungResult,
    metric: str,
    margin: float,
    alpha: float,
    old_source: str,
    new_source: str,
) -> MigrationCandidate:
    theirs = {e.id: e.scores[metric] for e in baseline.examples}
    ours = _scores(new, result.name, metric)
    common = [i for i in theirs if i in ours]
    dev = result.splits.get("dev")
    p_ni = noninferiority_p([theirs[i] for i in common], [ours[i] for i in common], margin, seed=new.seed)
    if result.certified():
        check = gate(new, baseline, result.name, [metric], margin, alpha, new_source, old_source).checks[0]
        comparison, untrusted = check.comparison, None
    else:
        failed = result.certificate.failure() if result.certificate is not None else None
        untrusted = (
            f"its adapter certificate failed {failed.name}: {failed.detail}" if failed else "it has no certificate"
        )
        comparison, check = compare_by_id(theirs, ours, metric, f"shipped {baseline.rung}", new.seed, False), None
    return MigrationCandidate(
        rung=result.name,
        type=result.type,
        test=result.splits["test"].metrics[metric],
        dev_mean=dev.metrics[metric].mean if dev is not None and metric in dev.metrics else None,
        comparison=comparison,
        gate_verdict=check.verdict if check else None,
        p_regression=check.p_regression if check else None,
        p_noninferior=p_ni,
        p_adjusted=p_ni,
        # non-inferior is decided after Holm's adjustment over every rung gated
        verdict="untrusted" if check is None else "regression" if check.verdict == "regression" else "inconclusive",
        n_to_decide=check.n_to_decide if check else None,
        mde=check.mde if check else None,
        cost=result.cost,
        won=[i for i in common if ours[i] > theirs[i]],
        lost=[i for i in common if ours[i] < theirs[i]],
        untrusted=untrusted,
    )


def _cost_text(cost: RungCost | None) -> str:
    if cost is None:
        return "an unmeasured cost"
    return (
        f"{money(cost.cost_per_1k_calls, cost.unit)} per 1k calls and {money(cost.adaptation_cost, cost.unit)} to adapt"
    )


def _delta_text(c: MigrationCandidate) -> str:
    cmp = c.comparison
    return f"Δ {cmp.delta:+.3f} {interval_text(cmp.low, cmp.high, signed=True)}"


def migration(
    old: AssessmentRun,
    shipped: str,
    new: AssessmentRun,
    to: str,
    margin: float = 0.0,
    alpha: float = 0.05,
    old_source: str = "old run",
    new_source: str = "new run",
    command: str | None = None,
) -> Migration:
    """Gate every rung of ``new`` against rung ``shipped`` of ``old`` on their shared test examples; recommend."""
    check_levels(margin, alpha)
    old_result = reference(old, shipped, old_source)
    baseline = make_baseline(old, shipped, "test", source=old_source)
    metric = baseline.metric
    if not new.rungs:
        raise LadderError(f"{new_source}: the new climb measured no rung")
    cands = [_candidate(new, baseline, r, metric, margin, alpha, old_source, new_source) for r in new.rungs]
    trusted = [c for c in cands if c.verdict != "untrusted"]
    for c, p in zip(trusted, holm([c.p_noninferior for c in trusted])):
        c.p_adjusted = p
        if c.gate_verdict == "pass" and p <= alpha / 2:
            c.verdict = "non-inferior"
    old_test = old_result.splits["test"].metrics[metric]
    ship = Shipped(
        run_id=old.run_id,
        source=old_source,
        model=old.model,
        rung=shipped,
        type=old_result.type,
        test=old_test,
        cost=old_result.cost,
    )
    verdict, chosen, closest, n_decide, summary, reasons = _recommend(new, ship, cands, metric, margin, alpha)
    shown = {i for c in cands for i in c.won + c.lost}
    old_out = {r.id: r.output for r in old_result.examples if r.split == "test"}
    targets = {r.id: r.target for r in old_result.examples if r.split == "test"}
    inputs = old.inputs.get("test", {}) or new.inputs.get("test", {})
    outs = {r.name: {e.id: e.output for e in r.examples if e.split == "test"} for r in new.rungs}
    return Migration(
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        ladder_version=ladder.__version__,
        command=command,
        task_name=old.task_name,
        metric=metric,
        n=len(baseline.examples),
        margin=margin,
        alpha=alpha,
        to=to,
        shipped=ship,
        new_run_id=new.run_id,
        new_run=new_source,
        new_model=new.model,
        candidates=cands,
        skipped=new.skipped,
        verdict=verdict,
        rung=chosen,
        closest=closest,
        n_to_decide=n_decide,
        summary=summary,
        reasons=reasons,
        examples={
            i: MigrationExample(
                input=inputs.get(i, ""),
                target=targets.get(i, ""),
                shipped=old_out.get(i, ""),
                outputs={rung: o[i] for rung, o in outs.items() if i in o},
            )
            for i in sorted(shown)
        },
    )


def _recommend(
    new: AssessmentRun, ship: Shipped, cands: list[MigrationCandidate], metric: str, margin: float, alpha: float
) -> tuple[MigrationVerdict, str | None, str | None, int | None, str, list[str]]:
    """(verdict, rung to ship, closest rung, n to decide, summary, reasons)."""
    old_name, new_name = f"{ship.rung} on {ship.model.name}", new.model.name
    trusted = [c for c in cands if c.verdict != "untrusted"]
    reasons = [
        f"{c.rung}: {metric} {c.test.mean:.3f} vs {ship.test.mean:.3f}, {_delta_text(c)}, "
        f"{len(c.won)} won / {len(c.lost)} lost, {c.verdict}"
        + (
            f" ({c.untrusted})"
            if c.untrusted
            else f" (gate {c.gate_verdict}, non-inferiority Holm {p_text(c.p_adjusted)})"
        )
        for c in cands
    ]
    if len(trusted) > 1:
        reasons.append(
            f"{len(trusted)} rungs were gated: a rung is non-inferior when its gate passes and its one-sided "
            f"p-value stays at most {alpha / 2:g} after Holm's adjustment over them"
        )
    passing = [c for c in trusted if c.verdict == "non-inferior"]
    if passing:
        by_name = {c.rung: c for c in passing}
        best = by_name[cheapest([r for r in new.rungs if r.name in by_name]).name]
        summary = (
            f"Migrate: {best.rung} on {new_name} is non-inferior to {old_name} ({metric} {best.test.mean:.3f} vs "
            f"{ship.test.mean:.3f}, {_delta_text(best)}, n={best.comparison.n}, margin {margin:g}); it costs "
            f"{_cost_text(best.cost)} (today: {_cost_text(ship.cost)})."
        )
        return "migrate", best.rung, None, None, summary, reasons
    if not trusted:
        summary = f"Stay: no rung on {new_name} can be trusted (every adapter certificate failed); keep {old_name}."
        return "stay", None, None, None, summary, reasons
    closest = _closest(trusted)
    if all(c.verdict == "regression" for c in trusted):
        summary = (
            f"Stay: every rung on {new_name} is worse than {old_name} by more than the margin {margin:g}; the "
            f"closest, {closest.rung}, is at {_delta_text(closest)} ({metric} {closest.test.mean:.3f} vs "
            f"{ship.test.mean:.3f}, n={closest.comparison.n})."
        )
        return "stay", None, closest.rung, None, summary, reasons
    closest = _closest([c for c in trusted if c.verdict == "inconclusive"])
    need = closest.n_to_decide
    decide = (
        f"about {need} paired test examples would decide it at this margin and spread"
        if need
        else "no number of examples decides it at this margin (the difference sits on it)"
    )
    summary = (
        f"Inconclusive: no rung on {new_name} is shown non-inferior to {old_name}, nor all shown worse; the "
        f"closest, {closest.rung}, is at {_delta_text(closest)} (n={closest.comparison.n}, margin {margin:g}): "
        f"{decide}."
    )
    return "inconclusive", None, closest.rung, need, summary, reasons


def _closest(cands: list[MigrationCandidate]) -> MigrationCandidate:
    return max(cands, key=lambda c: (c.comparison.delta, c.comparison.low))
