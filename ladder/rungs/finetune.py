"""The lora and full rungs: train on the train split with the shared loop, evaluate like every rung.

The trained weights are evaluated through the same backend (same scorers, same record): a LoRA adapter
is merged into a copy of the base model for speed (a test checks merged and unmerged outputs agree).
Artifacts go to the run folder (``<run>/<rung>/adapter`` or ``/model``); resumable checkpoints live in
``$LADDER_HOME/training/<key>``, keyed by base model, data, settings and seed, so an interrupted or
repeated assessment resumes or reuses the training instead of starting over.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import ladder
from ladder.cache import cache_key
from ladder.errors import LadderError, MissingDependency
from ladder.paths import ladder_home
from ladder.rungs import RUNGS
from ladder.rungs.base import BuildContext, Candidate
from ladder.rungs.train import encode_examples, outcome_dict, train_loop
from ladder.spec import FullRungSpec, LoraRungSpec, rung_name


def _dir_digest(folder: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(data).digest())
        size += len(data)
    return digest.hexdigest(), size


def _canonical_adapter_config(folder: Path) -> None:
    """peft writes ``target_modules`` from a set, in an order that changes with each process's hash seed:
    the same adapter would get another hash in every run. Sorted, the same weights give the same bytes."""
    path = folder / "adapter_config.json"
    config = json.loads(path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _load_4bit(backend, name: str):
    """QLoRA: the base model in 4-bit NF4 (bitsandbytes), bf16 compute, on the backend's GPU."""
    import importlib.util

    import torch

    if not backend.device.startswith("cuda"):
        raise LadderError(f"rung {name!r}: quantize: 4bit (QLoRA) needs a CUDA GPU; this machine has none")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise MissingDependency(f"bitsandbytes (for rung {name!r}, quantize: 4bit)", "pip install bitsandbytes")
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(backend.ref.path, quantization_config=quant, device_map={"": backend.device})
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def train_rung(rung: LoraRungSpec | FullRungSpec, ctx: BuildContext, stop_after: int | None = None):
    """Train a copy of the base model; returns (model, outcome, checkpoint folder, examples trained on).

    Under torchrun every rank calls this; the loop shares the work and rank 0 writes the checkpoints.
    """
    name = rung_name(rung)
    spec = ctx.spec
    backend = ctx.backend
    if backend is None or not hasattr(backend, "derive"):
        raise LadderError(f"rung {name!r}: training needs the transformers backend")
    formatter = backend.formatter(spec.prompt.format)
    zero_shot = Candidate(name, rung.type, spec.prompt.instruction, spec.prompt.input_template)

    def pairs(examples):
        out = []
        for ex in examples:
            messages = zero_shot.messages(ex.input)
            out.append((formatter.prompt(messages), formatter.completion(messages, ex.target)))
        return out

    train_pairs, dev_pairs = pairs(ctx.train), pairs(ctx.dev)
    max_len = rung.train.max_seq_len
    train_set, truncated = encode_examples(train_pairs, backend._encode, backend._encode_continuation, max_len)
    if train_set and truncated == len(train_set):
        shortest = min(len(backend._encode(p)) + len(backend._encode_continuation(a)) for p, a in train_pairs)
        raise LadderError(f"rungs[{name}].train.max_seq_len: {max_len} is shorter than every training example "
                          f"(the shortest, instruction + input + answer, is {shortest} tokens)")
    dev_set, _ = encode_examples(dev_pairs, backend._encode, backend._encode_continuation, max_len)
    key = cache_key(
        {
            "ladder": ladder.__version__,
            "base": backend.identity(),
            "train": train_pairs,
            "dev": dev_pairs,
            "rung": rung.model_dump(mode="json"),
            "seed": spec.seed,
        }
    )
    work = ladder_home() / "training" / key[:32]
    import torch

    torch.manual_seed(spec.seed)  # the adapter's initial weights depend on it: same seed, same training
    on_cuda = backend.device.startswith("cuda")
    if isinstance(rung, LoraRungSpec) and rung.quantize == "4bit":
        model = _load_4bit(backend, name)
    else:
        # a copy: the base model stays as it is for the other rungs; fp32 master weights on CUDA too
        # (the loop runs the forward pass under bf16 autocast there)
        model = copy.deepcopy(backend.model).float() if on_cuda else copy.deepcopy(backend.model)
    if isinstance(rung, LoraRungSpec):
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise MissingDependency("peft (for the lora rung)", "pip install peft") from None
        config = LoraConfig(
            r=rung.r,
            lora_alpha=rung.alpha,
            lora_dropout=rung.dropout,
            target_modules=rung.target_modules,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, config)
    else:
        for param in model.parameters():
            param.requires_grad_(True)
    pad = backend.tokenizer.pad_token_id if backend.tokenizer.pad_token_id is not None else 0
    metric = _dev_metric(rung, ctx, zero_shot, formatter) if rung.train.early_stopping == "dev_metric" else None
    outcome = train_loop(model, train_set, dev_set, rung.train, spec.seed, name, work, pad, truncated, stop_after,
                         dev_metric=metric)
    return model, outcome, work, len(train_set)


def _dev_metric(rung, ctx: BuildContext, candidate: Candidate, formatter):
    """model -> the task's target metric on (the first metric_examples of) dev, measured the way the
    evaluation measures it (same eval step and scorer), on the weights as they are mid-training; nothing
    is cached. Under torchrun every rank measures it on identical weights, so all stop together."""
    from ladder.cache import ResultCache
    from ladder.evaluate import run_eval
    from ladder.scoring.metrics import METRICS

    spec = ctx.spec
    scorer = METRICS.get(spec.target.metric)
    examples = ctx.dev[: rung.train.metric_examples] if rung.train.metric_examples else ctx.dev
    if not examples:
        raise LadderError(f"rung {rung_name(rung)!r}: early_stopping: dev_metric needs dev examples")
    uncached = ResultCache(ladder_home() / "results", enabled=False)

    def measure(model) -> float:
        backend = ctx.backend.derive(model, "mid-training")
        outputs = run_eval(candidate, examples, backend, formatter, spec, uncached).outputs
        return sum(scorer.score(o.output, ex.references) for o, ex in zip(outputs, examples)) / len(examples)

    return measure


def finetune(rung: LoraRungSpec | FullRungSpec, ctx: BuildContext, stop_after: int | None = None) -> Candidate:
    name = rung_name(rung)
    spec = ctx.spec
    model, outcome, work, n_train = train_rung(rung, ctx, stop_after)
    backend = ctx.backend

    artifacts = (ctx.work_dir or work) / name
    if isinstance(rung, LoraRungSpec):
        model.save_pretrained(artifacts / "adapter")
        _canonical_adapter_config(artifacts / "adapter")
        digest, size = _dir_digest(artifacts / "adapter")
        if rung.quantize == "none":  # a 4-bit base cannot take the merge: QLoRA is evaluated unmerged
            model = model.merge_and_unload()
        artifact = artifacts / "adapter"
    else:
        model.save_pretrained(artifacts / "model")
        digest, size = _dir_digest(artifacts / "model")
        artifact = artifacts / "model"
    trainable = sum(p.numel() for p in model.parameters()) if isinstance(rung, FullRungSpec) else None
    training = {
        **outcome_dict(outcome),
        "artifact": str(artifact),
        "artifact_bytes": size,
        "artifact_sha256": digest,
        "checkpoint_dir": str(work),
        "train_examples": n_train,
        "trainable_params": trainable,
    }
    settings = rung.model_dump(mode="json", exclude={"type", "name"})
    return Candidate(
        name,
        rung.type,
        spec.prompt.instruction,
        spec.prompt.input_template,
        settings=settings,
        backend=backend.derive(model if rung_quantized(rung) else model.to(backend.dtype), digest),
        training=training,
    )


def rung_quantized(rung) -> bool:
    return isinstance(rung, LoraRungSpec) and rung.quantize != "none"


@RUNGS.register("lora")
def build_lora(rung: LoraRungSpec, ctx: BuildContext) -> Candidate:
    return finetune(rung, ctx)


@RUNGS.register("full")
def build_full(rung: FullRungSpec, ctx: BuildContext) -> Candidate:
    return finetune(rung, ctx)
