"""The one loop: for each rung in ladder order, build a candidate, evaluate it on dev and test, score,
decide whether to climb; save the record after every rung."""

from __future__ import annotations

import datetime as _dt
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import ladder
from ladder.backends.base import Backend
from ladder.data.splits import Splits, load_task_data
from ladder.decide.cost import cost_by_token_times, rung_cost, with_break_even
from ladder.decide.diagnosis import advise, diagnose
from ladder.decide.policy import decide, decide_sequential
from ladder.decide.recommend import recommend
from ladder.errors import LadderError
from ladder.extras import installed_versions, require_for
from ladder.metrics import scorers
from ladder.paths import ladder_home, result_cache_dir
from ladder.record import (
    AssessmentRun,
    RungResult,
    SkippedRung,
    save_run,
)
from ladder.run.cache import ResultCache
from ladder.run.certificate import certify, reference_backend
from ladder.run.context import build_context, task_backend
from ladder.run.datacheck import assessment_checks, label_issues_of_run
from ladder.run.evaluate import measure_token_times, run_eval
from ladder.run.judge import Judges
from ladder.run.lock import store_lock
from ladder.run.sequential import sequential_dev
from ladder.rungs import build_candidate
from ladder.scoring.compare import (
    compare_with_earlier,
    flakiness,
    merge_repeats,
    score_examples,
    split_scores,
    summarize_split,
)
from ladder.scoring.stats import score_sd
from ladder.spec import ADAPTER_RUNGS, TRAINED_RUNGS, TaskFile, rung_name, shown_path

EVAL_SPLITS = ("dev", "test")

Progress = Callable[[str], None]
StopRule = Callable[[RungResult], "str | None"]  # after a rung: why the climb stops there, or None


def _in_task(exc: LadderError, task: TaskFile) -> LadderError:
    """An error about one of the task's fields (``rungs[...]``, ``model``) names the task file too."""
    message = str(exc)
    if message.startswith(("rungs[", "model:")):
        return LadderError(f"{shown_path(task.path)}: {message}")
    return exc


def new_run_id() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def unavailable_rungs(spec) -> dict[str, str]:
    """Rung kinds this task cannot run, with what each would need (said in one line, never suggested)."""
    out = {}
    if spec.corpus is None:
        out["rag"] = "a corpus of documents to retrieve from (`corpus:` in task.yaml, or `ladder init --corpus`)"
    if spec.data.target_field is None:  # an open-ended task: nothing to learn answers from
        out.update(dict.fromkeys(("fewshot", "lora", "full"), "reference answers (data.target_field)"))
    return out


def _distills_a_meeting_rung(rung_spec, run: AssessmentRun) -> bool:
    """A distill rung whose teacher met the target is measured even after the climb stopped: it cannot raise
    the quality, it is there to serve the same answers on a shorter prompt, and only its measured cost and
    paired difference to the teacher say whether it should be recommended."""
    if rung_spec.type != "distill":
        return False
    return any(r.name == rung_spec.teacher and r.decision.status == "meets" for r in run.rungs)


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


def assess(
    task: TaskFile,
    backend: Backend | str | None = None,
    rungs: list[str] | None = None,
    limit: int | None = None,
    out_dir: Path | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
    exhaustive: bool = False,
    base_url: str | None = None,
    command: str | None = None,
    repeats: int = 1,
    stop_when: StopRule | None = None,
) -> tuple[AssessmentRun, Path]:
    """Run the ladder on a task; returns the record and the folder it was written to. ``exhaustive``
    runs every selected rung whatever the decisions (sweeps, reports); the recommendation is the same
    policy over all of them. ``repeats``: evaluate every rung that many times (the first through the result
    cache, the rest never), for the noise floor. ``stop_when``: a further reason to stop climbing after a
    rung (``ladder migrate``: the rung is non-inferior on dev to what ships today), exhaustive or not.
    One assessment at a time per store: a second one waits."""
    with store_lock(ladder_home(), progress):
        return _assess(
            task, backend, rungs, limit, out_dir, use_cache, progress, exhaustive, base_url, command, repeats, stop_when
        )


def _assess(
    task: TaskFile,
    backend: Backend | str | None,
    rungs: list[str] | None,
    limit: int | None,
    out_dir: Path | None,
    use_cache: bool,
    progress: Progress | None,
    exhaustive: bool,
    base_url: str | None = None,
    command: str | None = None,
    repeats: int = 1,
    stop_when: StopRule | None = None,
) -> tuple[AssessmentRun, Path]:
    say = progress or (lambda _msg: None)
    spec = task.spec
    if limit is not None and limit < 1:
        raise LadderError(f"--limit: must be at least 1, got {limit}")
    if repeats < 1:
        raise LadderError(f"--repeats: must be at least 1, got {repeats}")
    selected = select_rungs(task, rungs)
    if backend is None or isinstance(backend, str):
        from ladder.backends import resolve_backend_name

        backend = resolve_backend_name(backend or spec.serving.backend)
    # what the backend (by name, where it is made here) and the rungs need installed, before any work
    require_for(backend if isinstance(backend, str) else None, selected, shown_path(task.path))
    cache = ResultCache(result_cache_dir(), enabled=use_cache)  # model outputs, and the data checks kept with them
    task_data = load_task_data(task, store=cache)
    splits: Splits = task_data.splits
    for warning in splits.warnings:
        say(f"warning: {warning}")
    evals = {s: splits.get(s)[:limit] if limit else splits.get(s) for s in EVAL_SPLITS}
    owned = isinstance(backend, str)  # made here: closed here (a vllm engine's memory)
    if owned:
        name = backend
        say(f"backend {name}, model {spec.model}")
        lora_ranks = [r.r for r in selected if r.type in ADAPTER_RUNGS]
        try:
            backend = task_backend(task, name, lora_ranks=lora_ranks, **({"base_url": base_url} if base_url else {}))
        except LadderError as exc:
            raise _in_task(exc, task) from None
    try:
        return _climb(
            task,
            backend,
            selected,
            evals,
            splits,
            task_data,
            limit,
            out_dir,
            cache,
            say,
            exhaustive,
            command,
            repeats,
            stop_when,
        )
    finally:
        if owned:
            backend.close()


def _climb(
    task,
    backend,
    selected,
    evals,
    splits,
    task_data,
    limit,
    out_dir,
    cache: ResultCache,
    say,
    exhaustive,
    command,
    repeats=1,
    stop_when: StopRule | None = None,
):
    spec = task.spec
    formatter = backend.formatter(spec.prompt.format)
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
        spec=spec.with_format(formatter.format),  # prompt.format as used (``auto`` resolved for this model)
        data_hashes=splits.hashes,
        data_sizes={s: len(splits.get(s)) for s in ("train", "dev", "test")},
        limit=limit,
        model=backend.identity(),
        packages=installed_versions(),
        seed=spec.seed,
        target=spec.target,
        exhaustive=exhaustive,
        repeats=repeats,
        command=command,
        inputs={s: {ex.id: ex.input for ex in evals[s]} for s in EVAL_SPLITS},
        warnings=splits.warnings,
        data_checks=assessment_checks(spec, splits, formatter, backend.count_tokens),
    )
    from ladder.run.datacheck import untrainable

    cannot_train = untrainable(spec, selected, splits.train, formatter, backend.count_tokens)
    if cannot_train:  # before any rung runs: nothing measured is lost, nothing is spent
        raise LadderError(f"{shown_path(task.path)}: {cannot_train}")
    save_run(run, record_path)
    metric, threshold = spec.target.metric, spec.target.threshold
    metrics = scorers(spec)
    judges = Judges(task, backend, cache, say)  # the judge metrics' models (none opened unless asked)
    ctx = build_context(
        task, splits.train, splits.dev, backend, cache, say, judges, work_dir=out_dir, **task_data.for_rungs()
    )
    stopped_by: str | None = None  # why the climb ended early, for the rungs left out
    try:
        if judges:  # before any rung: how far the judge agrees with people
            run.judges = judges.calibrate(task_data.human_grades, spec.seed)
            save_run(run, record_path)
        for position, rung_spec in enumerate(selected):
            name = rung_name(rung_spec)
            after = selected[position + 1] if position + 1 < len(selected) else None
            if stopped_by is not None and not _distills_a_meeting_rung(rung_spec, run):
                run.skipped.append(SkippedRung(name=name, type=rung_spec.type, reason=stopped_by))
                continue
            say(f"[{name}] building")
            started = time.perf_counter()
            try:
                candidate = build_candidate(rung_spec, ctx)
            except LadderError as exc:
                raise _in_task(exc, task) from None
            build_s = time.perf_counter() - started
            ctx.remember(candidate)
            split_results, examples = {}, []
            sequence = None
            for split in EVAL_SPLITS:
                say(f"[{name}] {split}: {len(evals[split])} examples" + (f", {repeats} times" if repeats > 1 else ""))

                def measure(part, split=split, candidate=candidate):
                    runs = [
                        run_eval(candidate, part, backend, formatter, spec, cache, repeat=r) for r in range(repeats)
                    ]
                    judged = [
                        judges.judge_outputs(part, o, f"{candidate.rung} {split}") if judges else None for o in runs
                    ]
                    return runs[0], merge_repeats(
                        [
                            score_examples(o, part, metrics, split, candidate.demos, spec.output, j)
                            for o, j in zip(runs, judged)
                        ]
                    )

                if split == "dev" and spec.policy.sequential:
                    outputs, records, sequence = sequential_dev(
                        measure, evals[split], metric, threshold, spec.policy.alpha, say, name
                    )
                    used = evals[split][: len(records)]
                else:
                    (outputs, records), used = measure(evals[split]), evals[split]
                summary = judges.calibrated(
                    summarize_split(records, outputs, used, metrics, spec.seed, candidate.top_k), records
                )
                split_results[split] = summary.model_copy(update={"repeats": repeats, "flaky": flakiness(records)})
                examples += records
            # the evidence first (paired comparisons with every earlier rung, the cost), then the decision
            split_results = compare_with_earlier(
                examples, split_results, run.rungs, metrics, spec.seed, common=spec.policy.sequential
            )
            training = candidate.training
            computed = not all(r.cached for r in split_results.values())
            if run.token_times is None and computed:  # once per run, when the model has work to do anyway
                say("measuring per-token times on a fixed probe (every rung's cost per call is computed from them)")
                run.token_times = measure_token_times(backend, formatter, spec, splits.dev)
            cost = with_break_even(
                rung_cost(
                    split_results["dev"], training, build_s, spec.cost, run.token_times, spec.generation.batch_size
                ),
                run.rungs,
            )
            certificate = None
            if candidate.artifact is not None and training is not None:
                say(f"[{name}] certifying the served {candidate.artifact.kind} on {min(len(splits.dev), 8)} dev inputs")
                certificate = certify(
                    candidate, training, backend, formatter, spec, splits.dev, cache, reference_backend(task, backend)
                )
                if not certificate.passed:
                    failed = certificate.failure()
                    assert failed is not None
                    say(
                        f"[{name}] adapter certificate FAILED ({failed.name}): {failed.detail}; it will not be "
                        "recommended"
                    )
            dev_sd = score_sd(list(split_scores(examples, "dev", metric).values()))
            following = (rung_name(after), after.type) if after is not None else None
            if sequence is not None:
                decision = decide_sequential(
                    sequence, len(evals["dev"]), metric, threshold, spec.policy, rung_spec.type, following
                )
            else:
                decision = decide(
                    split_results["dev"].deciding(metric),  # a calibrated judge: on the people's scale
                    dev_sd,
                    metric,
                    threshold,
                    spec.policy,
                    available=len(splits.dev),
                    kind=rung_spec.type,
                    next_rung=following,
                )
            result = RungResult(
                name=name,
                type=rung_spec.type,
                settings=candidate.settings,
                demo_ids=[d.id for d in candidate.demos],
                build_s=build_s,
                splits=split_results,
                decision=decision,
                examples=examples,
                training=training,
                cost=cost,
                certificate=certificate,
            )
            run.rungs.append(result)
            save_run(run, record_path)
            say(f"[{name}] {result.decision.status}, {result.decision.action}: {result.decision.reason}")
            if result.decision.action == "stop" and not exhaustive and stopped_by is None:
                why = "meets the target" if result.decision.status == "meets" else f"is {result.decision.status}"
                stopped_by = f"{name} {why}; the climb stopped there (--exhaustive runs every rung)"
            if stop_when is not None and stopped_by is None:
                stopped_by = stop_when(result)
    except (KeyboardInterrupt, Exception) as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        run.status = "interrupted" if interrupted else "failed"
        run.error = "interrupted by the user" if interrupted else f"{type(exc).__name__}: {exc}"
        try:
            save_run(run, record_path)
        except LadderError:
            pass  # the folder cannot be written (the error being raised may say so): the last save stands
        raise
    finally:
        judges.close()
    cost_by_token_times(run, spec)
    last_selected = max(spec.rungs.index(r) for r in selected)
    later = [rung_name(r) for r in spec.rungs[last_selected + 1 :]]  # configured, but left out by --rungs
    label_check = label_issues_of_run(spec, run, evals, cache)
    if label_check is not None and run.data_checks is not None:
        run.data_checks.checks.append(label_check)
    gold_docs = {ex.id: ex.doc_id for split in EVAL_SPLITS for ex in evals[split] if ex.doc_id is not None}
    run.diagnosis = diagnose(spec, run.rungs, gold_docs, spec.policy.alpha)
    run.recommendation = advise(
        recommend(run.rungs, metric, threshold, spec.policy, later, unavailable_rungs(spec)),
        run.diagnosis,
        trained=any(r.type in TRAINED_RUNGS for r in run.rungs),
    )
    run.status = "complete"
    save_run(run, record_path)
    return run, out_dir
