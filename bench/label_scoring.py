"""Label scoring speed and agreement, measured side by side in one run on the same examples and prompts.

    python bench/label_scoring.py [--n 100] [--rungs prompt,fewshot] [--lm-eval-rungs prompt]

Methods, all on SNIPS test examples with the prompts ladder renders for each rung:
- ladder loglik: TransformersBackend.score_choices (shared-prefix KV cache, all labels in one pass)
- ladder generate: greedy decoding up to the end-of-turn token (max 16 new tokens)
- lm-eval: lm-evaluation-harness, HF backend on the same model folder, a custom multiple-choice task
  read from a local JSONL holding the same rendered prompts and the same label completions
Each method gets a short warm-up outside the timer; model loading is outside the timer for all.
Prints a table of examples/s and ratios, the accuracies, and every example whose prediction differs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import ROOT  # noqa: E402  (the repository on sys.path, the model cache)

from ladder.backends.base import GenerateRequest, ScoreRequest  # noqa: E402
from ladder.backends.hf.transformers import TransformersBackend  # noqa: E402
from ladder.data.splits import load_splits  # noqa: E402
from ladder.run.evaluate import _common_prefix  # noqa: E402
from ladder.rungs import BuildContext, build_candidate  # noqa: E402
from ladder.spec import load_task, rung_name  # noqa: E402
from ladder.text import normalize  # noqa: E402

TASK = ROOT / "tasks" / "snips-intent" / "task.yaml"


def ladder_loglik(backend, prompts, completions, labels):
    prefix = _common_prefix(prompts)
    scored = backend.score_choices([ScoreRequest(p, completions, prefix=prefix) for p in prompts])
    return [labels[max(range(len(labels)), key=lambda j: (s.logprobs[j], -j))] for s in scored], scored


def ladder_generate(backend, prompts, end):
    out = backend.generate([GenerateRequest(p, 16, stop=[end]) for p in prompts])
    return [g.text for g in out]


def lm_eval_run(model_dir, prompts, completions, golds, batch_size):
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    tmp = Path(tempfile.mkdtemp(prefix="ladder-bench-"))
    data = tmp / "test.jsonl"
    with data.open("w", encoding="utf-8") as handle:
        for i, (prompt, gold) in enumerate(zip(prompts, golds)):
            handle.write(json.dumps({"idx": i, "prompt": prompt, "choices": completions, "gold": gold}) + "\n")
    config = {
        "task": "ladder_label_bench",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{prompt}}",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{gold}}",
        "target_delimiter": "",
        "metric_list": [{"metric": "acc"}],
    }
    lm = HFLM(pretrained=str(model_dir), dtype="float32", batch_size=batch_size, device="cpu")
    warm = dict(config, task="ladder_label_bench_warmup")
    lm_eval.simple_evaluate(model=lm, tasks=[warm], limit=2, log_samples=False, verbosity="ERROR")
    start = time.perf_counter()
    results = lm_eval.simple_evaluate(model=lm, tasks=[config], log_samples=True, verbosity="ERROR", bootstrap_iters=0)
    wall = time.perf_counter() - start
    samples = sorted(results["samples"]["ladder_label_bench"], key=lambda s: s["doc"]["idx"])
    preds = []
    logprobs = []
    for s in samples:
        lls = [r[0] for r in s["filtered_resps"]]
        preds.append(max(range(len(lls)), key=lambda j: (lls[j], -j)))
        logprobs.append(lls)
    return wall, preds, logprobs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--rungs", default="prompt,fewshot")
    parser.add_argument("--lm-eval-rungs", default="prompt", help="rungs to also run through lm-eval ('' for none)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "label_scoring.json")
    args = parser.parse_args()

    task = load_task(TASK)
    spec = task.spec
    splits = load_splits(task)
    examples = splits.test[: args.n]
    labels = spec.output.labels
    backend = TransformersBackend.from_spec(spec.model, batch_size=args.batch_size)
    _ = backend.model  # load outside the timers
    formatter = backend.formatter(spec.prompt.format)
    ctx = BuildContext(spec=spec, train=splits.train, dev=splits.dev)
    wanted = [r for r in args.rungs.split(",") if r]
    lm_rungs = [r for r in args.lm_eval_rungs.split(",") if r]
    rows, report = [], {"n": len(examples), "rungs": {}}
    for rung in [r for r in spec.rungs if rung_name(r) in wanted]:
        name = rung_name(rung)
        candidate = build_candidate(rung, ctx)
        convs = [candidate.messages(e.input) for e in examples]
        prompts = [formatter.prompt(c) for c in convs]
        completions = [formatter.completion(convs[0], label) for label in labels]
        golds = [labels.index(e.target) for e in examples]
        entry = {}

        ladder_loglik(backend, prompts[:2], completions, labels)  # warm-up
        backend._prefix_caches.clear()  # the timed run computes its shared prefix itself
        start = time.perf_counter()
        ll_preds, ll_scored = ladder_loglik(backend, prompts, completions, labels)
        ll_wall = time.perf_counter() - start
        ll_acc = sum(p == e.target for p, e in zip(ll_preds, examples)) / len(examples)
        entry["loglik"] = {"wall_s": ll_wall, "accuracy": ll_acc}

        ladder_generate(backend, prompts[:2], formatter.end_of_turn)  # warm-up
        start = time.perf_counter()
        gen = ladder_generate(backend, prompts, formatter.end_of_turn)
        gen_wall = time.perf_counter() - start
        gen_acc = sum(normalize(g) == normalize(e.target) for g, e in zip(gen, examples)) / len(examples)
        valid = sum(g in labels for g in gen) / len(examples)
        entry["generate"] = {"wall_s": gen_wall, "accuracy": gen_acc, "valid_label_rate": valid}
        rows.append((name, "ladder loglik", ll_wall, ll_acc))
        rows.append((name, "ladder generate", gen_wall, gen_acc))

        if name in lm_rungs:
            lm_wall, lm_preds, lm_lps = lm_eval_run(backend.ref.path, prompts, completions, golds, args.batch_size)
            lm_acc = sum(p == g for p, g in zip(lm_preds, golds)) / len(examples)
            entry["lm_eval"] = {"wall_s": lm_wall, "accuracy": lm_acc}
            rows.append((name, "lm-eval (HF)", lm_wall, lm_acc))
            diffs = []
            max_gap = 0.0
            for i, (ex, mine, theirs) in enumerate(zip(examples, ll_scored, lm_lps)):
                # lm-eval moves the context's trailing "\n" into the continuation: a constant per example
                shift = [a - b for a, b in zip(theirs, mine.logprobs)]
                max_gap = max(max_gap, max(shift) - min(shift))
                if labels[lm_preds[i]] != ll_preds[i]:
                    diffs.append(
                        {
                            "id": ex.id,
                            "ladder": ll_preds[i],
                            "lm_eval": labels[lm_preds[i]],
                            "ladder_logprobs": mine.logprobs,
                            "lm_eval_logprobs": theirs,
                        }
                    )
            entry["disagreements"] = diffs
            entry["max_relative_logprob_gap"] = max_gap
        report["rungs"][name] = entry

    print(f"\nSNIPS test, first {len(examples)} examples, {len(labels)} labels; model {spec.model} (fp32, CPU)\n")
    print(f"{'rung':8} {'method':16} {'wall s':>8} {'ex/s':>7} {'accuracy':>9} {'x lm-eval':>10} {'x generate':>11}")
    for name, method, wall, acc in rows:
        entry = report["rungs"][name]
        eps = len(examples) / wall
        lm = entry.get("lm_eval")
        vs_lm = f"{(len(examples) / lm['wall_s']) and eps / (len(examples) / lm['wall_s']):.1f}x" if lm else "-"
        vs_gen = f"{eps / (len(examples) / entry['generate']['wall_s']):.1f}x"
        print(f"{name:8} {method:16} {wall:8.1f} {eps:7.2f} {acc:9.3f} {vs_lm:>10} {vs_gen:>11}")
    for name, entry in report["rungs"].items():
        if "disagreements" in entry:
            d = entry["disagreements"]
            print(
                f"\n{name}: ladder vs lm-eval predictions differ on {len(d)} of {len(examples)} examples; "
                f"largest spread of per-label log-prob differences within one example: {entry['max_relative_logprob_gap']:.2e}"
            )
            for item in d:
                print(f"  {item['id']}: ladder {item['ladder']} vs lm-eval {item['lm_eval']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
