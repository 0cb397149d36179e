"""Greedy JSON generation speed on CPU, measured side by side in one run on the same prompts.

    python bench/generation.py [--n 32] [--rungs prompt,fewshot]

us-address dev examples, rendered by the task's zero-shot and few-shot (8 demonstrations) rungs, up to
96 new tokens, stopping at end-of-turn or when the JSON object closes. The same batching and stopping
code runs in every row; what changes:
- attention: transformers' `sdpa`, or `ladder_sdpa` (decoding steps attend per key/value head, without
  copying the cache per query-head group)
- full prompts, or a shared prefix: the instruction + demonstrations computed once, their KV cache
  reused by every batch
- 8 rows per decoding step, or 16
The first row (`sdpa`, full prompts, batch 8) is ladder before this change.
Model loading and a short warm-up are outside the timers. Prints examples/s, the ratio to the first
row, and on how many examples the output text equals the first row's (greedy: it should be all).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import ROOT  # noqa: E402  (the repository on sys.path, the model cache)

from ladder.backends.base import GenerateRequest  # noqa: E402
from ladder.backends.hf.transformers import TransformersBackend  # noqa: E402
from ladder.data.splits import load_splits  # noqa: E402
from ladder.run.evaluate import _common_prefix  # noqa: E402
from ladder.rungs import BuildContext, build_candidate  # noqa: E402
from ladder.spec import load_task, rung_name  # noqa: E402

TASK = ROOT / "tasks" / "us-address" / "task.yaml"


def run(backend, prompts, prefix, spec, end):
    requests = [
        GenerateRequest(p, spec.generation.max_new_tokens, [end], prefix=prefix, stop_at_json_end=True) for p in prompts
    ]
    backend._prefix_caches.clear()  # a timed run computes its shared prefix itself
    start = time.perf_counter()
    out = backend.generate(requests)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--rungs", default="prompt,fewshot")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "generation.json")
    args = parser.parse_args()
    import torch
    from transformers import AutoModelForCausalLM

    task = load_task(TASK)
    spec = task.spec
    splits = load_splits(task)
    examples = splits.dev[: args.n]
    ours = TransformersBackend.from_spec(spec.model, batch_size=8)
    stock = TransformersBackend.from_spec(spec.model, batch_size=8)
    stock._model = AutoModelForCausalLM.from_pretrained(
        stock.ref.path, dtype=torch.float32, attn_implementation="sdpa"
    ).eval()
    ours.decoding = "generate"  # this comparison is of the generate path; bench/ceiling.py measures ladder's own loop
    _ = ours.model  # load outside the timers
    formatter = ours.formatter(spec.prompt.format)
    ctx = BuildContext(spec=spec, train=splits.train, dev=splits.dev)
    wanted = [r for r in args.rungs.split(",") if r]
    methods = [
        ("sdpa, full prompts", stock, False, 8),
        ("sdpa, shared prefix", stock, True, 8),
        ("ladder_sdpa, full prompts", ours, False, 8),
        ("ladder_sdpa, shared prefix", ours, True, 8),
        ("ladder_sdpa, shared prefix, b16", ours, True, 16),
    ]
    report, rows = {"n": len(examples), "rungs": {}}, []
    for rung in [r for r in spec.rungs if rung_name(r) in wanted]:
        name = rung_name(rung)
        candidate = build_candidate(rung, ctx)
        prompts = [formatter.prompt(candidate.messages(e.input)) for e in examples]
        prefix = _common_prefix(prompts)
        entry, base = {"prefix_tokens": ours.count_tokens(prefix), "prompt_tokens": ours.count_tokens(prompts[0])}, None
        for label, backend, shared, batch in methods:
            backend.batch_size = batch
            run(backend, prompts[:2], prefix if shared else "", spec, formatter.end_of_turn)  # warm-up
            wall, out = run(backend, prompts, prefix if shared else "", spec, formatter.end_of_turn)
            texts = [g.text for g in out]
            base = base or (wall, texts)
            same = sum(a == b for a, b in zip(texts, base[1]))
            new_tokens = sum(g.completion_tokens for g in out) / len(out)
            entry[label] = {"wall_s": wall, "same_as_first": same, "completion_tokens": new_tokens}
            rows.append((name, label, wall, base[0] / wall, same, new_tokens))
        report["rungs"][name] = entry

    print(
        f"\nus-address dev, first {len(examples)} examples; model {spec.model} (fp32, CPU, {torch.get_num_threads()} threads)\n"
    )
    print(f"{'rung':8} {'method':32} {'wall s':>7} {'ex/s':>6} {'x first':>8} {'same text':>10} {'new tok':>8}")
    for name, label, wall, ratio, same, new_tokens in rows:
        print(
            f"{name:8} {label:32} {wall:7.1f} {len(examples) / wall:6.2f} {ratio:7.2f}x {same:>5}/{len(examples):<4} {new_tokens:8.1f}"
        )
    for name, entry in report["rungs"].items():
        print(
            f"{name}: prompt {entry['prompt_tokens']} tokens, of which {entry['prefix_tokens']} shared by every example"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
