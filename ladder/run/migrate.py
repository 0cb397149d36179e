"""``ladder migrate RUN --to MODEL``: climb a finished run's task again on another base model and gate every new rung
against what ships today (the run's recommended rung, or ``--from-rung``), paired on the same test examples.

Checked before anything is computed: the old run's record, the rung that ships and that it can be trusted, the
task file (the run's own, or ``--task``), that its test data is the data the old run measured (same sha256),
and that ``--to`` is not the model the run already used. The new climb is ``assess`` on the new base, with the
old run's ``--limit`` (the same test examples) and every selected rung run until one is non-inferior on dev to
the shipped rung (paired on the dev examples both measured): a rung that already keeps what ships needs no
costlier one above it. Its record, report, and the migration's record (``migration.json``) and report
(``migration.md``, ``migration.html``) go to one folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ladder.data.splits import load_task_data
from ladder.errors import LadderError
from ladder.fileio import atomic_write_text
from ladder.gate.baseline import find_rung
from ladder.gate.migration import Migration, migration, reference
from ladder.gate.verdict import check_levels
from ladder.record import AssessmentRun, RungResult, load_run
from ladder.run.assess import StopRule, assess, new_run_id
from ladder.scoring.compare import compare_by_id, measured_binary, split_scores
from ladder.spec import TaskFile, load_task, shown_path

MIGRATION_FILE = "migration.json"


def shipped_rung(old: AssessmentRun, from_rung: str | None, source: str) -> str:
    if from_rung:
        find_rung(old, from_rung, source)
        return from_rung
    rec = old.recommendation
    if rec is None or rec.rung is None:
        measured = ", ".join(r.name for r in old.rungs) or "none"
        raise LadderError(
            f"{source}: the run recommends no rung (none met its target): say which ships today with --from-rung "
            f"(measured: {measured})"
        )
    return rec.rung


def _task_of(old: AssessmentRun, task_path: str | Path | None, source: str) -> TaskFile:
    path = Path(task_path) if task_path else Path(old.task_path)
    if not task_path and not path.exists():
        raise LadderError(f"{source}: the run's task file {old.task_path} is not there: give --task")
    task = load_task(path)
    if task.spec.name != old.task_name:
        raise LadderError(f"{shown_path(task.path)}: task {task.spec.name!r} is not the run's task {old.task_name!r}")
    test_hash = load_task_data(task).splits.hashes.get("test")
    if test_hash != old.data_hashes.get("test"):
        raise LadderError(
            f"{shown_path(task.path)}: the test data differs from what {source} measured (sha256 {str(test_hash)[:12]} "
            f"vs {str(old.data_hashes.get('test'))[:12]}): a migration pairs the same examples"
        )
    return task


def dev_stop(old: AssessmentRun, shipped: str, margin: float) -> StopRule:
    """After a new rung: stop the climb when it is non-inferior on dev to the shipped rung (the paired 95% interval
    of new - shipped on the dev examples both measured clears -margin); dev decides the climb, test the verdict."""
    metric = old.target.metric
    theirs = split_scores(find_rung(old, shipped, "old run").examples, "dev", metric)

    def stop(result: RungResult) -> str | None:
        ours = split_scores(result.examples, "dev", metric)
        common = [i for i in theirs if i in ours]
        if not common or not result.certified():
            return None
        cmp = compare_by_id(
            {i: theirs[i] for i in common},
            {i: ours[i] for i in common},
            metric,
            shipped,
            old.seed,
            measured_binary(result.splits["dev"], metric),
        )
        if cmp.low < -margin:
            return None
        return (
            f"{result.name} is non-inferior on dev to {shipped} on {old.model.name} (Δ {cmp.delta:+.3f}, lower bound "
            f"{cmp.low:+.3f} >= -{margin:g}, n={cmp.n}); the migration's climb stopped there"
        )

    return stop


def migrate(
    run_path: Path,
    to: str,
    from_rung: str | None = None,
    rungs: list[str] | None = None,
    task_path: str | Path | None = None,
    backend: str | None = None,
    margin: float = 0.0,
    alpha: float = 0.05,
    out_dir: Path | None = None,
    use_cache: bool = True,
    progress: Callable[[str], None] | None = None,
    command: str | None = None,
) -> tuple[Migration, Path]:
    say = progress or (lambda _msg: None)
    source = str(run_path)
    old = load_run(run_path)
    shipped = shipped_rung(old, from_rung, source)
    reference(old, shipped, source)
    check_levels(margin, alpha)
    task = _task_of(old, task_path, source)
    if to == old.model.name or to == old.spec.model:
        raise LadderError(f"--to: {to!r} is the model {source} already used; name another base model")
    new_task = task.with_model(to)
    out_dir = out_dir or Path("runs") / old.task_name / f"migrate-{new_run_id()}"
    say(f"migrating {old.task_name}: {shipped} on {old.model.name} (run {old.run_id}) -> {to}")
    new, new_dir = assess(
        new_task,
        backend=backend,  # the task's serving.backend by default: the old run may have been a hosted model
        rungs=rungs,
        limit=old.limit,
        out_dir=out_dir,
        use_cache=use_cache,
        progress=say,
        exhaustive=True,
        command=command,
        stop_when=dev_stop(old, shipped, margin),
    )
    from ladder.report import write_report
    from ladder.run.cache import figure_cache

    write_report(new_dir, figures=figure_cache(enabled=use_cache))
    outcome = migration(
        old, shipped, new, to, margin, alpha, old_source=source, new_source=str(new_dir / "run.json"), command=command
    )
    save_migration(outcome, new_dir)
    return outcome, new_dir


def save_migration(outcome: Migration, folder: Path) -> None:
    """``migration.json`` and its report (``migration.md``, ``migration.html``), rendered from the record."""
    from ladder.gate.migration_report import render_migration

    atomic_write_text(folder / MIGRATION_FILE, outcome.model_dump_json(indent=1) + "\n")
    for fmt in ("md", "html"):
        atomic_write_text(folder / f"migration.{fmt}", render_migration(outcome, fmt))
