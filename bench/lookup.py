"""Prompt-lookup drafts in ladder's decoding loop, against the loop without them, side by side in one run.

    python bench/lookup.py [--task us-address:fewshot] [--prompts 64] [--lookup 0,4] [--slots 64,16] [--rounds 3]

A rung's greedy generation (default us-address 8-shot: JSON answers that copy the address's words; quiz-facts:prompt
for short free answers) on the transformers backend in fp32: for every cap on the rows decoded together
(``decode.MAX_SLOTS``; the loop refills a finished row's slot from the queue) and every ``lookup`` (drafts per row and
step; 0 is the loop without them): examples/s (medians of ``--rounds`` alternated runs), forward passes, drafts
proposed and kept, and how many texts equal the loop's without drafts (must be all).
Model loading and a warm-up are outside the timers; run it alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from _common import ROOT, machine  # (the repository on sys.path, the model cache)
from ceiling import task_prompts

from ladder.backends.base import GenerateRequest
from ladder.backends.hf import decode
from ladder.backends.hf.transformers import TransformersBackend


def requests_of(backend, task: str, rung: str, n: int) -> list[GenerateRequest]:
    """The rung's own prompts on the first ``n`` dev inputs, as its eval step asks for them."""
    spec, examples, candidate = task_prompts(ROOT / "tasks" / task / "task.yaml", rung, n)
    f = backend.formatter(spec.prompt.format)
    prompts = [f.prompt(candidate.messages(e.input)) for e in examples]
    prefix = os.path.commonprefix(prompts)
    json_end = spec.output.kind == "json" and spec.generation.stop_at_json_end
    return [
        GenerateRequest(p, spec.generation.max_new_tokens, [f.end_of_turn], prefix=prefix, stop_at_json_end=json_end)
        for p in prompts
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--lookup", default="0,4")
    parser.add_argument("--slots", default="64,16")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each setting, alternated (medians)")
    parser.add_argument("--task", default="us-address:fewshot", help="TASK:RUNG (default us-address:fewshot)")
    args = parser.parse_args()
    backend = TransformersBackend.from_spec(args.model, batch_size=1)
    requests = requests_of(backend, *args.task.split(":"), args.prompts)
    backend.generate(requests[:2])  # weights loaded, kernels warm
    print(
        f"{machine()}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.model}, fp32, {args.task}, {len(requests)} prompts\n"
    )
    print("| rows together | lookup | examples/s (vs 0) | forward passes | drafts kept / proposed | texts = lookup 0 |")
    print("|---|---|---|---|---|---|")
    lookups = [int(k) for k in args.lookup.split(",")]
    for slots in [int(s) for s in args.slots.split(",")]:
        decode.MAX_SLOTS = slots
        rates: dict[int, list[float]] = {k: [] for k in lookups}
        found: dict[int, tuple] = {}
        for _ in range(args.rounds):  # the settings alternate, so a slow spell of the machine hits them alike
            for lookup in lookups:
                backend.lookup = lookup
                backend.lookup_counts = {"drafted": 0, "accepted": 0, "passes": 0}
                backend._prefix_caches.clear()
                start = time.perf_counter()
                out = backend.generate(requests)
                rates[lookup].append(len(out) / (time.perf_counter() - start))
                found[lookup] = ([g.text for g in out], dict(backend.lookup_counts))
        reference = found[lookups[0]][0]
        base = statistics.median(rates[lookups[0]])
        for lookup in lookups:
            texts, counts = found[lookup]
            rate = statistics.median(rates[lookup])
            equal = sum(a == b for a, b in zip(texts, reference))
            print(
                f"| {slots} | {lookup} | {rate:.2f} ({rate / base:.2f}x) | {counts['passes']} | "
                f"{counts['accepted']} / {counts['drafted']} | {equal}/{len(texts)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
