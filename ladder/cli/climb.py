"""The engineer's commands: init, validate, check-data, assess, resolve, train, schema, prepare. Each parses nothing
(main.py did), calls the library, prints through console.py."""

from __future__ import annotations

from pathlib import Path

from ladder.cli.ci import run_path


def cmd_validate(args) -> int:
    from ladder.cli import console as display
    from ladder.data.splits import load_task_data
    from ladder.spec import load_task, shown_path

    task = load_task(args.task)
    data = load_task_data(task)
    splits = data.splits
    for warning in splits.warnings:
        display.info(f"warning: {warning}")
    sizes = ", ".join(f"{s} {len(splits.get(s))}" for s in ("train", "dev", "test"))
    if data.corpus is not None:
        sizes += f", corpus {len(data.corpus.documents)} documents"
    display.out(f"{shown_path(task.path)}: ok ({sizes}; rungs: {', '.join(r.name or r.type for r in task.spec.rungs)})")
    return 0


def cmd_check_data(args) -> int:
    from ladder.cli import console as display
    from ladder.fileio import atomic_write_text
    from ladder.run.datacheck import check_data
    from ladder.spec import load_task, shown_path

    task = load_task(args.task).with_model(args.model)
    report = check_data(task, backend=args.backend, label_errors=args.label_errors, say=display.info, folds=args.folds)
    display.data_report(report, shown_path(task.path), args.show)
    if args.json:
        atomic_write_text(args.json, report.model_dump_json(indent=1) + "\n")
    return 1 if report.errors else 0


def _command_line(args) -> str:
    import shlex

    return "ladder " + shlex.join(args.argv)


def cmd_init(args) -> int:
    from ladder.cli import console as display
    from ladder.init import init_task, slug
    from ladder.spec import shown_path

    out = args.out or Path("tasks") / slug(args.data[0].stem, "task")
    result = init_task(
        args.data,
        out,
        args.input_field,
        args.target_field,
        args.id_field,
        args.corpus,
        args.model,
        args.seed,
        args.force,
    )
    for line in result.lines:
        display.out(f"- {line}")
    shown = shown_path(result.task_path)
    display.out(
        f"{shown}: written and valid. Next: ladder assess {shown} --limit 50   (a first look on 50 "
        "dev and test examples; without --limit, all of them)"
    )
    return 0


def cmd_assess(args) -> int:
    from ladder.cli import console as display
    from ladder.report import write_report
    from ladder.run.assess import assess
    from ladder.run.cache import figure_cache
    from ladder.spec import load_task

    task = load_task(args.task).with_model(args.model)
    rungs = [r.strip() for r in args.rungs.split(",") if r.strip()] if args.rungs else None
    run, out_dir = assess(
        task,
        backend=args.backend,
        rungs=rungs,
        limit=args.limit,
        out_dir=args.out,
        use_cache=not args.no_cache,
        progress=display.info,
        exhaustive=args.exhaustive,
        base_url=args.base_url,
        command=_command_line(args),
        repeats=args.repeats,
    )
    write_report(out_dir, figures=figure_cache(enabled=not args.no_cache))
    display.summary(run, out_dir)
    return 0


MIGRATE_EXIT = {"migrate": 0, "stay": 1, "inconclusive": 3}


def cmd_migrate(args) -> int:
    from ladder.cli import console as display
    from ladder.run.migrate import migrate

    rungs = [r.strip() for r in args.rungs.split(",") if r.strip()] if args.rungs else None
    outcome, folder = migrate(
        run_path(args.run),
        args.to,
        from_rung=args.from_rung,
        rungs=rungs,
        task_path=args.task,
        backend=args.backend,
        margin=args.margin,
        alpha=args.alpha,
        out_dir=args.out,
        use_cache=not args.no_cache,
        progress=display.info,
        command=_command_line(args),
    )
    display.out(outcome.summary)
    for reason in outcome.reasons:
        display.out(f"  - {reason}")
    display.out(f"migration: {folder / 'migration.json'}   report: {folder / 'migration.html'} (and migration.md)")
    return MIGRATE_EXIT[outcome.verdict]


def cmd_train(args) -> int:
    from ladder.cli import console as display
    from ladder.run.train import train

    trained = train(args.task, args.rung, say=display.out, model=args.model)
    if trained.rank == 0:
        t = trained.candidate.training
        assert t is not None and trained.candidate.artifact is not None
        done = "finished earlier, reused" if t.reused else f"on {trained.world} process(es)"
        display.out(
            f"{args.rung}: {t.steps} steps {done}, {t.tokens_seen} real tokens, "
            f"{t.tokens_per_s:.1f} tokens/s; artifact {trained.candidate.artifact.path} (reused by `ladder assess`)"
        )
    return 0


def cmd_resolve(args) -> int:
    from ladder.cli import console as display
    from ladder.run.resolve import resolution_line, resolve

    resolution = resolve(run_path(args.run), args.rung, args.budget, args.alpha, args.backend, progress=display.info)
    display.out(resolution_line(resolution))
    return 0 if resolution.verdict != "undecided" else 3


def cmd_schema(args) -> int:
    from ladder.cli import console as display
    from ladder.spec import json_schema_text

    display.out(json_schema_text().rstrip("\n"))
    return 0


def cmd_prepare(args) -> int:
    from ladder.backends.hf.model import resolve_model
    from ladder.backends.models import model_identity
    from ladder.cli import console as display

    ref = resolve_model(args.model, Path.cwd())
    identity = model_identity(ref)
    display.out(f"{args.model}: {ref.path} (weights sha256 {identity['weights_sha256'][:12]})")
    return 0
