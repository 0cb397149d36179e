"""Training speed of the three objectives on the one loop (supervised LoRA, distill, preference/DPO) next
to TRL's DPOTrainer set fairly for a CPU, side by side in one run.

    python bench/objectives.py [--steps 12] [--examples 96]

Same model (the bundled SmolLM2-135M-Instruct, fp32), same data (the first --examples SNIPS train inputs,
rendered through the chat template as the rungs render them), same LoRA (r 16, alpha 32, dropout 0.05, all
linear layers), batch 8 (examples or pairs), max length 128, constant learning rate:
- supervised: the lora rung's data (the gold labels);
- distill: the distill rung's data (the 10-shot rung's answers to the same inputs; the teacher's answering
  time is printed on its own: it is part of the rung's adaptation cost, not of its training speed);
- preference: the preference rung's data (chosen = the gold label, rejected = the zero-shot rung's most
  likely wrong label), sigmoid DPO + the chosen answer's token loss (RPO, weight 1), beta 0.1, reference
  log-probabilities computed once before training (their pass is inside the timed wall);
- TRL DPOTrainer, the same pairs as conversations, loss_type [sigmoid, sft] with weights [1, 1] (= RPO),
  beta 0.1, precompute_ref_log_probs, fp32, no gradient checkpointing; its own count of non-padding input
  tokens, and the wall time of `trainer.train()` (which includes its reference pass).
Figures: real (non-padding) tokens through the forward passes per second of wall time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch  # noqa: E402
from _common import ROOT  # noqa: E402  (the repository on sys.path, the model cache)
from training import lora_model  # noqa: E402  (bench/training.py: the same LoRA)

from ladder.backends.hf.transformers import TransformersBackend  # noqa: E402
from ladder.data.splits import load_task_data  # noqa: E402
from ladder.run.cache import ResultCache  # noqa: E402
from ladder.run.evaluate import run_eval  # noqa: E402
from ladder.rungs.base import BuildContext, Candidate  # noqa: E402
from ladder.rungs.fewshot import static_demos  # noqa: E402
from ladder.rungs.preference import DPO, PreferencePair  # noqa: E402
from ladder.rungs.train import TrainConfig, encode_examples, train_loop  # noqa: E402
from ladder.spec import TrainSpec, load_task  # noqa: E402

BETA = 0.1


def settings(steps: int, lr: float) -> TrainSpec:
    return TrainSpec(
        max_steps=steps,
        batch_size=8,
        learning_rate=lr,
        warmup_ratio=0.0,
        eval_every=10**6,
        checkpoint_every=10**6,
        max_seq_len=128,
    )


def run_loop(backend, examples, objective, steps, lr, prepare=None) -> dict:
    model = lora_model(backend.model)
    started = time.perf_counter()
    if prepare is not None:
        prepare(model)
    prepare_s = time.perf_counter() - started
    work = Path(tempfile.mkdtemp(prefix="bench-objective-"))
    config = TrainConfig(
        settings(steps, lr), 0, "bench", work, backend.hf.pad_id, **({"objective": objective} if objective else {})
    )
    out = train_loop(model, examples, examples[:8], config)
    wall = out.wall_s + prepare_s
    return {
        "steps": out.steps,
        "wall_s": wall,
        "tokens": out.tokens_seen,
        "tokens_per_s": out.tokens_seen / wall,
        "first_loss": out.curve[0].loss,
        "last_loss": out.curve[-1].loss,
    }


def run_trl_dpo(backend, convs, steps, lr) -> dict:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    config = DPOConfig(
        output_dir=tempfile.mkdtemp(prefix="bench-trl-dpo-"),
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
        beta=BETA,
        loss_type=["sigmoid", "sft"],
        loss_weights=[1.0, 1.0],
        precompute_ref_log_probs=True,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        include_num_input_tokens_seen="non_padding",
    )
    trainer = DPOTrainer(
        model=lora_model(backend.model),
        args=config,
        train_dataset=Dataset.from_list(convs),
        processing_class=backend.tokenizer,
    )
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    tokens = int(trainer.state.num_input_tokens_seen)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "steps": steps,
        "wall_s": wall,
        "tokens": tokens,
        "tokens_per_s": tokens / wall,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--examples", type=int, default=96)
    parser.add_argument("--lr", type=float, default=4e-4)
    parser.add_argument("--no-trl", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "objectives.json")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    task = load_task(ROOT / "tasks" / "snips-intent" / "task.yaml")
    spec = task.spec
    splits = load_task_data(task).splits
    train = splits.train[: args.examples]
    backend = TransformersBackend.from_spec("smollm2-135m-instruct", batch_size=8)
    f = backend.formatter("chat")
    zero = Candidate("bench", "prompt", spec.prompt.instruction, spec.prompt.input_template)
    ctx = BuildContext(spec=spec, train=splits.train, dev=splits.dev)
    teacher = Candidate(
        "fewshot",
        "fewshot",
        spec.prompt.instruction,
        spec.prompt.input_template,
        static_demos(ctx, "fewshot", 10, "random"),
    )
    off = ResultCache(Path(tempfile.mkdtemp()), enabled=False)

    started = time.perf_counter()
    taught = run_eval(teacher, train, backend, f, spec, off).outputs
    teacher_s = time.perf_counter() - started
    own = run_eval(zero, train, backend, f, spec, off).outputs

    def texts(answers):
        out = []
        for ex, answer in zip(train, answers):
            messages = zero.messages(ex.input)
            out.append((f.prompt(messages), f.completion(messages, answer)))
        return out

    supervised, _ = encode_examples(
        texts([ex.target for ex in train]), backend._encode, backend._encode_continuation, 128
    )
    distilled, _ = encode_examples(
        texts([o.output for o in taught]), backend._encode, backend._encode_continuation, 128
    )
    pairs, convs = [], []
    for ex, o in zip(train, own):
        wrong = max(
            (label for label in o.label_logprobs if label != ex.target), key=lambda label: o.label_logprobs[label]
        )
        messages = zero.messages(ex.input)
        pairs.append(
            PreferencePair(
                backend._encode(f.prompt(messages)),
                backend._encode_continuation(f.completion(messages, ex.target)),
                backend._encode_continuation(f.completion(messages, wrong)),
            )
        )
        convs.append(
            {
                "prompt": messages,
                "chosen": [{"role": "assistant", "content": ex.target}],
                "rejected": [{"role": "assistant", "content": wrong}],
            }
        )
    dpo = DPO(BETA, 1.0)

    print(
        f"SNIPS train, first {len(train)} inputs; LoRA r16 all-linear, batch 8, {args.steps} steps, fp32, "
        f"{torch.get_num_threads()} threads",
        flush=True,
    )
    print(
        f"teacher (10-shot, label scoring) answered {len(train)} inputs in {teacher_s:.1f} s "
        f"({len(train) / teacher_s:.2f} ex/s); agrees with the gold label on "
        f"{sum(o.output == ex.target for o, ex in zip(taught, train))}/{len(train)}",
        flush=True,
    )
    results = {"teacher": {"examples": len(train), "seconds": teacher_s}}
    run_loop(backend, supervised, None, 2, args.lr)  # warm-up (allocator, threads): the first timed row paid it
    results["supervised"] = run_loop(backend, supervised, None, args.steps, args.lr)
    print("supervised", results["supervised"], flush=True)
    results["distill"] = run_loop(backend, distilled, None, args.steps, args.lr)
    print("distill", results["distill"], flush=True)
    results["preference"] = run_loop(
        backend,
        pairs,
        dpo,
        args.steps,
        args.lr,
        prepare=lambda m: dpo.prepare(m, pairs, [], backend.hf.pad_id, m.device),
    )
    print("preference", results["preference"], flush=True)
    rows = [
        ("ladder loop, supervised LoRA (lora rung)", "supervised"),
        ("ladder loop, distill rung", "distill"),
        ("ladder loop, DPO + RPO term (preference rung)", "preference"),
    ]
    if not args.no_trl:
        results["trl_dpo"] = run_trl_dpo(backend, convs, args.steps, args.lr)
        print("trl dpo", results["trl_dpo"], flush=True)
        rows.append(("TRL DPOTrainer (sigmoid+sft, precomputed ref, fp32)", "trl_dpo"))
    base = results["supervised"]["tokens_per_s"]
    print(
        f"\n{'what':52} {'steps':>5} {'wall s':>8} {'real tokens':>11} {'tokens/s':>9} {'vs supervised':>13} {'loss first→last':>17}"
    )
    for label, key in rows:
        r = results[key]
        losses = f"{r['first_loss']:.3f}→{r['last_loss']:.3f}" if r["first_loss"] is not None else "—"
        print(
            f"{label[:52]:52} {r['steps']:>5} {r['wall_s']:8.1f} {r['tokens']:>11} {r['tokens_per_s']:9.1f} "
            f"{r['tokens_per_s'] / base:12.2f}x {losses:>17}"
        )
    if "trl_dpo" in results:
        ratio = results["preference"]["tokens_per_s"] / results["trl_dpo"]["tokens_per_s"]
        print(f"ladder's preference rung trains {ratio:.2f}x TRL DPOTrainer's tokens/s on the same pairs")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=str))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
