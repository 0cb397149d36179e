"""``ladder resolve RUN``: decide an inconclusive rung with the fewest further dev examples.

The rung's dev scores the run measured come first (from the record: nothing is recomputed), then further
labelled examples: the dev examples the run's --limit left out, then data.reserve. They are evaluated in chunks
through the same eval step and result cache, and after every example an anytime-valid confidence sequence
(``scoring.sequential``) is checked; the walk stops as soon as it decides ``meets`` or ``gap``, or when the
budget or the examples run out (``undecided``). Peeking after every example does not inflate the error rate.
The resolution is appended to the run record (nothing earlier is changed) and printed.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from pathlib import Path

from ladder.errors import LadderError
from ladder.record import AssessmentRun, Resolution, RungResult, load_run, save_run
from ladder.scoring.format import interval_text
from ladder.scoring.sequential import decide_sequentially


def _inconclusive(run: AssessmentRun, name: str | None, source: str) -> RungResult:
    if name is not None:
        result = run.rung(name)
        if result is None:
            measured = ", ".join(r.name for r in run.rungs) or "none"
            raise LadderError(f"--rung: {name!r} was not measured in {source} (measured: {measured})")
        return result
    pending = [r for r in run.rungs if r.decision.status == "inconclusive"]
    if not pending:
        raise LadderError(f"{source}: no rung is inconclusive (give --rung to walk a decided one further)")
    return pending[-1]


def resolve(
    run_dir: Path,
    rung: str | None = None,
    budget: int | None = None,
    alpha: float | None = None,
    backend_name: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Resolution:
    from ladder.data.splits import load_task_data
    from ladder.metrics import scorers
    from ladder.paths import result_cache_dir
    from ladder.run.assess import select_rungs
    from ladder.run.cache import ResultCache
    from ladder.run.context import build_context, task_backend
    from ladder.run.evaluate import run_eval
    from ladder.run.sequential import (
        SEQUENTIAL_CHUNK as CHUNK,  # one look every chunk, as policy.sequential looks
    )
    from ladder.rungs import build_candidate
    from ladder.scoring.compare import score_examples
    from ladder.spec import load_task

    say = progress or (lambda _msg: None)
    record_path = run_dir / "run.json"
    run = load_run(record_path)
    result = _inconclusive(run, rung, str(run_dir))
    if budget is not None and budget < 1:
        raise LadderError(f"--budget: must be at least 1, got {budget}")
    alpha = run.spec.policy.alpha if alpha is None else alpha
    if not 0 < alpha < 1:
        raise LadderError(f"--alpha: must be between 0 and 1, got {alpha}")
    task = load_task(run.task_path)
    data = load_task_data(task)
    if data.splits.hashes.get("dev") != run.data_hashes.get("dev"):
        raise LadderError(
            f"{task.path}: the dev data changed since run {run.run_id}: resolve pairs the same examples; "
            "run the assessment again"
        )
    metric, threshold = run.target.metric, run.target.threshold
    if metric in run.judges:
        raise LadderError(
            f"{run_dir}: the target {metric!r} is a judge metric: resolve tests per-example scores against the "
            "threshold one at a time, and a judge's scores are on its own scale (a calibrated one reaches the "
            "people's only as a mean); assess again with more dev examples instead"
        )
    measured = [e for e in result.examples if e.split == "dev"]
    done = {e.id for e in measured}
    beyond = [ex for ex in data.splits.dev if ex.id not in done]
    further = beyond + data.reserve
    if budget is not None:
        further = further[:budget]
    scores = [e.scores[metric] for e in measured]
    decision = decide_sequentially(scores, threshold, alpha)
    if decision.verdict == "undecided" and not further:
        raise LadderError(
            f"{run_dir}: no further dev examples: the run measured all {len(measured)} of the task's dev "
            "split and the task has no data.reserve (add one: labelled examples no split has)"
        )
    added: dict[str, float] = {}
    reserve_ids = {ex.id for ex in data.reserve}
    if decision.verdict == "undecided":
        (rung_spec,) = select_rungs(task, [result.name])
        spec = task.spec
        name = backend_name or run.model.backend
        where = {"base_url": run.model.base_url} if name == "openai" and run.model.base_url else {}  # the run's server
        backend = task_backend(task, name, **where)
        try:
            formatter = backend.formatter(spec.prompt.format)
            cache = ResultCache(result_cache_dir())
            ctx = build_context(
                task,
                data.splits.train,
                data.splits.dev,
                backend,
                cache,
                say,
                work_dir=run_dir,
                **data.for_rungs(),
            )
            candidate = build_candidate(rung_spec, ctx)
            metrics = {metric: scorers(spec)[metric]}
            for first in range(0, len(further), CHUNK):
                chunk = further[first : first + CHUNK]
                say(f"[{result.name}] resolve: examples {len(scores) + 1}-{len(scores) + len(chunk)}")
                outputs = run_eval(candidate, chunk, backend, formatter, spec, cache)
                records = score_examples(outputs, chunk, metrics, "dev", candidate.demos, spec.output)
                for ex, record in zip(chunk, records):
                    added[ex.id] = record.scores[metric]
                    scores.append(record.scores[metric])
                decision = decide_sequentially(scores, threshold, alpha)
                if decision.verdict != "undecided":
                    break
        finally:
            backend.close()
    if decision.verdict != "undecided":  # the examples after the one that decided were not needed
        added = dict(list(added.items())[: max(0, decision.n - len(measured))])
    from_reserve = sum(1 for i in added if i in reserve_ids)
    sources = {"dev beyond --limit": len(added) - from_reserve, "data.reserve": from_reserve}
    resolution = Resolution(
        rung=result.name,
        metric=metric,
        threshold=threshold,
        verdict=decision.verdict,
        n=decision.n,
        measured=len(measured),
        low=decision.low,
        high=decision.high,
        alpha=alpha,
        scores=added,
        sources={k: v for k, v in sources.items() if v},
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    run = load_run(record_path)  # as it is now: append, change nothing else
    run.resolutions.append(resolution)
    save_run(run, record_path)
    return resolution


def resolution_line(r: Resolution) -> str:
    what = {
        "meets": f"meets the target {r.threshold:.3f}",
        "gap": f"is below the target {r.threshold:.3f}",
        "undecided": f"is still undecided against the target {r.threshold:.3f}",
    }[r.verdict]
    extra = r.n - r.measured
    return (
        f"{r.rung} {what}: confidence sequence {interval_text(r.low, r.high)} after {r.n} dev examples "
        f"({r.measured} from the run, {extra} more"
        + (f": {', '.join(f'{v} {k}' for k, v in r.sources.items())}" if r.sources else "")
        + f"); anytime-valid at alpha {r.alpha} (checked after every example)"
    )
