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

import dataclasses
import hashlib
import itertools
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import ladder
from ladder.backends.base import Artifact, template_fingerprint
from ladder.data.splits import Example
from ladder.errors import LadderError, MissingDependency
from ladder.fileio import atomic_write_text, cache_key, read_json
from ladder.paths import ladder_home
from ladder.rungs.base import BuildContext, Candidate
from ladder.spec import (
    AdapterSettings,
    FullRungSpec,
    LoraRungSpec,
    TrainedRungSpec,
    rung_name,
)

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


@dataclass(frozen=True)
class Trained:
    training: dict  # the outcome (steps, curve, cost...) as the record keeps it
    artifact: Artifact  # in the training store
    work: Path  # the store folder: checkpoints, artifact, result.json
    train_examples: int
    trainable_params: int | None
    reused: bool  # a finished training found in the store: no weights were loaded


@dataclass
class TrainingData:
    """What a trained rung learns from, made by the rung: the objective's examples for train and dev, what
    they were made from (texts: part of the store key), and what the record keeps about them."""

    train: list
    dev: list
    key: object
    objective: object = None  # a train.Objective; None is the supervised answer loss
    truncated: int = 0
    data_s: float = 0.0  # time it took to make the data (a teacher's answers, the model's own mistakes)
    info: dict = field(default_factory=dict)  # kept in the record (teacher, pairs)
    init_adapter: Path | None = None  # start from this adapter instead of a fresh one


def zero_shot(rung, spec) -> Candidate:
    """How every trained rung is evaluated: instruction + input, no demonstrations."""
    return Candidate(rung_name(rung), rung.type, spec.prompt.instruction, spec.prompt.input_template)


def encode_supervised(rung, ctx: BuildContext, answers: list[tuple[Example, str]]) -> TrainingData:
    """(example, answer) pairs -> chat-templated prompt + answer token ids, for train; dev with its targets."""
    from ladder.rungs.train import encode_examples

    name = rung_name(rung)
    hf = ctx.base_model()
    formatter = hf.formatter(ctx.spec.prompt.format)
    candidate = zero_shot(rung, ctx.spec)

    def texts(pairs):
        out = []
        for ex, answer in pairs:
            messages = candidate.messages(ex.input)
            out.append((formatter.prompt(messages), formatter.completion(messages, answer)))
        return out

    train_pairs, dev_pairs = texts(answers), texts((ex, ex.target) for ex in ctx.dev)
    max_len = rung.train.max_seq_len
    train_set, truncated = encode_examples(train_pairs, hf.encode, hf.encode_continuation, max_len)
    if train_set and truncated == len(train_set):
        shortest = min(len(hf.encode(p)) + len(hf.encode_continuation(a)) for p, a in train_pairs)
        raise LadderError(
            f"rungs[{name}].train.max_seq_len: {max_len} is shorter than every training example "
            f"(the shortest, instruction + input + answer, is {shortest} tokens)"
        )
    dev_set, _ = encode_examples(dev_pairs, hf.encode, hf.encode_continuation, max_len)
    return TrainingData(train_set, dev_set, {"train": train_pairs, "dev": dev_pairs}, truncated=truncated)


def train_rung(rung: TrainedRungSpec, ctx: BuildContext, data: TrainingData | None = None) -> Trained:
    """Train (or resume, or reuse) the rung on ``data`` (default: the train split's targets, supervised);
    the artifact is saved in the store.

    Under torchrun every rank calls this; the loop shares the work and rank 0 writes checkpoints and the
    artifact.
    """
    import torch

    from ladder.rungs.train import (
        SUPERVISED,
        TrainConfig,
        distributed,
        outcome_dict,
        train_loop,
    )

    name = rung_name(rung)
    spec = ctx.spec
    hf = ctx.base_model()
    device = ctx.train_device()
    formatter = hf.formatter(spec.prompt.format)
    data = data or encode_supervised(rung, ctx, [(ex, ex.target) for ex in ctx.train])
    objective = data.objective or SUPERVISED
    key = cache_key(
        {
            "ladder": ladder.__version__,
            "base": hf.content_identity(),
            # CUDA trains under bf16 autocast, the CPU in fp32: not the same weights
            "device": device.split(":")[0],
            "torch": torch.__version__.split("+")[0],
            **({"train": data.key["train"], "dev": data.key["dev"]} if objective is SUPERVISED else {"data": data.key}),
            # (supervised from a fresh adapter keeps the keys it always had: earlier trainings stay reusable)
            **({} if objective is SUPERVISED else {"objective": objective.name}),
            **({"init": _dir_digest(data.init_adapter)[0]} if data.init_adapter else {}),
            "rung": rung.model_dump(mode="json"),
            "seed": spec.seed,
        }
    )
    work = ladder_home() / "training" / key[:32]
    finished = _finished(work)
    if finished is not None:
        return finished
    metric = _dev_metric(rung, ctx, hf, work) if rung.train.early_stopping == "dev_metric" else None
    torch.manual_seed(spec.seed)  # the adapter's initial weights depend on it: same seed, same training
    quantized = isinstance(rung, LoraRungSpec) and rung.quantize == "4bit"
    if quantized:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            hf.load_4bit(device, f"rung {name!r}"), use_gradient_checkpointing=False
        )
    else:
        # fp32 master weights on CUDA too (the loop runs the forward pass under bf16 autocast there)
        model = hf.load(torch.float32, device)
    if isinstance(rung, AdapterSettings):
        try:
            from peft import LoraConfig, PeftModel, get_peft_model
        except ImportError:
            raise MissingDependency(f"peft (for the {rung.type} rung)", "pip install peft") from None
        if data.init_adapter is not None:
            model = PeftModel.from_pretrained(model, str(data.init_adapter), is_trainable=True)
        else:
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
    prepare = getattr(objective, "prepare", None)
    if prepare is not None:  # e.g. the reference's log-probabilities, from the starting weights
        for entry, values in prepare(model, data.train, data.dev, hf.pad_id, device).items():
            data.info[entry] = {**data.info.get(entry, {}), **values}
    on_step = (lambda state: ctx.on_train_step(name, state)) if ctx.on_train_step else None
    config = TrainConfig(
        rung.train,
        spec.seed,
        name,
        work,
        hf.pad_id,
        objective=objective,
        truncated=data.truncated,
        dev_metric=metric,
        on_step=on_step,
    )
    outcome = train_loop(model, data.train, data.dev, config)
    trainable = sum(p.numel() for p in model.parameters()) if isinstance(rung, FullRungSpec) else None
    result = {
        **outcome_dict(outcome),
        "train_examples": len(data.train),
        "trainable_params": trainable,
        "objective": objective.name,
        "data_s": data.data_s,
        "template_sha256": template_fingerprint(formatter),
        **data.info,
    }
    if distributed()[0] != 0:  # rank 0 saves; the others only trained
        return Trained(result, Artifact("model", work, "", 0), work, len(data.train), trainable, False)
    artifact = _save_artifact(model, rung, hf, work)
    atomic_write_text(work / RESULT, json.dumps({"training": result, "artifact": _artifact_json(artifact)}, indent=1))
    return Trained(result, artifact, work, len(data.train), trainable, False)


def _artifact_json(artifact: Artifact) -> dict:
    return {
        "kind": artifact.kind,
        "folder": artifact.path.name,
        "sha256": artifact.sha256,
        "bytes": artifact.bytes,
        "rank": artifact.rank,
        "quantized": artifact.quantized,
    }


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
    tokenizer (full), written in ``work`` and swapped in whole."""
    lora = isinstance(rung, AdapterSettings)
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
    rank = _adapter_rank(folder) if lora else None
    return Artifact(
        "adapter" if lora else "model", folder, digest, size, rank, lora and getattr(rung, "quantize", "none") != "none"
    )


def _adapter_rank(folder: Path) -> int:
    """The saved adapter's rank (a preference rung started from a lora rung's adapter keeps that one's)."""
    return int(json.loads((folder / "adapter_config.json").read_text())["r"])


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


def _dev_metric(rung, ctx: BuildContext, hf, work: Path):
    """model -> the task's target metric on (the first metric_examples of) dev, mid-training: the weights are saved
    as an artifact (beside the checkpoints, removed once measured) and measured by the assessment's own eval step,
    backend and scorer (``ctx.measure_dev``), so what early stopping keeps is what the evaluation will see, on
    transformers, vllm or an OpenAI-compatible server alike. Under torchrun every rank measures identical weights
    (each its own copy), so all stop together."""
    from ladder.rungs.train import distributed

    if ctx.measure is None:  # before any weights load: say so now, not at the first evaluation
        ctx.measure_dev(zero_shot(rung, ctx.spec), [])
    examples = ctx.dev[: rung.train.metric_examples] if rung.train.metric_examples else ctx.dev
    if not examples:
        raise LadderError(f"rung {rung_name(rung)!r}: early_stopping: dev_metric needs dev examples")
    candidate = zero_shot(rung, ctx.spec)
    evaluations = itertools.count(1)
    rank = distributed()[0]

    def measure(model) -> float:
        folder = work / "dev-eval" / f"rank{rank}-{next(evaluations)}"
        artifact = _save_artifact(model, rung, hf, folder)
        try:
            return ctx.measure_dev(dataclasses.replace(candidate, artifact=artifact), examples)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return measure


def finetune(rung: TrainedRungSpec, ctx: BuildContext, data: TrainingData | None = None) -> Candidate:
    """Train the rung (on ``data``, default the train split's targets), copy its artifact into the run folder,
    and return the zero-shot candidate that serves it."""
    name = rung_name(rung)
    spec = ctx.spec
    trained = train_rung(rung, ctx, data)
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
    return Candidate(
        name,
        rung.type,
        spec.prompt.instruction,
        spec.prompt.input_template,
        settings=settings,
        artifact=artifact,
        training=training,
    )


def build_lora(rung: LoraRungSpec, ctx: BuildContext) -> Candidate:
    return finetune(rung, ctx)


def build_full(rung: FullRungSpec, ctx: BuildContext) -> Candidate:
    return finetune(rung, ctx)
