"""The command line: parse, call the library, print (through ladder.cli.console). User errors are one
line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ladder import __version__
from ladder.defaults import DEFAULT_MODEL
from ladder.errors import LadderError, ValidationFailed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ladder",
        description="Climb the adaptation ladder: zero-shot -> few-shot -> RAG -> LoRA -> full fine-tune, "
        "climbing only on a measured gap.",
    )
    parser.add_argument("--version", action="version", version=f"ladder {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "init",
        help="write a task folder (task.yaml with a comment on every choice, data splits, SOURCE.md) from your "
        "own CSV/JSONL: one file (split here) or train, dev and test files",
    )
    p.add_argument("data", type=Path, nargs="+", metavar="DATA", help="a .jsonl or .csv file, or train/dev/test files")
    p.add_argument("--out", type=Path, help="task folder to write (default: tasks/<name of the data file>)")
    p.add_argument("--input", dest="input_field", help="field holding the model's input (default: guessed from names)")
    p.add_argument("--target", dest="target_field", help="field holding the expected answer (default: guessed)")
    p.add_argument("--id", dest="id_field", help="field holding a stable example id (default: id, if unique)")
    p.add_argument("--corpus", type=Path, help="a JSONL of {id, text} documents or a folder of .md/.txt: adds a rag rung")
    p.add_argument("--model", default=DEFAULT_MODEL, help="the task's model (default: the bundled SmolLM2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite an existing task.yaml in --out")

    p = sub.add_parser("validate", help="check a task file and its data; report every problem at once")
    p.add_argument("task", help="path to task.yaml (or its folder)")

    p = sub.add_parser(
        "check-data",
        help="check a task's data before anything is trained: duplicates, conflicting targets, leakage into test "
        "(exact and near-duplicate), label balance, truncation, length outliers, suspected label errors; exit 1 "
        "when a check fails (conflicts, leakage), 0 otherwise",
    )
    p.add_argument("task", help="path to task.yaml (or its folder)")
    p.add_argument("--label-errors", nargs="?", const="", metavar="RUNG",
                   help="label tasks: rank suspected label errors by confident learning (cleanlab) on a rung's label "
                   "probabilities over every split: a prompt or fewshot rung (default: the first such rung), or a lora "
                   "rung by k-fold (--folds adapters; slower, far better probabilities from a small model)")
    p.add_argument("--folds", type=int, default=5, help="--label-errors with a lora rung: folds of train (default 5)")
    p.add_argument("--backend", help="backend for the model-based checks (default: the task's serving.backend)")
    p.add_argument("--json", type=Path, help="also write the findings as JSON here")
    p.add_argument("--show", type=int, default=10, help="findings printed per check (default 10; --json has up to 50)")

    p = sub.add_parser("assess", help="measure each rung in order and recommend the cheapest that meets the target")
    p.add_argument("task", help="path to task.yaml (or its folder)")
    p.add_argument("--rungs", help="comma-separated rung names to run (kept in ladder order)")
    p.add_argument("--limit", type=int, help="evaluate only the first N examples of dev and of test")
    p.add_argument("--out", type=Path, help="run folder (default: runs/<task>/<run-id>)")
    p.add_argument("--no-cache", action="store_true", help="recompute model outputs instead of reusing cached ones")
    p.add_argument("--backend", help="auto, transformers, vllm, openai, or scripted (no model; smoke tests); "
                   "default: the task's serving.backend (auto: vllm where CUDA and vllm are present, else transformers)")
    p.add_argument("--base-url", help="openai backend: the server's URL up to /v1 (overrides serving.base_url)")
    p.add_argument("--exhaustive", action="store_true",
                   help="run every configured rung whatever the decisions (sweeps, reports); same recommendation policy")
    p.add_argument("--repeats", type=int, default=1,
                   help="evaluate every rung K times (the cache bypassed after the first; other batches and sampling "
                   "seeds): the record keeps every repeat and each example's share that changed (the noise floor)")

    p = sub.add_parser("resolve", help="decide an inconclusive rung with the fewest further dev examples (beyond the "
                       "run's --limit, then data.reserve), by an anytime-valid confidence sequence")
    p.add_argument("run", type=Path, help="run folder (or its run.json)")
    p.add_argument("--rung", help="the rung to resolve (default: the last inconclusive one)")
    p.add_argument("--budget", type=int, help="at most this many further examples (default: all there are)")
    p.add_argument("--alpha", type=float, help="error rate of the decision (default: the task's policy.alpha)")
    p.add_argument("--backend", help="backend to evaluate with (default: the run's)")

    p = sub.add_parser("baseline", help="write a baseline file (per-example scores of one rung) for `ladder gate`")
    p.add_argument("run", type=Path, help="run folder (or its run.json)")
    p.add_argument("--rung", required=True, help="the rung whose results become the baseline")
    p.add_argument("--to", required=True, type=Path, help="baseline file to write (commit it)")
    p.add_argument("--split", default="test", choices=("dev", "test"), help="split to gate on (default test)")

    p = sub.add_parser(
        "gate",
        help="paired non-inferiority check of a run against a baseline: exit 0 pass, 1 regression, 3 inconclusive "
        "(the gate could not have seen a regression), 2 usage or data error",
    )
    p.add_argument("run", type=Path, help="run folder (or its run.json)")
    p.add_argument("--baseline", required=True, type=Path, help="baseline file (from `ladder baseline`)")
    p.add_argument("--rung", help="rung of the run to gate (default: the baseline's rung)")
    p.add_argument("--metric", action="append", help="metric to gate (repeatable; default: the baseline's target metric)")
    p.add_argument("--margin", type=float, default=0.0,
                   help="the drop tolerated: pass needs the 95%% interval of the difference to rule out a larger one (default 0)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the paired test (default 0.05)")
    _gate_outputs(p)

    p = sub.add_parser("gate-suite", help="run every gate of a suite file (e.g. evals/gates.yaml): assess the slice, gate it")
    p.add_argument("suite", type=Path, help="suite YAML")
    p.add_argument("--out", type=Path, default=Path("runs") / "gates", help="where the suite's runs go (default runs/gates)")
    _gate_outputs(p)

    p = sub.add_parser(
        "train",
        help="train one trained rung (lora, full, distill, preference), on several processes under torchrun "
        "(`torchrun --nproc_per_node N -m ladder train task.yaml --rung lora`); `ladder assess` then reuses it",
    )
    p.add_argument("task", help="path to task.yaml (or its folder)")
    p.add_argument("--rung", required=True, help="name of a trained rung of the task (lora, full, distill, preference)")

    p = sub.add_parser(
        "report",
        help="render a run's report (report.md and report.html beside its run.json), or compare several runs of one task",
    )
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run folder (or its run.json); several: a comparison over time")
    p.add_argument("--format", choices=("html", "md"), help="one format only (default: both; with --out, from its suffix)")
    p.add_argument("--out", type=Path, help="file to write (default: report.{md,html} in the run folder; "
                   "comparison.{md,html} in the newest run's folder for several runs)")

    sub.add_parser("schema", help="print the JSON Schema of task.yaml")

    p = sub.add_parser("prepare", help="materialize a model once into the model cache (no download)")
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL)
    return parser


def _gate_outputs(p) -> None:
    p.add_argument("--on-inconclusive", choices=("fail", "pass"),
                   help="what an inconclusive verdict exits with: fail (1) or pass (0; JUnit: skipped); default: its own code, 3")
    p.add_argument("--junit", type=Path, help="write JUnit XML here (CI dashboards)")
    p.add_argument("--md", type=Path, help="write a Markdown summary here (pull-request comment)")
    p.add_argument("--html", type=Path, help="write an HTML summary here (one self-contained file)")


def _validate(args) -> int:
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


def _check_data(args) -> int:
    from ladder.cli import console as display
    from ladder.fileio import atomic_write_text
    from ladder.run.datacheck import check_data
    from ladder.spec import load_task, shown_path

    task = load_task(args.task)
    report = check_data(task, backend=args.backend, label_errors=args.label_errors, say=display.info, folds=args.folds)
    display.data_report(report, shown_path(task.path), args.show)
    if args.json:
        atomic_write_text(args.json, report.model_dump_json(indent=1) + "\n")
    return 1 if report.errors else 0


def _command_line(args) -> str:
    import shlex

    return "ladder " + shlex.join(args.argv)


def _init(args) -> int:
    from ladder.cli import console as display
    from ladder.init import init_task, slug
    from ladder.spec import shown_path

    out = args.out or Path("tasks") / slug(args.data[0].stem, "task")
    result = init_task(args.data, out, args.input_field, args.target_field, args.id_field, args.corpus, args.model,
                       args.seed, args.force)
    for line in result.lines:
        display.out(f"- {line}")
    shown = shown_path(result.task_path)
    display.out(f"{shown}: written and valid. Next: ladder assess {shown} --limit 50   (a first look on 50 "
                "dev and test examples; without --limit, all of them)")
    return 0


def _assess(args) -> int:
    from ladder.cli import console as display
    from ladder.report import write_report
    from ladder.run.assess import assess
    from ladder.spec import load_task

    task = load_task(args.task)
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
    write_report(out_dir)
    display.summary(run, out_dir)
    return 0


def _train(args) -> int:
    from ladder.cli import console as display
    from ladder.run.train import train

    trained = train(args.task, args.rung, say=display.out)
    if trained.rank == 0:
        t = trained.candidate.training
        assert t is not None and trained.candidate.artifact is not None
        done = "finished earlier, reused" if t["reused"] else f"on {trained.world} process(es)"
        display.out(
            f"{args.rung}: {t['steps']} steps {done}, {t['tokens_seen']} real tokens, "
            f"{t['tokens_per_s']:.1f} tokens/s; artifact {trained.candidate.artifact.path} (reused by `ladder assess`)"
        )
    return 0


def _run_path(path: Path) -> Path:
    return path.parent if path.name == "run.json" else path


def _baseline(args) -> int:
    from ladder.cli import console as display
    from ladder.gate import make_baseline, save_baseline
    from ladder.record import load_run

    run = load_run(args.run)
    baseline = make_baseline(run, args.rung, args.split, source=str(args.run))
    save_baseline(baseline, args.to)
    display.out(f"{args.to}: baseline of {args.rung!r} on {args.split} ({len(baseline.examples)} examples, "
                f"{baseline.metric} {sum(e.scores[baseline.metric] for e in baseline.examples) / len(baseline.examples):.3f})")
    return 0


def _write_gate_outputs(results, args) -> None:
    from ladder.fileio import atomic_write_text
    from ladder.gate import render_gate, render_junit

    if args.junit:
        atomic_write_text(args.junit, render_junit(results))
    if args.md:
        atomic_write_text(args.md, render_gate(results, "md"))
    if args.html:
        atomic_write_text(args.html, render_gate(results, "html"))


def _gate_exit(results) -> int:
    """A regression anywhere fails (1); else an inconclusive gate's own code (3, or 1/0 by --on-inconclusive)."""
    codes = {r.exit_code for r in results}
    return 1 if 1 in codes else max(codes)


def _gate(args) -> int:
    from ladder.cli import console as display
    from ladder.gate import check_line, gate, load_baseline
    from ladder.record import load_run

    run = load_run(args.run)
    baseline = load_baseline(args.baseline)
    result = gate(run, baseline, args.rung, args.metric, args.margin, args.alpha, source=str(args.run),
                  baseline_source=str(args.baseline), on_inconclusive=args.on_inconclusive)
    for check in result.checks:
        display.out(check_line(result, check))
    for note in result.notes:
        display.info(f"note: {note}")
    _write_gate_outputs([result], args)
    return _gate_exit([result])


def _gate_suite(args) -> int:
    from ladder.cli import console as display
    from ladder.gate import check_line
    from ladder.run.suite import run_suite

    pairs = run_suite(args.suite, args.out, progress=display.info, on_inconclusive=args.on_inconclusive)
    for spec, result in pairs:
        for check in result.checks:
            display.out(f"[{spec.name}] {check_line(result, check)}")
    results = [r for _, r in pairs]
    _write_gate_outputs(results, args)
    return _gate_exit(results)


def _resolve(args) -> int:
    from ladder.cli import console as display
    from ladder.run.resolve import resolution_line, resolve

    resolution = resolve(_run_path(args.run), args.rung, args.budget, args.alpha, args.backend, progress=display.info)
    display.out(resolution_line(resolution))
    return 0 if resolution.verdict != "undecided" else 3


def _report(args) -> int:
    from ladder.cli import console as display
    from ladder.fileio import atomic_write_text
    from ladder.record import load_run
    from ladder.report import FORMATS, render

    folders = [_run_path(p) for p in args.runs]
    runs = [load_run(f) for f in folders]
    fmt = args.format
    if args.out is not None and fmt is None:
        fmt = args.out.suffix.lstrip(".").replace("markdown", "md")
        if fmt not in FORMATS:
            raise LadderError(f"--out: {args.out} ends in neither .md nor .html; give --format")
    if args.out is not None:
        targets = [(fmt, args.out)]
    else:
        stem = "report" if len(runs) == 1 else "comparison"
        home = folders[0] if len(runs) == 1 else folders[max(range(len(runs)), key=lambda i: runs[i].created)]
        targets = [(f, home / f"{stem}.{f}") for f in ((fmt,) if fmt else FORMATS)]
    for f, path in targets:
        atomic_write_text(path, render(runs, f, [str(p) for p in args.runs]))
        display.out(str(path))
    return 0


def _schema(args) -> int:
    from ladder.cli import console as display
    from ladder.spec import json_schema_text

    display.out(json_schema_text().rstrip("\n"))
    return 0


def _prepare(args) -> int:
    from ladder.backends.hf.model import resolve_model
    from ladder.backends.models import model_identity
    from ladder.cli import console as display

    ref = resolve_model(args.model, Path.cwd())
    identity = model_identity(ref)
    display.out(f"{args.model}: {ref.path} (weights sha256 {identity['weights_sha256'][:12]})")
    return 0


COMMANDS = {
    "init": _init,
    "validate": _validate,
    "check-data": _check_data,
    "assess": _assess,
    "train": _train,
    "resolve": _resolve,
    "baseline": _baseline,
    "gate": _gate,
    "gate-suite": _gate_suite,
    "report": _report,
    "schema": _schema,
    "prepare": _prepare,
}


def main(argv: list[str] | None = None) -> int:
    from ladder.cli import console as display

    args = _parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    from ladder.progress import reporting

    try:
        with reporting(display.progress_reporter()):
            return COMMANDS[args.command](args)
    except ValidationFailed as exc:
        for warning in exc.warnings:
            display.info(f"warning: {warning}")
        for problem in exc.problems:
            display.error(problem)
        return exc.exit_code
    except LadderError as exc:
        display.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        display.error("interrupted; the run record keeps every rung finished so far")
        return 130


if __name__ == "__main__":
    sys.exit(main())
