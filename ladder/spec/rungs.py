"""The rungs a task may climb: each kind's settings model and ``RUNG_KINDS``, the one table of what each kind is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    Field,
)

from ladder.spec.base import Strict


class PromptRungSpec(Strict):
    """Zero-shot: instruction + input."""

    type: Literal["prompt"] = Field(description="The rung's kind.")
    name: str | None = Field(
        default=None, description="A distinct name for a variant of this kind (default: the kind's name)."
    )


class FewShotRungSpec(Strict):
    """k demonstrations from the train split as prior chat turns."""

    type: Literal["fewshot"] = Field(description="The rung's kind.")
    name: str | None = Field(
        default=None, description="A distinct name for a variant of this kind (default: the kind's name)."
    )
    k: int = Field(default=8, ge=1, le=256, description="Demonstrations per prompt.")
    selection: Literal["random", "stratified", "similar"] | None = Field(
        default=None,
        description="`stratified` balances demonstrations over labels (label outputs); `similar` picks the "
        "training examples nearest to each input (task embedder). Default: stratified for label outputs, "
        "random otherwise.",
    )


class RagRungSpec(Strict):
    """Retrieved corpus passages placed in the prompt under a token budget (optionally with demonstrations)."""

    type: Literal["rag"] = Field(description="The rung's kind.")
    name: str | None = Field(
        default=None, description="A distinct name for a variant of this kind (default: the kind's name)."
    )
    top_k: int = Field(default=4, ge=1, le=100, description="Chunks retrieved per input.")
    mode: Literal["dense", "lexical", "hybrid"] = Field(
        default="hybrid", description="dense: embedder + faiss; lexical: BM25; hybrid: reciprocal-rank fusion of both."
    )
    context_tokens: int = Field(default=512, ge=16, description="Budget for retrieved passages, in model tokens.")
    fewshot_k: int = Field(default=0, ge=0, le=256, description="Demonstrations from train, as in the fewshot rung.")
    selection: Literal["random", "stratified", "similar"] = Field(
        default="random",
        description="How the demonstrations shown with the passages are chosen (random | stratified | similar).",
    )


class TrainSpec(Strict):
    """Settings of the one training loop shared by the lora and full rungs."""

    epochs: float = Field(default=1.0, gt=0, description="Passes over the train split (ignored when max_steps is set).")
    max_steps: int | None = Field(default=None, ge=1, description="Optimizer steps; overrides epochs.")
    learning_rate: float = Field(
        default=2e-4, gt=0, description="Peak learning rate (AdamW; linear warm-up, then linear decay)."
    )
    warmup_ratio: float = Field(
        default=0.05, ge=0, lt=1, description="Linear warm-up share of the steps, then linear decay."
    )
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay.")
    batch_size: int = Field(
        default=8, ge=1, description="Examples per optimizer step (over all processes under torchrun)."
    )
    grad_accum: int = Field(default=1, ge=1, description="Micro-batches per optimizer step.")
    max_seq_len: int = Field(default=256, ge=8, description="Longer examples lose prompt tokens from the left.")
    eval_every: int = Field(default=25, ge=1, description="Steps between dev evaluations (early stopping).")
    early_stopping: Literal["dev_loss", "dev_metric"] = Field(
        default="dev_loss",
        description="What each dev evaluation decides on: the answer-token loss (cheap), or the task's target "
        "metric on the model's dev outputs (generation or label scoring, like the evaluation; slower). The "
        "weights of the best evaluation are kept.",
    )
    metric_examples: int | None = Field(
        default=None, ge=1, description="dev_metric: measure it on the first N dev examples (all when unset)."
    )
    patience: int = Field(default=3, ge=1, description="Dev evaluations without improvement before stopping.")
    checkpoint_every: int = Field(default=25, ge=1, description="Steps between resumable checkpoints.")
    strategy: Literal["auto", "ddp", "fsdp"] = Field(
        default="auto",
        description="Under torchrun, how the processes share the work: `ddp` (each holds the whole model; "
        "DistributedDataParallel exchanges gradients in buckets during backward), `fsdp` (FSDP2: parameters, "
        "gradients and optimizer state sharded per transformer block). auto: fsdp for the full rung, ddp for "
        "adapters. One process: neither.",
    )
    cpu_offload: bool = Field(
        default=False,
        description="fsdp on CUDA: keep the sharded parameters, gradients and optimizer state in host memory "
        "between uses (the optimizer steps on the CPU). Ignored on a CPU.",
    )
    activation_checkpointing: bool = Field(
        default=False,
        description="Recompute each transformer block's activations in the backward pass instead of keeping "
        "them (less memory, ~1/3 more compute; rows no longer share a common prompt prefix).",
    )


# How a training runs, not what it learns: the same update whatever they are (up to the order of float sums), so
# they are not part of a training's identity (its store key), like the number of processes.
EXECUTION_SETTINGS = frozenset({"strategy", "cpu_offload", "activation_checkpointing"})


class AdapterSettings(Strict):
    """A LoRA adapter on the base model (peft) and the training loop's settings: the lora, distill and
    preference rungs."""

    r: int = Field(default=8, ge=1, description="LoRA rank.")
    alpha: int = Field(default=16, ge=1, description="LoRA scaling numerator (the update is scaled by alpha / r).")
    dropout: float = Field(default=0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        default="all-linear", description="Modules given adapters: all-linear, or a list of module names."
    )
    train: TrainSpec = Field(default=TrainSpec(), description="The training loop's settings.")


class ContinuedRungSpec(AdapterSettings):
    """Domain-adaptive (continued) pretraining: a LoRA adapter learns to predict every next token of the task's
    domain text (``data.domain_text``, else the corpus), with no prompt and no targets; evaluated zero-shot like
    every trained rung, and a start for a later lora rung (its ``init``): the domain, then the task."""

    type: Literal["continued"] = Field(description="The rung's kind.")
    name: str | None = Field(
        default=None, description="A distinct name for a variant of this kind (default: the kind's name)."
    )
    source: Literal["auto", "domain_text", "corpus"] = Field(
        default="auto",
        description="The text learnt: `domain_text` (data.domain_text), `corpus` (the rag corpus's documents), "
        "auto: domain_text when the task has one, else the corpus. Documents are joined, each ended by the "
        "tokenizer's end-of-text token, and cut into blocks of train.max_seq_len tokens.",
    )
    train: TrainSpec = Field(
        default=TrainSpec(epochs=3.0),
        description="The training loop's settings. Its dev loss is the zero-shot answer loss on the dev split's "
        "targets (as for every trained rung), so early stopping keeps what helps the task.",
    )


class LoraRungSpec(AdapterSettings):
    """LoRA adapters (peft) on the base model, trained on the train split."""

    type: Literal["lora"] = Field(description="The rung's kind.")
    name: str | None = Field(
        default=None, description="A distinct name for a variant of this kind (default: the kind's name)."
    )
    init: str | None = Field(
        default=None,
        description="Start from this continued rung's adapter (by name, listed before): the domain's text first, "
        "then the task's targets; the adapter keeps that rung's r, alpha and target modules. Default: a fresh "
        "adapter on the base model.",
    )
    quantize: Literal["none", "4bit"] = Field(
        default="none", description="`4bit`: QLoRA, the base model in 4-bit NF4 (needs CUDA and bitsandbytes)."
    )


class DistillRungSpec(AdapterSettings):
    """Context distillation: a teacher (a lower prompt rung of this task, or another model with that rung's
    prompt) answers the train inputs (and data.unlabeled); a LoRA student learns its answers on the zero-shot
    prompt, so calls no longer pay for the teacher's demonstrations or retrieved passages."""

    type: Literal["distill"] = Field(description="The rung's kind.")
    name: str | None = Field(
        default=None, description="A distinct name for a variant of this kind (default: the kind's name)."
    )
    teacher: str | None = Field(
        default=None,
        description="The rung whose answers are learnt, by name: a prompt, fewshot or rag rung listed "
        "before this one (default: the last of them).",
    )
    teacher_model: str | None = Field(
        default=None,
        description="Another model answers with the teacher rung's prompt: a registry alias or a local "
        "Hugging Face folder (served by transformers), instead of the task's model.",
    )
    teacher_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="Or an OpenAI-compatible endpoint (up to /v1) serving the teacher model.",
    )
    filter: Literal["none", "correct"] = Field(
        default="none",
        description="`none`: learn every teacher answer (context distillation proper). `correct`: where "
        "a target exists (train), keep only the teacher's answers the target metric scores as fully correct (1.0), "
        "which mixes in supervision from the targets; unlabeled inputs keep every answer.",
    )


class PreferenceRungSpec(AdapterSettings):
    """Preference tuning (DPO with a supervised term on the chosen answer, as in RPO): chosen = the target,
    rejected = the model's own wrong answer on the same train input (made by the rung below), or the pairs of
    data.preferences. The reference is the starting model, its log-probabilities computed once before training."""

    type: Literal["preference"] = Field(description="The rung's kind.")
    name: str | None = Field(
        default=None, description="A distinct name for a variant of this kind (default: the kind's name)."
    )
    negatives_from: str | None = Field(
        default=None,
        description="The rung whose wrong answers on train are the rejected ones, by name (default: the "
        "rung listed just before this one).",
    )
    init: str | None = Field(
        default=None,
        description="Start from this lora rung's adapter (by name), which is then also the reference; "
        "default: a fresh adapter on the base model.",
    )
    pairs_from: Literal["mistakes", "judge"] = Field(
        default="mistakes",
        description="mistakes: the target against a lower rung's wrong answer (or data.preferences); judge: RLAIF, "
        "`samples` answers per train input from the starting model, graded by a judge metric's judge against "
        "`principles`, the best against the worst where the judge separates them by `margin`.",
    )
    judge: str | None = Field(
        default=None,
        description="pairs_from judge: the judge metric (by name) whose judge grades the answers; default: the "
        "task's first judge metric.",
    )
    principles: list[str] = Field(
        default_factory=list,
        description="pairs_from judge: the written rules the judge grades by (default: the judge metric's rubric).",
    )
    samples: int = Field(default=4, ge=2, le=16, description="pairs_from judge: answers sampled per input.")
    temperature: float = Field(default=0.8, gt=0, le=2, description="pairs_from judge: the sampling temperature.")
    margin: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="pairs_from judge: the least score difference (on [0, 1]) between the best and the worst answer "
        "for a pair to be kept.",
    )
    beta: float = Field(default=0.1, gt=0, description="DPO's beta: how far from the reference the policy may move.")
    sft_weight: float = Field(
        default=1.0,
        ge=0,
        description="Weight of the chosen answer's mean token loss added to DPO's (RPO); 0 is plain "
        "DPO, which can lower the chosen answer's likelihood when the two answers share most tokens.",
    )
    train: TrainSpec = Field(
        default=TrainSpec(learning_rate=5e-5),
        description="The training loop's settings (a smaller learning rate by default).",
    )


class FullRungSpec(Strict):
    """All parameters trained (same loop, a smaller learning rate by default)."""

    type: Literal["full"] = Field(description="The rung's kind.")
    name: str | None = Field(
        default=None, description="A distinct name for a variant of this kind (default: the kind's name)."
    )
    train: TrainSpec = Field(
        default=TrainSpec(learning_rate=2e-5),
        description="The training loop's settings (a smaller learning rate by default).",
    )


@dataclass(frozen=True)
class RungKind:
    """What a rung kind is: where it stands on the ladder, its settings, what it changes and how it is served."""

    name: str
    settings: type[BaseModel]
    trained: bool  # its weights change: a training run, an artifact every backend serves
    adapter: bool  # trained as a LoRA adapter: one served engine hot-swaps them
    learns_from_rungs: bool  # it needs another rung's answers first (distill's teacher, preference's mistakes)


# The one table of rung kinds: the whole ladder, cheapest first. A task's rungs climb in this order (variants of
# one kind may repeat).
RUNG_KINDS: tuple[RungKind, ...] = (
    RungKind("prompt", PromptRungSpec, trained=False, adapter=False, learns_from_rungs=False),
    RungKind("fewshot", FewShotRungSpec, trained=False, adapter=False, learns_from_rungs=False),
    RungKind("rag", RagRungSpec, trained=False, adapter=False, learns_from_rungs=False),
    RungKind("distill", DistillRungSpec, trained=True, adapter=True, learns_from_rungs=True),
    RungKind("continued", ContinuedRungSpec, trained=True, adapter=True, learns_from_rungs=False),
    RungKind("lora", LoraRungSpec, trained=True, adapter=True, learns_from_rungs=False),
    RungKind("preference", PreferenceRungSpec, trained=True, adapter=True, learns_from_rungs=True),
    RungKind("full", FullRungSpec, trained=True, adapter=False, learns_from_rungs=False),
)
LADDER = tuple(kind.name for kind in RUNG_KINDS)
RUNG_SPECS: dict[str, type[BaseModel]] = {kind.name: kind.settings for kind in RUNG_KINDS}
PROMPT_RUNGS = tuple(kind.name for kind in RUNG_KINDS if not kind.trained)  # what a distill rung's teacher may be
TRAINED_RUNGS = tuple(kind.name for kind in RUNG_KINDS if kind.trained)
ADAPTER_RUNGS = tuple(kind.name for kind in RUNG_KINDS if kind.adapter)
LEARNING_FROM_RUNGS = tuple(kind.name for kind in RUNG_KINDS if kind.learns_from_rungs)
RungSpec = Annotated[
    Union[
        PromptRungSpec,
        FewShotRungSpec,
        RagRungSpec,
        DistillRungSpec,
        ContinuedRungSpec,
        LoraRungSpec,
        PreferenceRungSpec,
        FullRungSpec,
    ],
    Field(discriminator="type"),
]
TrainedRungSpec = Union[DistillRungSpec, ContinuedRungSpec, LoraRungSpec, PreferenceRungSpec, FullRungSpec]


def rung_name(rung: RungSpec | Any) -> str:
    """A rung's name: its ``name``, else its kind."""
    return str(rung.name or rung.type)
