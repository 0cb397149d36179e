"""The lora and full rungs: train on the train split with the shared loop, evaluate like every rung.

Training loads the task's base model itself (``backends/hf_model.py``: tokenizer, prompt encoding,
weights), never through a backend; what it makes is an artifact (a peft adapter folder, or a full model
folder with its tokenizer) that any backend serves. Resumable checkpoints, and the finished artifact
with its outcome, live in ``$LADDER_HOME/training/<key>``, keyed by what determines the training: the
base model's file hashes, the formatted data, settings, seed, and where it runs. An interrupted
assessment resumes the training; a repeated one reuses the artifact without loading any weights. The
run folder gets its own copy (``<run>/<rung>/adapter`` or ``/model``, hard links where possible).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import ladder
from ladder.backends.base import Artifact
from ladder.cache import cache_key
from ladder.errors import LadderError, MissingDependency
from ladder.fileio import atomic_write_text, read_json
from ladder.paths import ladder_home
from ladder.rungs import RUNGS
from ladder.rungs.base import BuildContext, Candidate
from ladder.spec import FullRungSpec, LoraRungSpec, rung_name

RESULT = "result.json"  # written last, once the artifact is complete: its presence means "finished"


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


def base_model(ctx: BuildContext):
    """The task's base model folder and its loader (tokenizer only: weights load when training needs them)."""
    if "hf_model" not in ctx._shared:
        from ladder.backends.hf_model import HFModel
        from ladder.models import resolve_model

        ctx._shared["hf_model"] = HFModel(resolve_model(ctx.spec.model, ctx.task_dir))
    return ctx._shared["hf_model"]


def train_device(ctx: BuildContext) -> str:
    from ladder.backends.hf import pick_device

    return pick_device(ctx.device)


@dataclass(frozen=True)
class Trained:
    training: dict  # the outcome (steps, curve, cost...) as the record keeps it
    artifact: Artifact  # in the training store
    work: Path  # the store folder: checkpoints, artifact, result.json
    train_examples: int
    trainable_params: int | None
    reused: bool  # a finished training found in the store: no weights were loaded


def train_rung(rung: LoraRungSpec | FullRungSpec, ctx: BuildContext) -> Trained:
    """Train (or resume, or reuse) the rung; the artifact is saved in the store.

    Under torchrun every rank calls this; the loop shares the work and rank 0 writes checkpoints and the
    artifact.
    """
    import torch

    from ladder.models import content_identity, model_identity
    from ladder.rungs.train import TrainConfig, distributed, encode_examples, outcome_dict, train_loop

    name = rung_name(rung)
    spec = ctx.spec
    hf = base_model(ctx)
    device = train_device(ctx)
    formatter = hf.formatter(spec.prompt.format)
    zero_shot = Candidate(name, rung.type, spec.prompt.instruction, spec.prompt.input_template)

    def pairs(examples):
        out = []
        for ex in examples:
            messages = zero_shot.messages(ex.input)
            out.append((formatter.prompt(messages), formatter.completion(messages, ex.target)))
        return out

    train_pairs, dev_pairs = pairs(ctx.train), pairs(ctx.dev)
    max_len = rung.train.max_seq_len
    train_set, truncated = encode_examples(train_pairs, hf.encode, hf.encode_continuation, max_len)
    if train_set and truncated == len(train_set):
        shortest = min(len(hf.encode(p)) + len(hf.encode_continuation(a)) for p, a in train_pairs)
        raise LadderError(f"rungs[{name}].train.max_seq_len: {max_len} is shorter than every training example "
                          f"(the shortest, instruction + input + answer, is {shortest} tokens)")
    dev_set, _ = encode_examples(dev_pairs, hf.encode, hf.encode_continuation, max_len)
    key = cache_key(
        {
            "ladder": ladder.__version__,
            "base": content_identity(model_identity(hf.ref)),
            # CUDA trains under bf16 autocast, the CPU in fp32: not the same weights
            "device": device.split(":")[0],
            "torch": torch.__version__.split("+")[0],
            "train": train_pairs,
            "dev": dev_pairs,
            "rung": rung.model_dump(mode="json"),
            "seed": spec.seed,
        }
    )
    work = ladder_home() / "training" / key[:32]
    finished = _finished(work)
    if finished is not None:
        return finished
    torch.manual_seed(spec.seed)  # the adapter's initial weights depend on it: same seed, same training
    quantized = isinstance(rung, LoraRungSpec) and rung.quantize == "4bit"
    if quantized:
        from ladder.backends.hf_model import load_4bit
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(load_4bit(hf.ref.path, device, f"rung {name!r}"),
                                                use_gradient_checkpointing=False)
    else:
        # fp32 master weights on CUDA too (the loop runs the forward pass under bf16 autocast there)
        model = hf.load(torch.float32, device)
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
    metric = _dev_metric(rung, ctx, zero_shot, formatter, hf, device) if rung.train.early_stopping == "dev_metric" else None
    on_step = (lambda state: ctx.on_train_step(name, state)) if ctx.on_train_step else None
    config = TrainConfig(rung.train, spec.seed, name, work, hf.pad_id, truncated=truncated, dev_metric=metric,
                         on_step=on_step)
    outcome = train_loop(model, train_set, dev_set, config)
    trainable = sum(p.numel() for p in model.parameters()) if isinstance(rung, FullRungSpec) else None
    result = {**outcome_dict(outcome), "train_examples": len(train_set), "trainable_params": trainable}
    if distributed()[0] != 0:  # rank 0 saves; the others only trained
        return Trained(result, Artifact("model", work, "", 0), work, len(train_set), trainable, False)
    artifact = _save_artifact(model, rung, hf, work)
    atomic_write_text(work / RESULT, json.dumps({"training": result, "artifact": _artifact_json(artifact)}, indent=1))
    return Trained(result, artifact, work, len(train_set), trainable, False)


def _artifact_json(artifact: Artifact) -> dict:
    return {"kind": artifact.kind, "folder": artifact.path.name, "sha256": artifact.sha256, "bytes": artifact.bytes,
            "rank": artifact.rank, "quantized": artifact.quantized}


def _finished(work: Path) -> Trained | None:
    """A finished training in the store, if there is one whose artifact is still whole."""
    if not (work / RESULT).is_file():
        return None
    saved = read_json(work / RESULT, "finished training")
    info = saved["artifact"]
    folder = work / info["folder"]
    if not folder.is_dir():
        return None
    artifact = Artifact(info["kind"], folder, info["sha256"], info["bytes"], info["rank"], info["quantized"])
    training = saved["training"]
    return Trained(training, artifact, work, training["train_examples"], training["trainable_params"], True)


def _save_artifact(model, rung, hf, work: Path) -> Artifact:
    """The trained weights as a folder any backend loads: the adapter (LoRA), or the model with its
    tokenizer (full), written beside the checkpoints and swapped in whole."""
    lora = isinstance(rung, LoraRungSpec)
    folder = work / ("adapter" if lora else "model")
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    if lora:
        _canonical_adapter_config(tmp)
    else:
        hf.tokenizer.save_pretrained(tmp)
    digest, size = _dir_digest(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return Artifact("adapter" if lora else "model", folder, digest, size, rung.r if lora else None,
                    lora and rung.quantize != "none")


def _copy_into(source: Path, dest: Path) -> None:
    """The run folder's own copy of an artifact: hard links where the file system allows, else copies."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, copy_function=_link_or_copy)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _dev_metric(rung, ctx: BuildContext, candidate: Candidate, formatter, hf, device: str):
    """model -> the task's target metric on (the first metric_examples of) dev, measured the way the
    evaluation measures it (same eval step and scorer, the transformers backend over the weights in
    memory), mid-training; nothing is cached. Under torchrun every rank measures it on identical weights,
    so all stop together."""
    from ladder.backends.hf import TransformersBackend
    from ladder.cache import ResultCache
    from ladder.evaluate import run_eval
    from ladder.scoring.metrics import scorers

    spec = ctx.spec
    scorer = scorers(spec)[spec.target.metric]
    examples = ctx.dev[: rung.train.metric_examples] if rung.train.metric_examples else ctx.dev
    if not examples:
        raise LadderError(f"rung {rung_name(rung)!r}: early_stopping: dev_metric needs dev examples")
    uncached = ResultCache(ladder_home() / "results", enabled=False)
    measuring = TransformersBackend(hf.ref, device=device, dtype="float32", batch_size=spec.generation.batch_size, hf=hf)

    def measure(model) -> float:
        backend = measuring.over_model(model)
        outputs = run_eval(candidate, examples, backend, formatter, spec, uncached).outputs
        return sum(scorer.score(o.output, ex.references) for o, ex in zip(outputs, examples)) / len(examples)

    return measure


def finetune(rung: LoraRungSpec | FullRungSpec, ctx: BuildContext) -> Candidate:
    name = rung_name(rung)
    spec = ctx.spec
    trained = train_rung(rung, ctx)
    artifact = trained.artifact
    if ctx.work_dir is not None:
        folder = ctx.work_dir / name / artifact.path.name
        _copy_into(artifact.path, folder)
        artifact = Artifact(artifact.kind, folder, artifact.sha256, artifact.bytes, artifact.rank, artifact.quantized)
    training = {
        **trained.training,
        "artifact": str(artifact.path),
        "artifact_bytes": artifact.bytes,
        "artifact_sha256": artifact.sha256,
        "checkpoint_dir": str(trained.work),
        "reused": trained.reused,
    }
    settings = rung.model_dump(mode="json", exclude={"type", "name"})
    return Candidate(name, rung.type, spec.prompt.instruction, spec.prompt.input_template, settings=settings,
                     artifact=artifact, training=training)


@RUNGS.register("lora")
def build_lora(rung: LoraRungSpec, ctx: BuildContext) -> Candidate:
    return finetune(rung, ctx)


@RUNGS.register("full")
def build_full(rung: FullRungSpec, ctx: BuildContext) -> Candidate:
    return finetune(rung, ctx)
