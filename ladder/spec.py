"""The task spec: one flat ``task.yaml`` per task folder, validated by one pydantic model.

Every default lives here (never in ``.get(key, default)`` elsewhere); unknown keys are errors
(``extra="forbid"``), and all problems are reported at once as ``file: field.path: message`` lines.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ladder.errors import LadderError, ValidationFailed

DEFAULT_MODEL = "smollm2-135m-instruct"

# The whole ladder, cheapest first. A task's rungs must climb in this order (variants of one kind may
# repeat); RUNG_SPECS below holds the settings model of each kind.
LADDER = ("prompt", "fewshot", "rag", "distill", "lora", "preference", "full")
DEFAULT_EMBEDDER = "all-minilm-l6-v2"

BUILTIN_METRICS = ("accuracy", "exact_match", "token_f1", "json_valid", "json_field_f1", "items_f1", "rouge_l", "chrf",
                   "numeric_match")
JSON_METRICS = ("json_valid", "json_field_f1")

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
TEMPLATE_FIELDS = ("input",)


class Strict(BaseModel):
    """The one base of every strict model (task files, records, baselines, suites): an unknown field is an error."""

    model_config = ConfigDict(extra="forbid")


class DataSpec(Strict):
    """Data splits (JSONL or CSV, paths relative to the task file) and the fields to read."""

    train: str = Field(description="Training split: the only labelled data a rung may learn from.")
    dev: str = Field(description="Development split: used for decisions (climb or stop).")
    test: str = Field(description="Held-out split: read only by the eval step.")
    input_field: str = "input"
    target_field: str = "target"
    id_field: str | None = Field(
        default=None, description="Field holding a stable example id; without it the id is a hash of the input."
    )
    alternatives_field: str | None = Field(
        default=None, description="Field holding a list of other acceptable answers (exact_match and token_f1 take the best)."
    )
    doc_id_field: str | None = Field(
        default=None, description="Field naming the corpus document that answers the example: retrieval is scored on it."
    )
    allow_duplicate_inputs: bool = Field(
        default=False,
        description="A test input equal (after normalization) to a train or dev input, or a near-duplicate of one, "
        "is an error; true turns it into a warning where duplicates are legitimate.",
    )
    near_duplicate_jaccard: float = Field(
        default=0.8, gt=0, le=1,
        description="Two inputs whose word-pair sets are at least this similar (Jaccard) are near-duplicates.",
    )
    allow_conflicting_targets: bool = Field(
        default=False,
        description="The same input (after normalization) with different targets is an error; true makes it a warning.",
    )
    unlabeled: str | None = Field(
        default=None, description="Inputs without targets (JSONL or CSV: input_field, and id_field where given): the distill "
        "rung's teacher answers them too, so the student learns from more than the train split.",
    )
    preferences: str | None = Field(
        default=None, description="Preference pairs for the preference rung (JSONL or CSV): input_field, `chosen` and "
        "`rejected` answers; used instead of pairs made from the model's own mistakes on train.",
    )
    reserve: str | None = Field(
        default=None, description="Labelled examples held back for decisions only (JSONL or CSV, the splits' fields): "
        "`ladder resolve` evaluates them, after any dev examples a run's --limit left out, until an inconclusive "
        "rung is decided. No rung learns from them; none may repeat a train, dev or test input.",
    )


class CorpusSpec(Strict):
    """A knowledge corpus for the rag rung: a JSONL of {id, text} documents or a folder of .md/.txt files."""

    path: str = Field(description="JSONL file or folder, relative to the task file.")
    id_field: str = "id"
    text_field: str = "text"
    chunk_size: int = Field(default=128, ge=8, description="Chunk length in embedder tokens (word pieces).")
    chunk_overlap: int = Field(default=16, ge=0, description="Tokens shared by consecutive chunks of a document.")
    index: Literal["auto", "exact", "ivf", "hnsw"] = Field(
        default="auto", description="`auto`: exact inner-product search below `approx_threshold` chunks, HNSW above."
    )
    approx_threshold: int = Field(default=50_000, ge=1)
    ivf_nprobe: int = Field(default=16, ge=1, description="IVF: clusters searched per query.")
    hnsw_ef_search: int = Field(default=64, ge=1, description="HNSW: candidate list size while searching.")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> "CorpusSpec":
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size ({self.chunk_size})")
        return self


class OutputSpec(Strict):
    kind: Literal["label", "text", "json"]
    labels: list[str] | None = Field(default=None, description="The label set; required for kind: label.")

    @model_validator(mode="after")
    def _labels_match_kind(self) -> "OutputSpec":
        if self.kind == "label":
            if not self.labels or len(self.labels) < 2:
                raise ValueError("kind 'label' needs a `labels` list with at least two labels")
            dupes = sorted({x for x in self.labels if self.labels.count(x) > 1})
            if dupes:
                raise ValueError(f"duplicate labels: {', '.join(dupes)}")
            if any(not x.strip() for x in self.labels):
                raise ValueError("labels must be non-empty strings")
        elif self.labels is not None:
            raise ValueError(f"`labels` applies only to kind 'label', not {self.kind!r}")
        return self


class RegexExtract(Strict):
    regex: str = Field(description="The first match is scored (group 1 when the pattern has a group).")

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        from ladder.metrics import compiles

        return compiles(value)


class MetricSpec(Strict):
    """One metric: a name alone (`accuracy`), or a mapping with options and an extraction step."""

    metric: str = Field(
        description="A registered metric: built in (" + ", ".join(BUILTIN_METRICS) + ") or added by an installed "
        "package (entry-point group `ladder.metrics`).",
    )
    name: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$",
        description="What the record, target.metric and reports call it (default: the metric, with _lenient when "
        "it has an extract step).",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="The metric's own options (see README).")
    extract: Literal["first_label", "first_json", "first_number"] | RegexExtract | None = Field(
        default=None,
        description="Lenient scoring: take the first label mentioned, the first JSON object/array, the first number, "
        "or a regex's first match from the output before scoring (the output as it is when nothing is found).",
    )

    @model_validator(mode="after")
    def _default_name(self) -> "MetricSpec":
        if self.name is None:
            self.name = self.metric + ("_lenient" if self.extract is not None else "")
        return self


def _metric_entry(value: object) -> object:
    return {"metric": value} if isinstance(value, str) else value


MetricEntry = Annotated[MetricSpec, BeforeValidator(_metric_entry, json_schema_input_type=Union[str, MetricSpec])]


class TargetSpec(Strict):
    metric: str
    threshold: float = Field(ge=0.0, le=1.0)


class PromptSpec(Strict):
    instruction: str = Field(description="Task instruction; sent as the system message in chat format.")
    input_template: str = Field(
        default="{input}",
        description="User message; `{input}` is replaced by the example's input. Data is never passed "
        "through str.format, so braces in data are safe.",
    )
    format: Literal["chat", "plain"] = Field(
        default="chat", description="`chat` uses the model's chat template; `plain` is for models without one."
    )

    @field_validator("input_template")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        names = PLACEHOLDER.findall(value)
        unknown = sorted({n for n in names if n not in TEMPLATE_FIELDS})
        if unknown:
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}; known: {{input}}")
        if "input" not in names:
            raise ValueError("must contain {input}")
        return value


class PromptRungSpec(Strict):
    """Zero-shot: instruction + input."""

    type: Literal["prompt"]
    name: str | None = None


class FewShotRungSpec(Strict):
    """k demonstrations from the train split as prior chat turns."""

    type: Literal["fewshot"]
    name: str | None = None
    k: int = Field(default=8, ge=1, le=256)
    selection: Literal["random", "stratified", "similar"] | None = Field(
        default=None,
        description="`stratified` balances demonstrations over labels (label outputs); `similar` picks the "
        "training examples nearest to each input (task embedder). Default: stratified for label outputs, "
        "random otherwise.",
    )


class RagRungSpec(Strict):
    """Retrieved corpus passages placed in the prompt under a token budget (optionally with demonstrations)."""

    type: Literal["rag"]
    name: str | None = None
    top_k: int = Field(default=4, ge=1, le=100)
    mode: Literal["dense", "lexical", "hybrid"] = Field(
        default="hybrid", description="dense: embedder + faiss; lexical: BM25; hybrid: reciprocal-rank fusion of both."
    )
    context_tokens: int = Field(default=512, ge=16, description="Budget for retrieved passages, in model tokens.")
    fewshot_k: int = Field(default=0, ge=0, le=256, description="Demonstrations from train, as in the fewshot rung.")
    selection: Literal["random", "stratified", "similar"] = "random"


class TrainSpec(Strict):
    """Settings of the one training loop shared by the lora and full rungs."""

    epochs: float = Field(default=1.0, gt=0, description="Passes over the train split (ignored when max_steps is set).")
    max_steps: int | None = Field(default=None, ge=1, description="Optimizer steps; overrides epochs.")
    learning_rate: float = Field(default=2e-4, gt=0)
    warmup_ratio: float = Field(default=0.05, ge=0, lt=1, description="Linear warm-up share of the steps, then linear decay.")
    weight_decay: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=8, ge=1)
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


class AdapterSettings(Strict):
    """A LoRA adapter on the base model (peft) and the training loop's settings: the lora, distill and
    preference rungs."""

    r: int = Field(default=8, ge=1)
    alpha: int = Field(default=16, ge=1)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    train: TrainSpec = TrainSpec()


class LoraRungSpec(AdapterSettings):
    """LoRA adapters (peft) on the base model, trained on the train split."""

    type: Literal["lora"]
    name: str | None = None
    quantize: Literal["none", "4bit"] = Field(
        default="none", description="`4bit`: QLoRA, the base model in 4-bit NF4 (needs CUDA and bitsandbytes)."
    )


class DistillRungSpec(AdapterSettings):
    """Context distillation: a teacher (a lower prompt rung of this task, or another model with that rung's
    prompt) answers the train inputs (and data.unlabeled); a LoRA student learns its answers on the zero-shot
    prompt, so calls no longer pay for the teacher's demonstrations or retrieved passages."""

    type: Literal["distill"]
    name: str | None = None
    teacher: str | None = Field(
        default=None, description="The rung whose answers are learnt, by name: a prompt, fewshot or rag rung listed "
        "before this one (default: the last of them).",
    )
    teacher_model: str | None = Field(
        default=None, description="Another model answers with the teacher rung's prompt: a registry alias or a local "
        "Hugging Face folder (served by transformers), instead of the task's model.",
    )
    teacher_url: str | None = Field(
        default=None, pattern=r"^https?://",
        description="Or an OpenAI-compatible endpoint (up to /v1) serving the teacher model.",
    )
    filter: Literal["none", "correct"] = Field(
        default="none", description="`none`: learn every teacher answer (context distillation proper). `correct`: where "
        "a target exists (train), keep only the teacher's answers the target metric scores as fully correct (1.0), "
        "which mixes in supervision from the targets; unlabeled inputs keep every answer.",
    )


class PreferenceRungSpec(AdapterSettings):
    """Preference tuning (DPO with a supervised term on the chosen answer, as in RPO): chosen = the target,
    rejected = the model's own wrong answer on the same train input (made by the rung below), or the pairs of
    data.preferences. The reference is the starting model, its log-probabilities computed once before training."""

    type: Literal["preference"]
    name: str | None = None
    negatives_from: str | None = Field(
        default=None, description="The rung whose wrong answers on train are the rejected ones, by name (default: the "
        "rung listed just before this one).",
    )
    init: str | None = Field(
        default=None, description="Start from this lora rung's adapter (by name), which is then also the reference; "
        "default: a fresh adapter on the base model.",
    )
    beta: float = Field(default=0.1, gt=0, description="DPO's beta: how far from the reference the policy may move.")
    sft_weight: float = Field(
        default=1.0, ge=0, description="Weight of the chosen answer's mean token loss added to DPO's (RPO); 0 is plain "
        "DPO, which can lower the chosen answer's likelihood when the two answers share most tokens.",
    )
    train: TrainSpec = TrainSpec(learning_rate=5e-5)


class FullRungSpec(Strict):
    """All parameters trained (same loop, a smaller learning rate by default)."""

    type: Literal["full"]
    name: str | None = None
    train: TrainSpec = TrainSpec(learning_rate=2e-5)


RUNG_SPECS: dict[str, type[BaseModel]] = {
    "prompt": PromptRungSpec,
    "fewshot": FewShotRungSpec,
    "rag": RagRungSpec,
    "distill": DistillRungSpec,
    "lora": LoraRungSpec,
    "preference": PreferenceRungSpec,
    "full": FullRungSpec,
}
RungSpec = Annotated[
    Union[PromptRungSpec, FewShotRungSpec, RagRungSpec, DistillRungSpec, LoraRungSpec, PreferenceRungSpec,
          FullRungSpec],
    Field(discriminator="type"),
]
TrainedRungSpec = Union[DistillRungSpec, LoraRungSpec, PreferenceRungSpec, FullRungSpec]
PROMPT_RUNGS = ("prompt", "fewshot", "rag")  # no weights changed: what a distill rung's teacher may be
TRAINED_RUNGS = ("distill", "lora", "preference", "full")
ADAPTER_RUNGS = ("distill", "lora", "preference")  # trained as a LoRA adapter: one served engine hot-swaps them


class GenerationSpec(Strict):
    max_new_tokens: int = Field(default=64, ge=1, le=4096)
    label_scoring: Literal["loglik", "generate"] = Field(
        default="loglik",
        description="Label outputs: `loglik` scores every label by log-likelihood; `generate` decodes freely.",
    )
    batch_size: int = Field(default=8, ge=1, le=1024)
    stop_at_json_end: bool = Field(
        default=True, description="json outputs: stop decoding once the top-level JSON object has closed."
    )
    temperature: float = Field(
        default=0.0, ge=0.0, le=5.0, description="0 decodes greedily (the default); above 0 samples (generation only)."
    )
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling: keep the smallest token set "
                         "holding this much probability (with temperature > 0).")
    seed: int = Field(default=0, description="Sampling seed (with temperature > 0): same seed, same samples.")
    samples: int = Field(
        default=1, ge=1, le=64, description="Samples per example (temperature > 0): the example's score is the mean over them."
    )

    @model_validator(mode="after")
    def _sampling(self) -> "GenerationSpec":
        if self.samples > 1 and self.temperature == 0:
            raise ValueError(f"samples: {self.samples} needs temperature > 0 (greedy decoding gives one answer)")
        return self


class PolicySpec(Strict):
    """How the ladder decides on dev: when a rung meets the target, when to climb, what counts as better."""

    confidence: Literal["lower_bound", "point"] = Field(
        default="lower_bound",
        description="`lower_bound`: a rung meets the target when its whole 95% dev interval is at or above it; "
        "`point`: when its dev mean is. Either way, a gap is measured when the whole interval is below the target; "
        "anything else is inconclusive.",
    )
    inconclusive: Literal["climb", "stop", "report"] = Field(
        default="report",
        description="When a rung is inconclusive: `climb` anyway, `stop` climbing, or `report`: stop and say how "
        "many dev examples would resolve it.",
    )
    alpha: float = Field(
        default=0.05, gt=0, lt=0.5,
        description="Significance level of the paired tests (Holm-corrected across the rungs compared): a costlier "
        "rung counts as better only when its improvement is significant.",
    )
    prefer: Literal["cost", "quality"] = Field(
        default="cost",
        description="Among the rungs that meet the target: `cost` recommends the cheapest; `quality` a costlier one "
        "where the paired test on dev says it is significantly better (Holm-corrected).",
    )
    non_inferiority_margin: float = Field(
        default=0.02, ge=0, le=1,
        description="Reported with the recommendation: whether the chosen rung's paired difference to the best "
        "measured rung is above minus this margin (95% interval). It never passes over a cheaper rung that meets "
        "the target.",
    )
    power: float = Field(default=0.8, gt=0, lt=1, description="Power for the 'how many examples would it take' estimates.")
    resolution: float = Field(
        default=0.1, gt=0, le=1,
        description="A dev interval wider than ± this is called too small to decide anything, with the n it would need.",
    )
    sequential: bool = Field(
        default=False,
        description="Decide each rung on dev with an anytime-valid confidence sequence, evaluating dev in chunks and "
        "stopping as soon as it decides (a clear-cut rung needs fewer dev examples; test is always evaluated whole). "
        "The sequence is wider than a fixed-n interval: a close call may stay undecided (`ladder resolve` continues it).",
    )


class CostSpec(Strict):
    """Prices and volume: turn measured time and tokens into money and a break-even volume."""

    price_per_hour: float | None = Field(
        default=None, ge=0,
        description="Price of one hour of the machine that trains and serves (accelerator- or CPU-hour). Without "
        "it (and without token prices) costs are reported in machine-hours.",
    )
    price_per_1k_prompt_tokens: float | None = Field(
        default=None, ge=0, description="An API-served model: price per 1,000 prompt tokens (then per-call cost is by tokens)."
    )
    price_per_1k_completion_tokens: float | None = Field(default=None, ge=0, description="Price per 1,000 completion tokens.")
    calls_per_month: int = Field(default=100_000, ge=0, description="Expected calls per month once deployed.")
    months: float = Field(default=12, gt=0, description="How long the choice is expected to serve (months).")
    currency: str = Field(default="USD", max_length=8)

    @model_validator(mode="after")
    def _token_prices_together(self) -> "CostSpec":
        if (self.price_per_1k_prompt_tokens is None) != (self.price_per_1k_completion_tokens is None):
            raise ValueError("give both price_per_1k_prompt_tokens and price_per_1k_completion_tokens, or neither")
        if self.price_per_1k_prompt_tokens is not None and self.price_per_hour is None:
            raise ValueError("token prices price each call; give price_per_hour too, to price the adaptation (training time)")
        return self


class ServingSpec(Strict):
    """Which backend serves the candidates, and its settings. ``--backend`` on the command line overrides
    ``backend``."""

    backend: Literal["auto", "transformers", "vllm", "openai"] = Field(
        default="auto",
        description="auto: vllm where CUDA and vllm are both present, else transformers. openai: any "
        "OpenAI-compatible server (e.g. a `vllm serve` deployment) at base_url.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="Weights' precision for transformers and vllm: auto is float32 on CPU, and on CUDA the "
        "precision the checkpoint was saved in (config.json's dtype; bfloat16 where it names none). bf16 weights "
        "changed the bundled fp32 SmolLM2's label predictions on 3-8 of 100 SNIPS examples, on CPU and on CUDA; a "
        "CPU without avx512_bf16/amx_bf16 only emulates bf16, several times slower."
    )
    base_url: str | None = Field(
        default=None, pattern=r"^https?://", description="openai: the server's URL up to /v1, e.g. http://10.0.0.5:8000/v1."
    )
    model: str | None = Field(
        default=None, description="openai: the served model's name (as /v1/models lists it); default: the only one served."
    )
    api_key_env: str | None = Field(
        default=None, description="openai: the NAME of the environment variable holding the API key (never the key itself).",
    )
    api: Literal["completions", "chat"] = Field(
        default="completions",
        description="openai: /v1/completions with prompts rendered by ladder (needed for label log-likelihoods), or "
        "/v1/chat/completions for servers without it (the server's chat template formats; label_scoring: generate).",
    )
    timeout_s: float = Field(default=120, gt=0, description="openai: seconds per HTTP request.")
    retries: int = Field(default=4, ge=0, le=20, description="openai: retries of a failed request, with exponential backoff.")
    concurrency: int = Field(default=8, ge=1, le=256, description="openai: requests in flight at once.")
    gpu_memory_utilization: float = Field(
        default=0.5, gt=0, le=1,
        description="vllm on CUDA: the engine's share of GPU memory (the rest is left for training rungs).",
    )
    tensor_parallel_size: int = Field(default=1, ge=1, description="vllm: GPUs one engine spans.")
    max_model_len: int | None = Field(default=None, ge=16, description="vllm: context length (default: the model's).")
    enforce_eager: bool | None = Field(
        default=None, description="vllm: no CUDA graphs / compilation (default: eager on CPU, where start-up is 3x faster)."
    )
    kv_cache_gb: float = Field(default=2, gt=0, description="vllm on CPU: memory for the key/value cache (GiB).")

    @field_validator("api_key_env")
    @classmethod
    def _a_name_not_a_key(cls, value: str | None) -> str | None:
        # the message never repeats the value: it may be a key pasted in by mistake
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError("name an environment variable (e.g. OPENAI_API_KEY) that holds the key, not the key itself")
        return value


class TaskSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    version: int = Field(default=1, ge=1)
    data: DataSpec
    output: OutputSpec
    metrics: list[MetricEntry] = Field(
        min_length=1, description="Every metric is measured and reported; target.metric decides. A name, or a "
        "mapping {metric, name, options, extract}.",
    )
    target: TargetSpec
    model: str = Field(
        default=DEFAULT_MODEL,
        description="Registry alias (smollm2-135m-instruct), a local Hugging Face folder, or a .gguf file.",
    )
    embedder: str = Field(
        default=DEFAULT_EMBEDDER,
        description="Sentence embedder for retrieval and `similar` demonstrations: alias all-minilm-l6-v2 or a local "
        "sentence-transformers folder.",
    )
    corpus: CorpusSpec | None = None
    prompt: PromptSpec
    rungs: list[RungSpec] = Field(min_length=1)
    generation: GenerationSpec = GenerationSpec()
    policy: PolicySpec = PolicySpec()
    cost: CostSpec = CostSpec()
    serving: ServingSpec = ServingSpec()
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> "TaskSpec":
        # a run record's spec was checked when it ran: reading it needs no metric plugin installed
        self._check_metrics(registered=not (info.context or {}).get("record"))
        names = [rung_name(r) for r in self.rungs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rung names must be unique; repeated: {', '.join(dupes)} (give variants a `name`)")
        ranks = [LADDER.index(r.type) for r in self.rungs]
        if ranks != sorted(ranks):
            order = " -> ".join(LADDER)
            raise ValueError(f"rungs must climb in ladder order {order}; got {' -> '.join(r.type for r in self.rungs)}")
        for rung in self.rungs:
            if isinstance(rung, FewShotRungSpec) and rung.selection is None:  # the default fits the output kind
                rung.selection = "stratified" if self.output.kind == "label" else "random"
            if isinstance(rung, (FewShotRungSpec, RagRungSpec)) and rung.selection == "stratified" and self.output.kind != "label":
                raise ValueError(f"rung {rung_name(rung)!r}: selection 'stratified' needs output.kind 'label'; use 'random'")
            if isinstance(rung, RagRungSpec) and self.corpus is None:
                raise ValueError(f"rung {rung_name(rung)!r}: the rag rung needs a `corpus`")
        for index, rung in enumerate(self.rungs):
            if isinstance(rung, (DistillRungSpec, PreferenceRungSpec)):
                self._resolve_sources(index, rung)
        sampling = self.generation.temperature > 0
        if sampling and self.output.kind == "label" and self.generation.label_scoring == "loglik":
            raise ValueError("generation.temperature > 0 samples answers, but label_scoring 'loglik' scores every "
                             "label without decoding: set generation.label_scoring: generate")
        if self.data.doc_id_field and self.corpus is None:
            raise ValueError("data.doc_id_field names corpus documents, but the task has no `corpus`")
        return self

    def _resolve_sources(self, index: int, rung: "DistillRungSpec | PreferenceRungSpec") -> None:
        """The rungs a distill or preference rung learns from, by name, each listed before it; defaults made
        explicit (the record then says which rung taught which)."""
        name = rung_name(rung)
        before = {rung_name(r): r for r in self.rungs[:index]}
        if isinstance(rung, DistillRungSpec):
            if rung.teacher is None:
                teachers = [n for n, r in before.items() if r.type in PROMPT_RUNGS]
                if not teachers:
                    raise ValueError(f"rung {name!r}: a distill rung needs a teacher: a prompt, fewshot or rag rung "
                                     "listed before it")
                rung.teacher = teachers[-1]
            teacher = before.get(rung.teacher)
            if teacher is None or teacher.type not in PROMPT_RUNGS:
                what = "is not a rung listed before it" if teacher is None else f"is a {teacher.type} rung"
                raise ValueError(f"rung {name!r}: teacher {rung.teacher!r} {what}; the teacher is a prompt, fewshot or "
                                 f"rag rung listed before it ({', '.join(n for n, r in before.items() if r.type in PROMPT_RUNGS) or 'none'})")
            return
        if rung.init is not None and (rung.init not in before or before[rung.init].type != "lora"):
            raise ValueError(f"rung {name!r}: init {rung.init!r} is not a lora rung listed before it")
        if self.data.preferences is not None:
            return  # the pairs are given
        if rung.negatives_from is None:
            if not before:
                raise ValueError(f"rung {name!r}: a preference rung needs rejected answers: a rung listed before it "
                                 "(whose wrong answers on train are used) or data.preferences")
            rung.negatives_from = list(before)[-1]
        if rung.negatives_from not in before:
            raise ValueError(f"rung {name!r}: negatives_from {rung.negatives_from!r} is not a rung listed before it "
                             f"({', '.join(before) or 'none'})")

    @property
    def metric_names(self) -> list[str]:
        """The metrics by the names the record and reports use, in the task's order."""
        return [m.name for m in self.metrics]  # type: ignore[misc]

    def _check_metrics(self, registered: bool = True) -> None:
        from ladder.metrics import METRICS, metric_options

        names = self.metric_names
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"metrics: the name {dupes[0]!r} is used twice (give one entry a `name`)")
        for i, entry in enumerate(self.metrics if registered else []):
            try:
                metric = METRICS.get(entry.metric)
            except LadderError as exc:
                raise ValueError(f"metrics[{i}]: {exc}") from None
            try:
                metric_options(metric, entry.options)
            except ValueError as exc:
                raise ValueError(f"metrics[{i}].{exc}" if str(exc).startswith("options.") else f"metrics[{i}]: {exc}") from None
            if entry.metric in JSON_METRICS and self.output.kind != "json":
                raise ValueError(f"metric {entry.metric!r} needs output.kind 'json'")
            if entry.extract == "first_label" and self.output.kind != "label":
                raise ValueError(f"metrics[{i}].extract: first_label needs output.kind 'label'")
        if self.target.metric not in names:
            raise ValueError(f"target.metric {self.target.metric!r} is not one of metrics: {names}")


def rung_name(rung) -> str:
    return rung.name or rung.type


@dataclass(frozen=True)
class TaskFile:
    """A validated spec and the file it came from (data paths resolve relative to it)."""

    spec: TaskSpec
    path: Path

    def resolve(self, relative: str) -> Path:
        return (self.path.parent / relative).resolve()


def shown_path(path: Path) -> str:
    """A path for messages: relative to the working directory when inside it, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _format_loc(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in RUNG_SPECS and parts and parts[-1].startswith("["):
            continue  # discriminated-union tag inserted by pydantic; the index already says which rung
        else:
            name = str(item)
            name = name if name.isprintable() and name.strip() == name and name else repr(name)  # one line, visible
            parts.append(("." if parts else "") + name)
    return "".join(parts) or "(top level)"


def _format_error(err: dict) -> str:
    loc = _format_loc(tuple(err["loc"]))
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{loc}: unknown field"
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag", "")
        hint = difflib.get_close_matches(str(tag), list(RUNG_SPECS), n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"{loc}.type: unknown rung {tag!r}{did}; known: {', '.join(RUNG_SPECS)}"
    if kind == "union_tag_not_found":
        return f"{loc}.type: missing (one of: {', '.join(RUNG_SPECS)})"
    if kind == "literal_error":
        expected = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
        hint = difflib.get_close_matches(str(err.get("input")), expected, n=1)
        did = f"did you mean {hint[0]!r}? " if hint else ""
        return f"{loc}: unknown value {err.get('input')!r}; {did}(one of: {', '.join(expected)})"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    named = re.match(r"([a-z_]+)[.\[:]", msg)
    if not err["loc"] and named and named.group(1) in TaskSpec.model_fields:
        return msg  # a whole-task check that names its field (target.metric ..., metrics[1]: ...)
    return f"{loc}: {msg}"


def _suggest_unknown(err: dict, model: type[BaseModel]) -> str:
    """Add a 'did you mean' to an unknown-field error, looking up the sibling fields."""
    target: type[BaseModel] | None = model
    for item in err["loc"][:-1]:
        if isinstance(item, int):
            continue
        if item in RUNG_SPECS and target is None:  # pydantic's discriminated-union tag
            target = RUNG_SPECS[item]
            continue
        field = target.model_fields.get(str(item)) if target is not None else None
        ann = field.annotation if field is not None else None
        target = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    if target is None:
        return ""
    hint = difflib.get_close_matches(str(err["loc"][-1]), list(target.model_fields), n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def parse_task(raw: object, source: str) -> TaskSpec:
    """Validate a parsed YAML document; all problems at once, each ``source: field.path: message``."""
    if not isinstance(raw, dict):
        raise ValidationFailed([f"{source}: (top level): expected a mapping of fields, got {type(raw).__name__}"])
    try:
        return TaskSpec.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            line = _format_error(err)
            if err["type"] == "extra_forbidden":
                line += _suggest_unknown(err, TaskSpec)
            lines.append(f"{source}: {line}")
        raise ValidationFailed(lines) from None


def load_task(path: str | Path) -> TaskFile:
    """Read and validate a ``task.yaml`` (or a folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "task.yaml"
    if not path.is_file():
        raise LadderError(f"{shown_path(path)}: no such task file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{shown_path(path)}:{mark.line + 1}" if mark is not None else shown_path(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValidationFailed([f"{where}: invalid YAML: {problem}"]) from None
    except UnicodeDecodeError as exc:
        raise ValidationFailed([f"{shown_path(path)}: not UTF-8 text ({exc.reason})"]) from None
    return TaskFile(spec=parse_task(raw, shown_path(path)), path=path.resolve())


def json_schema() -> dict:
    schema = TaskSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ladder task.yaml"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
