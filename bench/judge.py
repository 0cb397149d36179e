"""How far a judge agrees with a reference metric, on a committed run record's answers.

    python bench/judge.py [--record reports/records/quiz-facts-continued.json] [--metric exact_match]
                          [--model task] [--split dev]

Every rung's answers on the split are graded pass/fail by the judge (the task's base model unless --model says
otherwise; the reference shown), both ways (``mode: scores`` and ``mode: generate``), and compared with the
reference metric (pass = a score of 1): the same agreement statistics the record keeps for human grades. This is
not a calibration against people (the record's metric stands in for them); it says how weak a judge is on answers
whose correctness is known. Prints the machine, then one table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from ladder.metrics import scorers
from ladder.paths import result_cache_dir
from ladder.run.cache import ResultCache
from ladder.run.context import task_backend
from ladder.run.judge import Item, Judges
from ladder.scoring.agreement import agreement
from ladder.spec import TaskFile, TaskSpec

RUBRIC = "The answer states the same fact as the reference answer (wording may differ)."


def _cpu() -> str:
    flags = set()
    model = platform.processor()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
    return f"{model} ({', '.join(f for f in ('avx512_bf16', 'amx_bf16') if f in flags) or 'no bf16 flags'})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--record", type=Path, default=Path("reports/records/quiz-facts-continued.json"))
    parser.add_argument("--metric", default="exact_match")
    parser.add_argument("--model", default="task")
    parser.add_argument("--split", default="dev")
    args = parser.parse_args()
    record = json.loads(args.record.read_text())
    print(f"machine: {_cpu()}; record {args.record}; reference metric {args.metric}; split {args.split}")
    inputs = record["inputs"][args.split]
    examples = [e for rung in record["rungs"] for e in rung["examples"] if e["split"] == args.split]
    items = [Item(inputs[e["id"]], e["output"], e["target"]) for e in examples]
    truth = [float(e["scores"][args.metric] >= 1.0) for e in examples]
    print(f"{len(items)} answers ({len(record['rungs'])} rungs), {sum(truth):.0f} right by {args.metric}")
    print("| mode | same verdict | Cohen's κ | Spearman ρ | judge mean | reference mean | out of form | s |")
    print("|---|---|---|---|---|---|---|---|")
    for mode in ("scores", "generate"):
        spec = dict(record["spec"])
        judge = {"rubric": RUBRIC, "scale": "pass_fail", "mode": mode, "model": args.model}
        spec["metrics"] = [*spec["metrics"], {"metric": "judge", "name": "judge", "options": judge}]
        task = TaskFile(TaskSpec.model_validate(spec), Path(record["task_path"]).resolve())
        assert "judge" in scorers(task.spec)
        backend = task_backend(task, "transformers")
        judges = Judges(task, backend, ResultCache(result_cache_dir(), enabled=False))
        started = time.perf_counter()
        verdicts = judges.grade("judge", items, f"{mode}")
        took = time.perf_counter() - started
        judges.close()
        backend.close()
        a = agreement(
            [v.grade for v in verdicts], [v.score for v in verdicts], truth, truth, [len(i.output) for i in items]
        )
        invalid = sum(v.invalid for v in verdicts)
        print(
            f"| {mode} | {a.accuracy.mean:.3f} [{a.accuracy.low:.3f}, {a.accuracy.high:.3f}] "
            f"| {a.kappa.mean:+.3f} [{a.kappa.low:+.3f}, {a.kappa.high:+.3f}] "
            f"| {a.spearman.mean:+.3f} [{a.spearman.low:+.3f}, {a.spearman.high:+.3f}] "
            f"| {a.judge_mean:.3f} | {a.human_mean:.3f} | {invalid} | {took:.0f} |"
        )


if __name__ == "__main__":
    main()
