"""Is the gate calibrated? False alarms on unchanged configurations, and detection of real degradations,
measured with the real bundled model in one run.

    python bench/gate_calibration.py [--reruns 20] [--limit 250] [--alpha 0.05] [--samples 1]

SNIPS few-shot (the shipped rung: 10 random demonstrations), answers decoded with sampling
(temperature 0.7, label_scoring: generate) so that two runs of one configuration differ only by the
sampling seed: equal quality by construction.
- baseline: sampling seed 0, ``ladder baseline`` of its test slice;
- reruns: seeds 1..N of the same configuration, each gated against the baseline at every --margins value:
  every REGRESSION is a false alarm (the goal: a rate at most alpha); pass or INCONCLUSIVE are both right;
- degraded candidates, same sampling: (a) an instruction naming the wrong labels, (b) half of the
  training examples relabelled with another intent (so about half the demonstrations are wrong), and
  two stronger versions: (c) every training label wrong, (d) both (a) and (b). A gate must never say pass
  to a degradation it cannot rule out (INCONCLUSIVE or REGRESSION), and should say REGRESSION to one larger
  than the detectable drop it states.
Every run goes through ``ladder.run.assess`` and ``ladder.gate.verdict`` exactly as ``ladder assess`` / ``ladder gate``
do. Prints one table and the rates.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import yaml
from _common import ROOT, machine  # noqa: E402  (the repository on sys.path, the model cache)

from ladder.backends import create_backend  # noqa: E402
from ladder.gate import gate, make_baseline  # noqa: E402
from ladder.run.assess import assess  # noqa: E402
from ladder.spec import load_task  # noqa: E402

TASK = ROOT / "tasks" / "snips-intent"
WRONG_LABELS = "positive, negative, neutral, question, statement, greeting, complaint"


SAMPLES = 1  # answers per example (--samples): the example's score is their mean


def variant(root: Path, name: str, seed: int, instruction: str | None = None, relabel: float = 0.0) -> Path:
    """A copy of the SNIPS task folder with sampling on, only the fewshot rung, and the given change."""
    folder = root / name
    shutil.copytree(TASK, folder, dirs_exist_ok=True)
    spec = yaml.safe_load((folder / "task.yaml").read_text())
    spec["rungs"] = [r for r in spec["rungs"] if r["type"] == "fewshot"]
    spec["generation"] = {
        **spec.get("generation", {}),
        "label_scoring": "generate",
        "temperature": 0.7,
        "seed": seed,
        "max_new_tokens": 16,
        "samples": SAMPLES,
    }
    if instruction is not None:
        spec["prompt"]["instruction"] = instruction
    (folder / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    if relabel:
        labels = spec["output"]["labels"]
        rng = random.Random(1)
        rows = [json.loads(line) for line in (folder / "data" / "train.jsonl").read_text().splitlines() if line.strip()]
        for row in rng.sample(rows, int(len(rows) * relabel)):
            row["label"] = rng.choice([x for x in labels if x != row["label"]])
        (folder / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder / "task.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reruns", type=int, default=20)
    parser.add_argument("--limit", type=int, default=250, help="first N of dev and of test (SNIPS: dev 100, test 250)")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--samples", type=int, default=1, help="answers per example; the score is their mean")
    parser.add_argument("--degraded", default="a,b,c,d", help="degraded candidates to gate (letters, see above)")
    parser.add_argument("--margins", default="0,0.05", help="gate margins, comma-separated (each candidate at each)")
    parser.add_argument("--keep", type=Path, help="copy every run record here (re-gate later without the model)")
    args = parser.parse_args()
    margins = [float(m) for m in args.margins.split(",")]
    print(machine(), flush=True)
    global SAMPLES
    SAMPLES = args.samples

    work = Path(tempfile.mkdtemp(prefix="ladder-gate-cal-"))
    task0 = load_task(variant(work, "seed-0", 0))
    backend = create_backend(
        "transformers",
        task0.spec.model,
        base_dir=task0.path.parent,
        batch_size=task0.spec.generation.batch_size,
        labels=task0.spec.output.labels,
    )

    def run(task_path: Path, name: str):
        started = time.perf_counter()
        result, _ = assess(
            load_task(task_path),
            backend=backend,
            limit=args.limit,
            out_dir=work / "runs" / name,
            use_cache=False,
            exhaustive=True,
        )
        return result, time.perf_counter() - started

    base_run, seconds = run(task0.path, "seed-0")
    baseline = make_baseline(base_run, "fewshot", "test")
    base_acc = sum(e.scores["accuracy"] for e in baseline.examples) / len(baseline.examples)
    print(
        f"baseline: seed 0, {args.samples} sample(s) per example, fewshot test accuracy {base_acc:.3f} "
        f"(n={len(baseline.examples)}, {seconds:.0f} s)",
        flush=True,
    )

    rows = []
    candidates = [(f"rerun seed {s}", "unchanged", variant(work, f"seed-{s}", s)) for s in range(1, args.reruns + 1)]
    instruction = (
        f"Classify the intent of the user's utterance. Answer with exactly one of these labels: {WRONG_LABELS}."
    )
    degraded = {
        "a": ("wrong labels in the instruction", lambda: variant(work, "wrong-labels", 101, instruction=instruction)),
        "b": ("half the training labels wrong", lambda: variant(work, "relabelled", 102, relabel=0.5)),
        # stronger versions of the same two faults, to show where the gate's sight begins
        "c": ("every training label wrong", lambda: variant(work, "all-relabelled", 103, relabel=1.0)),
        "d": (
            "wrong labels in the instruction and half the training labels wrong",
            lambda: variant(work, "both", 104, relabel=0.5, instruction=instruction),
        ),
    }
    candidates += [(degraded[k][0], "degraded", degraded[k][1]()) for k in args.degraded.split(",") if k]
    for name, kind, path in candidates:
        result, seconds = run(path, name.replace(" ", "-"))
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(
                work / "runs" / name.replace(" ", "-") / "run.json", args.keep / f"{name.replace(' ', '-')}.json"
            )
        checks = [gate(result, baseline, "fewshot", None, margin=m, alpha=args.alpha).checks[0] for m in margins]
        cmp = checks[0].comparison
        rows.append(
            (name, kind, checks[0].candidate_mean, cmp, checks[0].p_regression, [c.verdict for c in checks], seconds)
        )
        print(
            f"{name}: {checks[0].candidate_mean:.3f}, Δ {cmp.delta:+.3f} [{cmp.low:+.3f}, {cmp.high:+.3f}], "
            f"p {checks[0].p_regression:.3g}, "
            + ", ".join(f"margin {m:g}: {c.verdict}" for m, c in zip(margins, checks))
            + f" ({seconds:.0f} s)",
            flush=True,
        )
    if args.keep:
        shutil.copy(work / "runs" / "seed-0" / "run.json", args.keep / "baseline-seed-0.json")

    print()
    print(
        "| candidate | kind | test accuracy | Δ vs baseline [95% CI] | p (margin 0) | "
        + " | ".join(f"margin {m:g}" for m in margins)
        + " |"
    )
    print("|---|---|---|---|---|" + "---|" * len(margins))
    for name, kind, acc, cmp, p, verdicts, _ in rows:
        print(
            f"| {name} | {kind} | {acc:.3f} | {cmp.delta:+.3f} [{cmp.low:+.3f}, {cmp.high:+.3f}] | {p:.3g} | "
            + " | ".join(verdicts)
            + " |"
        )
    print()
    for i, m in enumerate(margins):
        unchanged = [r[5][i] for r in rows if r[1] == "unchanged"]
        degraded = [r[5][i] for r in rows if r[1] == "degraded"]
        print(
            f"margin {m:g}: unchanged re-runs {unchanged.count('pass')} pass, {unchanged.count('inconclusive')} "
            f"inconclusive, {unchanged.count('regression')} regression (false alarms; alpha {args.alpha}); degraded "
            f"{degraded.count('regression')} regression, {degraded.count('inconclusive')} inconclusive, "
            f"{degraded.count('pass')} pass (a pass here is a defect)"
        )
    mde = gate(base_run, baseline, "fewshot").checks[0].mde
    print(f"baseline accuracy {base_acc:.3f}, n={len(baseline.examples)}, detectable drop {mde:.3f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
