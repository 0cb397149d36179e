"""Training speed of ladder's loop vs TRL's SFTTrainer (with peft LoRA), side by side in one run.

    python bench/training.py [--steps 20] [--trl-default-steps 2]

Same model (the bundled SmolLM2-135M-Instruct, fp32 weights), same data (SNIPS train split rendered
through the chat template exactly as the lora rung does: prompt + completion, loss on the completion),
same LoRA (r 16, alpha 32, dropout 0.05, all linear layers), learning rate, batch size 8, max length
128. The figure is real (non-padding) tokens per second of training:
- ladder: `ladder.rungs.train.train_loop` (no dev evaluations, no checkpoints inside the timed steps);
- TRL, its defaults on this CPU (bf16 autocast and gradient checkpointing on); steps capped;
- TRL set up fairly for a CPU: fp32, no gradient checkpointing, and its padding-free option where it
  accepts it.
TRL counts its own non-padding input tokens (`include_num_input_tokens_seen="non_padding"`).
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch  # noqa: E402
from _common import ROOT  # noqa: E402  (the repository on sys.path, the model cache)

from ladder.backends.hf.transformers import TransformersBackend  # noqa: E402
from ladder.data.splits import load_task_data  # noqa: E402
from ladder.rungs.base import Candidate  # noqa: E402
from ladder.rungs.train import TrainConfig, encode_examples, train_loop  # noqa: E402
from ladder.spec import TrainSpec, load_task  # noqa: E402

LORA = dict(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")


def lora_model(base):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    return get_peft_model(copy.deepcopy(base), LoraConfig(**LORA))


def run_ladder(backend, pairs, steps, lr) -> dict:
    examples, _ = encode_examples(pairs, backend._encode, backend._encode_continuation, 128)
    model = lora_model(backend.model)
    settings = TrainSpec(
        max_steps=steps,
        batch_size=8,
        learning_rate=lr,
        warmup_ratio=0.0,
        eval_every=10**6,
        checkpoint_every=10**6,
        max_seq_len=128,
    )
    work = Path(tempfile.mkdtemp(prefix="bench-ladder-"))
    out = train_loop(model, examples, examples[:8], TrainConfig(settings, 0, "bench", work, 0))
    # the one dev evaluation at the last step is inside wall_s: remove it from the figure
    return {
        "steps": out.steps,
        "wall_s": out.wall_s,
        "tokens": out.tokens_seen,
        "tokens_per_s": out.tokens_seen / out.wall_s,
        "final_loss": out.curve[-1].loss,
    }


def run_trl(backend, convs, steps, lr, fair: bool) -> dict:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    data = Dataset.from_list(convs)
    kwargs = dict(
        output_dir=tempfile.mkdtemp(prefix="bench-trl-"),
        per_device_train_batch_size=8,
        max_steps=steps,
        learning_rate=lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_length=128,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",
    )
    note = "defaults (bf16 autocast, gradient checkpointing)"
    if fair:
        kwargs.update(bf16=False, fp16=False, gradient_checkpointing=False)
        note = "fp32, no gradient checkpointing"
    # TRL's padding-free mode does not truncate without packing: every SNIPS example is far below 128
    # tokens, so max_length=None changes nothing else.
    attempts = [dict(padding_free=True, max_length=None), {}] if fair else [{}]
    last_error = None
    for extra in attempts:
        try:
            config = SFTConfig(**{**kwargs, **extra})
            trainer = SFTTrainer(
                model=lora_model(backend.model), args=config, train_dataset=data, processing_class=backend.tokenizer
            )
            start = time.perf_counter()
            trainer.train()
            wall = time.perf_counter() - start
            tokens = int(trainer.state.num_input_tokens_seen)
            return {
                "steps": steps,
                "wall_s": wall,
                "tokens": tokens,
                "tokens_per_s": tokens / wall,
                "setting": note + (", padding_free" if extra else ""),
                "bf16": config.bf16,
                "gradient_checkpointing": config.gradient_checkpointing,
                "padding_free_error": str(last_error) if last_error else None,
            }
        except Exception as exc:  # padding_free is refused without flash attention on some versions
            last_error = exc
    raise last_error  # type: ignore[misc]


def snips_training_data(backend):
    """SNIPS train through the chat template as the lora rung renders it: (prompt, completion) text pairs
    for ladder's loop, prompt/completion conversations for TRL."""
    task = load_task(ROOT / "tasks" / "snips-intent" / "task.yaml")
    train = load_task_data(task).splits.train
    f = backend.formatter("chat")
    zero = Candidate("bench", "lora", task.spec.prompt.instruction, task.spec.prompt.input_template)
    pairs, convs = [], []
    for ex in train:
        messages = zero.messages(ex.input)
        pairs.append((f.prompt(messages), f.completion(messages, ex.target)))
        convs.append({"prompt": messages, "completion": [{"role": "assistant", "content": ex.target}]})
    return pairs, convs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--trl-default-steps", type=int, default=2)
    parser.add_argument("--lr", type=float, default=4e-4)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "training.json")
    args = parser.parse_args()
    backend = TransformersBackend.from_spec("smollm2-135m-instruct")
    _ = backend.model
    pairs, convs = snips_training_data(backend)
    train = pairs
    results = {}
    print(
        f"SNIPS train ({len(train)} examples), LoRA r16 all-linear, batch 8, max length 128, 2 CPU threads", flush=True
    )
    results["ladder"] = run_ladder(backend, pairs, args.steps, args.lr)
    print("ladder", results["ladder"], flush=True)
    results["trl_fair"] = run_trl(backend, convs, args.steps, args.lr, fair=True)
    print("trl fair", results["trl_fair"], flush=True)
    results["trl_defaults"] = run_trl(backend, convs, args.trl_default_steps, args.lr, fair=False)
    print("trl defaults", results["trl_defaults"], flush=True)
    base = results["ladder"]["tokens_per_s"]
    print(f"\n{'method':52} {'steps':>5} {'wall s':>8} {'real tokens':>11} {'tokens/s':>9} {'ladder is':>10}")
    for name, label in (
        ("ladder", "ladder train_loop"),
        ("trl_fair", "TRL SFTTrainer, " + results["trl_fair"]["setting"]),
        ("trl_defaults", "TRL SFTTrainer, " + results["trl_defaults"]["setting"]),
    ):
        r = results[name]
        print(
            f"{label[:52]:52} {r['steps']:>5} {r['wall_s']:8.1f} {r['tokens']:>11} {r['tokens_per_s']:9.1f} "
            f"{base / r['tokens_per_s']:9.1f}x"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=str))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
