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
import itertools
import shutil
from dataclasses import dataclass
from pathlib import Path

import ladder
from ladder.backends.base import Artifact, template_fingerprint
from ladder.data.splits import Example
from ladder.errors import LadderError
from ladder.extras import require
from ladder.fileio import cache_key
from ladder.paths import ladder_home
from ladder.record import PairsRecord, TeacherRecord, TrainingRecord
from ladder.rungs.base import BuildContext, Candidate
from ladder.rungs.store import copy_into, dir_digest, load_finished, save_artifact, save_finished
from ladder.spec import (
    EXECUTION_SETTINGS,
    AdapterSettings,
    FullRungSpec,
    LoraRungSpec,
    TrainedRungSpec,
    rung_name,
)


@dataclass(frozen=True)
class Trained:
    training: TrainingRecord  # the outcome (steps, curve, cost...) as the record keeps it (artifact in the store)
    artifact: Artifact  # in the training store
    work: Path  # the store folder: checkpoints, artifact, result.json
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
    teacher: TeacherRecord | None = None  # distill: where its answers came from (kept in the record)
    pairs: PairsRecord | None = None  # preference: where its pairs came from
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
    from importlib.metadata import version

    name = rung_name(rung)
    spec = ctx.spec
    hf = ctx.base_model()
    device = ctx.train_device()
    formatter = hf.formatter(spec.prompt.format)
    data = data or encode_supervised(rung, ctx, [(ex, ex.target) for ex in ctx.train])
    supervised = data.objective is None or data.objective.name == "supervised"
    key = cache_key(
        {
            "ladder": ladder.__version__,
            "base": hf.content_identity(),
            # CUDA trains under bf16 autocast, the CPU in fp32: not the same weights
            "device": device.split(":")[0],
            "torch": version("torch").split("+")[0],
            **({"train": data.key["train"], "dev": data.key["dev"]} if supervised else {"data": data.key}),
            # (supervised from a fresh adapter keeps the keys it always had: earlier trainings stay reusable)
            **({} if supervised else {"objective": data.objective.name}),
            **({"init": dir_digest(data.init_adapter)[0]} if data.init_adapter else {}),
            "rung": rung.model_dump(mode="json", exclude={"train": set(EXECUTION_SETTINGS)}),
            "seed": spec.seed,
        }
    )
    work = ladder_home() / "training" / key[:32]
    finished = load_finished(work)
    if finished is not None:  # reused: nothing loaded, torch not even imported
        return Trained(finished[0], finished[1], work, True)
    require(["local"], f"training the {name} rung")
    import torch

    from ladder.rungs.train import SUPERVISED, TrainConfig, distributed, train_loop
    from ladder.rungs.train.parallel import gathered

    objective = data.objective or SUPERVISED
    metric = _dev_metric(rung, ctx, hf, work) if rung.train.early_stopping == "dev_metric" else None
    torch.manual_seed(spec.seed)  # the adapter's initial weights depend on it: same seed, same training
    quantized = isinstance(rung, LoraRungSpec) and rung.quantize == "4bit"
    if quantized:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            hf.load_4bit(device, f"rung {name!r}"), use_gradient_checkpointing=False
        )
    else:
        # fp32 master weights on CUDA too (the forward pass runs in bf16 there). Sharded by FSDP2 on CUDA, the
        # whole model is loaded in host memory and each rank's shards moved to its GPU.
        sharded_on_gpu = device.startswith("cuda") and _strategy(rung) == "fsdp"
        model = hf.load(torch.float32, "cpu" if sharded_on_gpu else device)
    if isinstance(rung, AdapterSettings):
        from peft import LoraConfig, PeftModel, get_peft_model

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
            setattr(data, entry, getattr(data, entry).model_copy(update=values))  # e.g. pairs.dev_reference_logratio
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
        device=device,
    )
    outcome = train_loop(model, data.train, data.dev, config)
    whole = gathered(model)  # sharded: the whole weights, on rank 0 (every rank takes part)
    trainable = sum(p.numel() for p in model.parameters()) if isinstance(rung, FullRungSpec) else None
    record = TrainingRecord(
        **dict(outcome),
        train_examples=len(data.train),
        trainable_params=trainable,
        objective=objective.name,
        data_s=data.data_s,
        template_sha256=template_fingerprint(formatter),
        teacher=data.teacher,
        pairs=data.pairs,
        artifact="",
        artifact_bytes=0,
        artifact_sha256="",
        checkpoint_dir=str(work),
    )
    if distributed()[0] != 0:  # rank 0 saves; the others only trained
        return Trained(record, Artifact("model", work, "", 0), work, False)
    artifact = save_artifact(model, rung, hf, work, whole)
    record = record.model_copy(
        update={"artifact": str(artifact.path), "artifact_bytes": artifact.bytes, "artifact_sha256": artifact.sha256}
    )
    save_finished(work, record, artifact)
    return Trained(record, artifact, work, False)


def _strategy(rung: TrainedRungSpec) -> str:
    """How this training shares the work over torchrun's processes (none, ddp or fsdp)."""
    from ladder.rungs.train.parallel import resolve_strategy

    return resolve_strategy(rung.train.strategy, isinstance(rung, AdapterSettings))


def _dev_metric(rung, ctx: BuildContext, hf, work: Path):
    """model -> the task's target metric on (the first metric_examples of) dev, mid-training: the weights are saved
    as an artifact (beside the checkpoints, removed once measured) and measured by the assessment's own eval step,
    backend and scorer (``ctx.measure_dev``), so what early stopping keeps is what the evaluation will see, on
    transformers, vllm or an OpenAI-compatible server alike. Under torchrun every rank measures identical weights
    (each its own copy), so all stop together; sharded (FSDP2), rank 0 measures the gathered weights and sends the
    others its score."""
    from ladder.rungs.train import distributed
    from ladder.rungs.train.parallel import gathered

    if ctx.measure is None:  # before any weights load: say so now, not at the first evaluation
        ctx.measure_dev(zero_shot(rung, ctx.spec), [])
    examples = ctx.dev[: rung.train.metric_examples] if rung.train.metric_examples else ctx.dev
    if not examples:
        raise LadderError(f"rung {rung_name(rung)!r}: early_stopping: dev_metric needs dev examples")
    candidate = zero_shot(rung, ctx.spec)
    evaluations = itertools.count(1)
    rank = distributed()[0]

    def measure_weights(model, whole: dict | None) -> float:
        folder = work / "dev-eval" / f"rank{rank}-{next(evaluations)}"
        artifact = save_artifact(model, rung, hf, folder, whole)
        try:
            return ctx.measure_dev(dataclasses.replace(candidate, artifact=artifact), examples)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def measure(model) -> float:
        whole = gathered(model)
        if whole is None:
            return measure_weights(model, None)
        # sharded: rank 0 measures the gathered weights and tells the others
        import torch.distributed as dist

        score = [measure_weights(model, whole) if rank == 0 else None]
        dist.broadcast_object_list(score, src=0)
        return float(score[0])

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
        copy_into(artifact.path, folder)
        artifact = Artifact(artifact.kind, folder, artifact.sha256, artifact.bytes, artifact.rank, artifact.quantized)
    training = trained.training.model_copy(
        update={"artifact": str(artifact.path), "checkpoint_dir": str(trained.work), "reused": trained.reused}
    )
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
    """The train split's targets, from a fresh adapter or (``init``) a continued rung's."""
    if rung.init is None:
        return finetune(rung, ctx)
    data = encode_supervised(rung, ctx, [(ex, ex.target) for ex in ctx.train])
    start = ctx.candidate(rung.init)
    assert start.artifact is not None and start.training is not None  # a continued rung (checked at load) trains
    candidate = finetune(rung, ctx, dataclasses.replace(data, init_adapter=start.artifact.path))
    return counting_start(candidate, start.training)


def counting_start(candidate: Candidate, start: TrainingRecord) -> Candidate:
    """``candidate`` with making the adapter it started from (``start``: its training and the data that training
    made) counted in its adaptation (``data_s``), as a teacher's answers are: a lora rung from a continued one, a
    preference rung from a lora one."""
    assert candidate.training is not None
    made = candidate.training.data_s + start.wall_s + start.data_s
    return dataclasses.replace(candidate, training=candidate.training.model_copy(update={"data_s": made}))


def build_full(rung: FullRungSpec, ctx: BuildContext) -> Candidate:
    return finetune(rung, ctx)
