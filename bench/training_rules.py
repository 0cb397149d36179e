"""The training loop's per-device rules, both on this device, side by side in one run.

    python bench/training_rules.py [--device cuda|cpu] [--steps 20] [--repeats 2]

ladder's loop picks two things by device (``ladder.rungs.train``): how many tokens a forward/backward pass
takes (``pass_memory``: 512 MiB of activations on a CPU, a quarter of free GPU memory on CUDA) and whether
the rows of a pass compute their common prefix once (``shares_prefix``: on a CPU only). This runs the
loop with the CPU rules and with the CUDA rules on the same device, the same SNIPS LoRA (r 16, alpha 32,
dropout 0.05, all linear layers, batch 8, max length 128, fp32 base; bf16 autocast on CUDA), the same
steps, alternating ``--repeats`` times (the first pair also warms the device up), and prints ms per step,
training tokens/s and the ratio. No dev evaluations or checkpoints inside the timed steps.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch  # noqa: E402
from training import lora_model, snips_training_data  # noqa: E402

from ladder.backends.hf.transformers import TransformersBackend  # noqa: E402
from ladder.rungs import train as T  # noqa: E402
from ladder.rungs.train import device as D  # noqa: E402
from ladder.rungs.train import loop as Loop  # noqa: E402
from ladder.rungs.train import plan as P  # noqa: E402
from ladder.spec import TrainSpec  # noqa: E402

PASS_MEMORY = D.pass_memory  # the loop's own rule: used as is for the rules of the device it is on
RULES = {
    "cpu": (lambda device: D.PASS_MEMORY, lambda device: True),
    # on a CPU, "a quarter of free GPU memory" is a batch in one pass
    "cuda": (lambda device: PASS_MEMORY(device) if device.type == "cuda" else 1 << 40, lambda device: False),
}


def run(backend, examples, steps: int, rules: str) -> dict:
    Loop.pass_memory, P.shares_prefix = RULES[rules]  # where the loop and the planner look them up
    model = lora_model(backend.model)
    settings = TrainSpec(
        max_steps=steps,
        batch_size=8,
        learning_rate=4e-4,
        warmup_ratio=0.0,
        eval_every=10**6,
        checkpoint_every=10**6,
        max_seq_len=128,
    )
    out = T.train_loop(model, examples, examples[:8], T.TrainConfig(settings, 0, "bench", Path(tempfile.mkdtemp()), 0))
    return {
        "ms_per_step": out.wall_s / out.steps * 1000,
        "tokens_per_s": out.tokens_seen / out.wall_s,
        "loss": out.curve[-1].loss,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    backend = TransformersBackend.from_spec("smollm2-135m-instruct", device=args.device, dtype="float32")
    pairs, _ = snips_training_data(backend)
    examples, _ = T.encode_examples(pairs, backend._encode, backend._encode_continuation, 128)
    run(backend, examples, 3, "cpu")  # warm-up, untimed
    print(f"SNIPS LoRA r16 batch 8, {args.steps} steps, device {args.device}\n")
    print(f"{'repeat':>6} {'rules':6} {'ms/step':>8} {'tokens/s':>9} {'loss':>7}")
    for repeat in range(args.repeats):
        got = {rules: run(backend, examples, args.steps, rules) for rules in ("cpu", "cuda")}
        for rules, r in got.items():
            print(f"{repeat:>6} {rules:6} {r['ms_per_step']:8.1f} {r['tokens_per_s']:9.1f} {r['loss']:7.4f}")
        print(f"{repeat:>6} cuda rules are {got['cpu']['ms_per_step'] / got['cuda']['ms_per_step']:.2f}x the cpu rules")


if __name__ == "__main__":
    main()
