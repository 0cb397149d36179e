"""The command line: parse, call the library, print (through ladder.cli.console). User errors are one
line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ladder import __version__
from ladder.cli.ci import cmd_baseline, cmd_cache, cmd_gate, cmd_gate_suite, cmd_report
from ladder.cli.climb import (
    cmd_assess,
    cmd_check_data,
    cmd_init,
    cmd_migrate,
    cmd_prepare,
    cmd_resolve,
    cmd_schema,
    cmd_train,
    cmd_validate,
)
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
    p.add_argument(
        "--corpus", type=Path, help="a JSONL of {id, text} documents or a folder of .md/.txt: adds a rag rung"
    )
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
    p.add_argument(
        "--label-errors",
        nargs="?",
        const="",
        metavar="RUNG",
        help="label tasks: rank suspected label errors by confident learning (cleanlab) on a rung's label "
        "probabilities over every split: a prompt or fewshot rung (default: the first such rung), or a lora "
        "rung by k-fold (--folds adapters; slower, far better probabilities from a small model)",
    )
    p.add_argument("--folds", type=int, default=5, help="--label-errors with a lora rung: folds of train (default 5)")
    p.add_argument("--backend", help="backend for the model-based checks (default: the task's serving.backend)")
    _model_option(p)
    p.add_argument("--json", type=Path, help="also write the findings as JSON here")
    p.add_argument("--show", type=int, default=10, help="findings printed per check (default 10; --json has up to 50)")

    p = sub.add_parser("assess", help="measure each rung in order and recommend the cheapest that meets the target")
    p.add_argument("task", help="path to task.yaml (or its folder)")
    p.add_argument("--rungs", help="comma-separated rung names to run (kept in ladder order)")
    p.add_argument("--limit", type=int, help="evaluate only the first N examples of dev and of test")
    p.add_argument("--out", type=Path, help="run folder (default: runs/<task>/<run-id>)")
    p.add_argument("--no-cache", action="store_true", help="recompute model outputs instead of reusing cached ones")
    p.add_argument(
        "--backend",
        help="auto, transformers, vllm, openai, or scripted (no model; smoke tests); "
        "default: the task's serving.backend (auto: vllm where CUDA and vllm are present, else transformers)",
    )
    p.add_argument("--base-url", help="openai backend: the server's URL up to /v1 (overrides serving.base_url)")
    _model_option(p)
    p.add_argument(
        "--exhaustive",
        action="store_true",
        help="run every configured rung whatever the decisions (sweeps, reports); same recommendation policy",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="evaluate every rung K times (the cache bypassed after the first; other batches and sampling "
        "seeds): the record keeps every repeat and each example's share that changed (the noise floor)",
    )

    p = sub.add_parser(
        "migrate",
        help="move what ships today to another base model: climb the task again on it and gate every new rung against "
        "the run's shipped rung on the same test examples; exit 0 migrate, 1 stay, 3 inconclusive, 2 usage or data error",
    )
    p.add_argument("run", type=Path, help="the finished run whose rung ships today (folder or run.json; any backend)")
    p.add_argument(
        "--to", required=True, metavar="ALIAS|PATH", help="the new base model: an alias, a .gguf or a folder"
    )
    p.add_argument("--from-rung", help="the rung that ships today (default: the run's recommended rung)")
    p.add_argument("--rungs", help="comma-separated rungs to climb on the new base (default: all the task's)")
    p.add_argument("--task", help="the task file (default: the run's own task_path)")
    p.add_argument("--backend", help="backend for the new climb (default: the task's serving.backend)")
    p.add_argument(
        "--margin", type=float, default=0.0, help="the drop tolerated against what ships (default 0; see ladder gate)"
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument(
        "--out", type=Path, help="folder for the new run and the migration (default runs/<task>/migrate-<id>)"
    )
    p.add_argument("--no-cache", action="store_true", help="recompute model outputs instead of reusing cached ones")

    p = sub.add_parser(
        "resolve",
        help="decide an inconclusive rung with the fewest further dev examples (beyond the "
        "run's --limit, then data.reserve), by an anytime-valid confidence sequence",
    )
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
    p.add_argument(
        "--metric", action="append", help="metric to gate (repeatable; default: the baseline's target metric)"
    )
    p.add_argument(
        "--margin",
        type=float,
        default=0.0,
        help="the drop tolerated: pass needs the 95%% interval of the difference to rule out a larger one (default 0)",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the paired test (default 0.05)")
    _gate_outputs(p)

    p = sub.add_parser(
        "gate-suite", help="run every gate of a suite file (e.g. evals/gates.yaml): assess the slice, gate it"
    )
    p.add_argument("suite", type=Path, help="suite YAML")
    p.add_argument(
        "--out", type=Path, default=Path("runs") / "gates", help="where the suite's runs go (default runs/gates)"
    )
    _model_option(p)
    _gate_outputs(p)

    p = sub.add_parser(
        "train",
        help="train one trained rung (lora, full, distill, preference), on several processes under torchrun "
        "(`torchrun --nproc_per_node N -m ladder train task.yaml --rung lora`); `ladder assess` then reuses it",
    )
    p.add_argument("task", help="path to task.yaml (or its folder)")
    p.add_argument("--rung", required=True, help="name of a trained rung of the task (lora, full, distill, preference)")
    _model_option(p)

    p = sub.add_parser(
        "report",
        help="render a run's report (report.md and report.html beside its run.json), or compare several runs of one task",
    )
    p.add_argument(
        "runs",
        type=Path,
        nargs="+",
        metavar="RUN",
        help="run folder (or its run.json); several: a comparison over time",
    )
    p.add_argument(
        "--format", choices=("html", "md"), help="one format only (default: both; with --out, from its suffix)"
    )
    p.add_argument(
        "--out",
        type=Path,
        help="file to write (default: report.{md,html} in the run folder; "
        "comparison.{md,html} in the newest run's folder for several runs)",
    )

    sub.add_parser("schema", help="print the JSON Schema of task.yaml")

    p = sub.add_parser(
        "cache",
        help="what ladder keeps on disk (info), or remove the models and trainings no run record refers to (prune)",
    )
    p.add_argument("action", choices=("info", "prune"))
    p.add_argument(
        "--runs",
        type=Path,
        action="append",
        metavar="DIR",
        help="where run records are (repeatable; default runs): what they refer to is kept",
    )
    p.add_argument("--dry-run", action="store_true", help="prune: say what would be removed, remove nothing")
    p.add_argument("--show", type=int, default=20, help="info: entries listed per area (default 20)")

    p = sub.add_parser("prepare", help="materialize a model once into the model cache (no download)")
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL)
    return parser


def _model_option(p) -> None:
    p.add_argument(
        "--model",
        metavar="ALIAS|PATH",
        help="run the task on another base model, task.yaml unchanged: an alias (smollm2-135m-instruct, gemma3-270m), "
        "a .gguf file or a model folder; the record says which, and caches never mix",
    )


def _gate_outputs(p) -> None:
    p.add_argument(
        "--on-inconclusive",
        choices=("fail", "pass"),
        help="what an inconclusive verdict exits with: fail (1) or pass (0; JUnit: skipped); default: its own code, 3",
    )
    p.add_argument("--junit", type=Path, help="write JUnit XML here (CI dashboards)")
    p.add_argument("--md", type=Path, help="write a Markdown summary here (pull-request comment)")
    p.add_argument("--html", type=Path, help="write an HTML summary here (one self-contained file)")
    p.add_argument(
        "--github",
        action="store_true",
        help="in GitHub Actions: annotations (::error/::warning/::notice) on stdout and the Markdown summary appended "
        "to $GITHUB_STEP_SUMMARY",
    )


COMMANDS = {
    "init": cmd_init,
    "validate": cmd_validate,
    "check-data": cmd_check_data,
    "assess": cmd_assess,
    "train": cmd_train,
    "migrate": cmd_migrate,
    "resolve": cmd_resolve,
    "baseline": cmd_baseline,
    "gate": cmd_gate,
    "gate-suite": cmd_gate_suite,
    "report": cmd_report,
    "schema": cmd_schema,
    "prepare": cmd_prepare,
    "cache": cmd_cache,
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
