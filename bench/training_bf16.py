"""LoRA training on a CPU in fp32 against bf16 autocast (fp32 master weights), side by side in one run.

    python bench/training_bf16.py [--steps 12] [--rounds 2]

The SNIPS lora rung's data and adapter (r 16, alpha 32, all linear layers; batch 8, max length 128) on the bundled
SmolLM2-135M-Instruct, ladder's own training loop (``rungs.train.train_loop``), `--steps` steps per run, the two
settings alternated `--rounds` times (A B A B: drift on a shared machine falls on both). bf16 runs the forward
passes under ``torch.autocast("cpu", torch.bfloat16)`` (what the loop does on CUDA); fp32 as the loop runs on a
CPU today. Prints real tokens/s of each run, the ratio of the medians, and each run's last loss (same data, same
seed: the curves should agree within bf16's rounding). Where the processor has no native bf16 (no avx512_bf16 or
amx_bf16) torch emulates it and the ratio says so.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
from contextlib import nullcontext
from pathlib import Path

import torch
from _common import SNIPS, machine

import ladder.rungs.train.loop as loop
from ladder.backends.hf.transformers import TransformersBackend
from ladder.data.splits import load_task_data
from ladder.rungs.train import TrainConfig, encode_examples, train_loop
from ladder.spec import TrainSpec, load_task

LORA = dict(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")


def run(backend, examples, steps: int, bf16: bool) -> tuple[float, float]:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(copy.deepcopy(backend.model), LoraConfig(**LORA))
    settings = TrainSpec(
        max_steps=steps,
        batch_size=8,
        learning_rate=4e-4,
        warmup_ratio=0.0,
        eval_every=10**6,
        checkpoint_every=10**6,
        max_seq_len=128,
    )
    own = loop.autocast
    loop.autocast = (lambda device: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else (lambda d: nullcontext())
    try:
        work = Path(tempfile.mkdtemp(prefix="bench-bf16-"))
        out = train_loop(model, examples, examples[:8], TrainConfig(settings, 0, "bench", work, 0))
    finally:
        loop.autocast = own
    return out.tokens_seen / out.wall_s, out.curve[-1].loss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    task = load_task(SNIPS)
    spec = task.spec
    backend = TransformersBackend.from_spec(spec.model)
    formatter = backend.formatter(spec.prompt.format)
    pairs = []
    for ex in load_task_data(task).splits.train:
        messages = [
            {"role": "system", "content": spec.prompt.instruction},
            {"role": "user", "content": spec.prompt.input_template.replace("{input}", ex.input)},
        ]
        pairs.append((formatter.prompt(messages), formatter.completion(messages, ex.target)))
    examples, _ = encode_examples(pairs, backend._encode, backend._encode_continuation, 128)
    rates: dict[str, list[float]] = {"fp32": [], "bf16 autocast": []}
    losses: dict[str, list[float]] = {"fp32": [], "bf16 autocast": []}
    for _ in range(args.rounds):
        for name in rates:
            rate, loss = run(backend, examples, args.steps, bf16=name != "fp32")
            rates[name].append(rate)
            losses[name].append(loss)
    print(f"\n{machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"SNIPS lora (r 16), {args.steps} steps of 8 per run, {args.rounds} rounds alternated\n")
    print(f"{'setting':14} {'tokens/s per run':>28} {'median':>8} {'last loss per run':>22}")
    for name in rates:
        runs = " ".join(f"{r:6.1f}" for r in rates[name])
        print(
            f"{name:14} {runs:>28} {statistics.median(rates[name]):8.1f} {' '.join(f'{x:.4f}' for x in losses[name]):>22}"
        )
    ratio = statistics.median(rates["bf16 autocast"]) / statistics.median(rates["fp32"])
    print(f"\nbf16 autocast / fp32: {ratio:.2f}x")


if __name__ == "__main__":
    main()
