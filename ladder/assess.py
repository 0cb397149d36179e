"""The one loop: for each rung in ladder order, build a candidate, evaluate it on dev and test, score,
decide whether to climb; save the record after every rung."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import secrets
import time
from pathlib import Path
from typing import Callable

import ladder
from ladder.backends.base import Backend
from ladder.cache import ResultCache
from ladder.corpus import doc_of
from ladder.data import Example, Splits, load_task_data
from ladder.errors import LadderError
from ladder.evaluate import SplitOutputs, run_eval
from ladder.paths import result_cache_dir
from ladder.policy import decide, recommend
from ladder.record import (
    AssessmentRun,
    Comparison,
    ExampleRecord,
    MetricSummary,
    RungResult,
    SkippedRung,
    SplitResult,
    save_run,
)
from ladder.rungs import BuildContext, build_candidate
from ladder.scoring.metrics import METRICS
from ladder.scoring.stats import estimate, paired
from ladder.spec import TaskFile, rung_name

EVAL_SPLITS = ("dev", "test")
PACKAGES = ("torch", "transformers", "tokenizers", "numpy", "pydantic", "safetensors", "gguf")

Progress = Callable[[str], None]


def _packages() -> dict[str, str]:
    found = {"python": platform.python_version(), "ladder": ladder.__version__}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def new_run_id() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def select_rungs(task: TaskFile, names: list[str] | None):
    rungs = task.spec.rungs
    if not names:
        return list(rungs)
    known = {rung_name(r): r for r in rungs}
    unknown = [n for n in names if n not in known]
    if unknown:
        import difflib

        hint = difflib.get_close_matches(unknown[0], list(known), n=1)
        did = f"; did you mean {hint[0]!r}?" if hint else ""
        raise LadderError(f"--rungs: {unknown[0]!r} is not a rung of {task.path}{did} (rungs: {', '.join(known)})")
    return [r for r in rungs if rung_name(r) in names]  # always in ladder order


def _score(
    split_outputs: SplitOutputs, examples: list[Example], metrics: list[str], split: str, static_demos: tuple
) -> list[ExampleRecord]:
    records = []
    for ex, out, prompt_hash, sel in zip(
        examples, split_outputs.outputs, split_outputs.prompt_hashes, split_outputs.selections
    ):
        scores = {m: METRICS.get(m).score(out.output, ex.references) for m in metrics}
        means = None
        if out.label_logprobs is not None and out.label_token_counts is not None:
            means = {k: v / max(1, out.label_token_counts[k]) for k, v in out.label_logprobs.items()}
        records.append(
            ExampleRecord(
                id=ex.id,
                split=split,  # type: ignore[arg-type]
                prompt_hash=prompt_hash,
                prompt_tokens=out.prompt_tokens,
                completion_tokens=out.completion_tokens,
                output=out.output,
                target=ex.target,
                label_logprobs=out.label_logprobs,
                label_logprob_means=means,
                scores=scores,
                demo_ids=None if sel.demos == static_demos else [d.id for d in sel.demos],
                retrieved=list(sel.retrieved) if sel.retrieved is not None else None,
                passages=len(sel.passages) if sel.retrieved is not None else None,
            )
        )
    return records


def _retrieval_scores(
    records: list[ExampleRecord], examples: list[Example], k: int | None, seed: int
) -> dict[str, MetricSummary]:
    """recall@k (the gold document among the top-k chunks' documents) and MRR@k, where the data names it."""
    pairs = [(r, ex) for r, ex in zip(records, examples) if r.retrieved is not None and ex.doc_id is not None]
    if not pairs or not k:
        return {}
    recall, rr = [], []
    for record, ex in pairs:
        docs = [doc_of(c) for c in record.retrieved or []]
        rank = docs.index(ex.doc_id) + 1 if ex.doc_id in docs else None
        recall.append(1.0 if rank else 0.0)
        rr.append(1.0 / rank if rank else 0.0)
    out = {}
    for name, values, binary in ((f"recall@{k}", recall, True), (f"mrr@{k}", rr, False)):
        est = estimate(values, binary, seed=seed)
        out[name] = MetricSummary(mean=est.mean, low=est.low, high=est.high, n=est.n, method=est.method)
    return out


def _summarize(
    records: list[ExampleRecord],
    split_outputs: SplitOutputs,
    examples: list[Example],
    metrics: list[str],
    seed: int,
    top_k: int | None,
) -> SplitResult:
    n = len(records)
    summaries = {}
    for m in metrics:
        est = estimate([r.scores[m] for r in records], METRICS.get(m).binary, seed=seed)
        summaries[m] = MetricSummary(mean=est.mean, low=est.low, high=est.high, n=est.n, method=est.method)
    wall = split_outputs.wall_s + split_outputs.selection_s
    return SplitResult(
        n=n,
        metrics=summaries,
        wall_s=split_outputs.wall_s,
        selection_s=split_outputs.selection_s,
        retrieval=_retrieval_scores(records, examples, top_k, seed),
        latency_s_per_example=wall / n if n else 0.0,
        examples_per_s=n / wall if wall > 0 else 0.0,
        prompt_tokens_per_call=sum(r.prompt_tokens for r in records) / n if n else 0.0,
        completion_tokens_per_call=sum(r.completion_tokens for r in records) / n if n else 0.0,
        cached=split_outputs.cached,
        cache_key=split_outputs.key,
    )


def _compare(current: RungResult, previous: RungResult, metrics: list[str], seed: int) -> None:
    for split in EVAL_SPLITS:
        mine = [r for r in current.examples if r.split == split]
        theirs = {r.id: r for r in previous.examples if r.split == split}
        if len(theirs) != len(mine) or any(r.id not in theirs for r in mine):
            continue
        for m in metrics:
            cmp = paired([theirs[r.id].scores[m] for r in mine], [r.scores[m] for r in mine], METRICS.get(m).binary, seed)
            current.splits[split].comparisons[m] = Comparison(baseline=previous.name, **cmp.__dict__)


def assess(
    task: TaskFile,
    backend: Backend | str | None = None,
    rungs: list[str] | None = None,
    limit: int | None = None,
    out_dir: Path | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> tuple[AssessmentRun, Path]:
    """Run the ladder on a task; returns the record and the folder it was written to."""
    say = progress or (lambda _msg: None)
    spec = task.spec
    if limit is not None and limit < 1:
        raise LadderError(f"--limit: must be at least 1, got {limit}")
    task_data = load_task_data(task)
    splits: Splits = task_data.splits
    for warning in splits.warnings:
        say(f"warning: {warning}")
    selected = select_rungs(task, rungs)
    evals = {s: splits.get(s)[:limit] if limit else splits.get(s) for s in EVAL_SPLITS}
    if backend is None or isinstance(backend, str):
        from ladder.backends import create_backend

        name = backend or "transformers"
        say(f"backend {name}, model {spec.model}")
        backend = create_backend(
            name, spec.model, base_dir=task.path.parent, batch_size=spec.generation.batch_size, labels=spec.output.labels
        )
    formatter = backend.formatter(spec.prompt.format)
    cache = ResultCache(result_cache_dir(), enabled=use_cache)
    run_id = new_run_id()
    out_dir = out_dir or Path("runs") / spec.name / run_id
    record_path = out_dir / "run.json"
    run = AssessmentRun(
        run_id=run_id,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        status="running",
        ladder_version=ladder.__version__,
        task_name=spec.name,
        task_path=str(task.path),
        spec=spec.model_dump(mode="json"),
        data_hashes=splits.hashes,
        data_sizes={s: len(splits.get(s)) for s in ("train", "dev", "test")},
        limit=limit,
        model=backend.identity(),
        packages=_packages(),
        seed=spec.seed,
        target=spec.target.model_dump(),
    )
    save_run(run, record_path)
    metric, threshold = spec.target.metric, spec.target.threshold
    ctx = BuildContext(
        spec=spec,
        train=splits.train,
        dev=splits.dev,
        work_dir=out_dir,
        corpus=task_data.corpus,
        count_tokens=backend.count_tokens,
        backend=backend,
    )
    stopped_by: str | None = None
    try:
        for rung_spec in selected:
            name = rung_name(rung_spec)
            if stopped_by is not None:
                run.skipped.append(SkippedRung(name=name, type=rung_spec.type, reason=f"{stopped_by} already meets the target"))
                continue
            say(f"[{name}] building")
            started = time.perf_counter()
            candidate = build_candidate(rung_spec, ctx)
            build_s = time.perf_counter() - started
            split_results, examples = {}, []
            for split in EVAL_SPLITS:
                say(f"[{name}] {split}: {len(evals[split])} examples")
                outputs = run_eval(candidate, evals[split], backend, formatter, spec, cache)
                records = _score(outputs, evals[split], spec.metrics, split, candidate.demos)
                top_k = candidate.settings.get("top_k")
                split_results[split] = _summarize(records, outputs, evals[split], spec.metrics, spec.seed, top_k)
                examples += records
            decision = decide(split_results["dev"].metrics[metric], metric, threshold)
            result = RungResult(
                name=name,
                type=rung_spec.type,
                settings=candidate.settings,
                demo_ids=[d.id for d in candidate.demos],
                build_s=build_s,
                splits=split_results,
                decision=decision,
                examples=examples,
                training=candidate.training,
            )
            if run.rungs:
                _compare(result, run.rungs[-1], spec.metrics, spec.seed)
            run.rungs.append(result)
            save_run(run, record_path)
            say(f"[{name}] {decision.action}: {decision.reason}")
            if decision.action == "stop":
                stopped_by = name
    except KeyboardInterrupt:
        run.status, run.error = "interrupted", "interrupted by the user"
        save_run(run, record_path)
        raise
    except Exception as exc:
        run.status, run.error = "failed", f"{type(exc).__name__}: {exc}"
        save_run(run, record_path)
        raise
    last_selected = max(spec.rungs.index(r) for r in selected)
    later = [rung_name(r) for r in spec.rungs[last_selected + 1 :]]  # configured, but left out by --rungs
    run.recommendation = recommend(run.rungs, metric, threshold, later)
    run.status = "complete"
    save_run(run, record_path)
    return run, out_dir
