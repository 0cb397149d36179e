"""The sections of a task file besides its rungs and serving: data, corpus, output, metrics, target,
prompt, generation, policy, cost."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from ladder.spec.base import (
    BUILTIN_METRICS,
    PLACEHOLDER,
    TEMPLATE_FIELDS,
    Strict,
)


class DataSpec(Strict):
    """Data splits (JSONL or CSV, paths relative to the task file) and the fields to read."""

    train: str = Field(description="Training split: the only labelled data a rung may learn from.")
    dev: str = Field(description="Development split: used for decisions (climb or stop).")
    test: str = Field(description="Held-out split: read only by the eval step.")
    input_field: str = Field(default="input", description="Field holding the model's input.")
    target_field: str | None = Field(
        default="target",
        description="Field holding the expected answer; null for an open-ended task with no reference answers "
        "(output.kind text, graded by judge metrics alone; the rungs that learn from targets are refused).",
    )
    id_field: str | None = Field(
        default=None, description="Field holding a stable example id; without it the id is a hash of the input."
    )
    alternatives_field: str | None = Field(
        default=None,
        description="Field holding a list of other acceptable answers (exact_match and token_f1 take the best).",
    )
    doc_id_field: str | None = Field(
        default=None,
        description="Field naming the corpus document that answers the example: retrieval is scored on it.",
    )
    allow_duplicate_inputs: bool = Field(
        default=False,
        description="A test input equal (after normalization) to a train or dev input, or a near-duplicate of one, "
        "is an error; true turns it into a warning where duplicates are legitimate.",
    )
    near_duplicate_jaccard: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Two inputs whose word-pair sets are at least this similar (Jaccard) are near-duplicates.",
    )
    allow_conflicting_targets: bool = Field(
        default=False,
        description="The same input (after normalization) with different targets is an error; true makes it a warning.",
    )
    unlabeled: str | None = Field(
        default=None,
        description="Inputs without targets (JSONL or CSV: input_field, and id_field where given): the distill "
        "rung's teacher answers them too, so the student learns from more than the train split.",
    )
    preferences: str | None = Field(
        default=None,
        description="Preference pairs for the preference rung (JSONL or CSV): input_field, `chosen` and "
        "`rejected` answers; used instead of pairs made from the model's own mistakes on train.",
    )
    domain_text: str | None = Field(
        default=None,
        description="Raw text of the task's domain for the continued rung (no targets): a JSONL of documents "
        "(a `text` field) or a folder of .md/.txt files, relative to the task file.",
    )
    human_grades: str | None = Field(
        default=None,
        description="People's grades of answers, to calibrate the judge metrics (JSONL or CSV): input_field, "
        "`output` (the graded answer), `grade` (on the judge's scale: a number, or pass/fail), the reference in "
        "target_field where there is one, and `metric` (the judge metric's name) when the task has several.",
    )
    reserve: str | None = Field(
        default=None,
        description="Labelled examples held back for decisions only (JSONL or CSV, the splits' fields): "
        "`ladder resolve` evaluates them, after any dev examples a run's --limit left out, until an inconclusive "
        "rung is decided. No rung learns from them; none may repeat a train, dev or test input.",
    )


class CorpusSpec(Strict):
    """A knowledge corpus for the rag rung: a JSONL of {id, text} documents or a folder of .md/.txt files."""

    path: str = Field(description="JSONL file or folder, relative to the task file.")
    id_field: str = Field(default="id", description="Field holding a document's id (JSONL corpus).")
    text_field: str = Field(default="text", description="Field holding a document's text (JSONL corpus).")
    chunk_size: int = Field(default=128, ge=8, description="Chunk length in embedder tokens (word pieces).")
    chunk_overlap: int = Field(default=16, ge=0, description="Tokens shared by consecutive chunks of a document.")
    index: Literal["auto", "exact", "ivf", "hnsw"] = Field(
        default="auto", description="`auto`: exact inner-product search below `approx_threshold` chunks, HNSW above."
    )
    approx_threshold: int = Field(
        default=50_000,
        ge=1,
        description="index auto: chunks above which the approximate index (HNSW) replaces the exact one.",
    )
    ivf_nprobe: int = Field(default=16, ge=1, description="IVF: clusters searched per query.")
    hnsw_ef_search: int = Field(default=64, ge=1, description="HNSW: candidate list size while searching.")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> CorpusSpec:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size ({self.chunk_size})"
            )
        return self


class OutputSpec(Strict):
    kind: Literal["label", "text", "json"] = Field(
        description="label (one of labels), text (free text) or json (an object or array)."
    )
    labels: list[str] | None = Field(default=None, description="The label set; required for kind: label.")

    @model_validator(mode="after")
    def _labels_match_kind(self) -> OutputSpec:
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

        checked = compiles(value)
        assert checked is not None  # a pattern given is a pattern checked
        return checked


class MetricSpec(Strict):
    """One metric: a name alone (`accuracy`), or a mapping with options and an extraction step."""

    metric: str = Field(
        description="A registered metric: built in (" + ", ".join(BUILTIN_METRICS) + ") or added by an installed "
        "package (entry-point group `ladder.metrics`).",
    )
    name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$",
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
    def _default_name(self) -> MetricSpec:
        if self.name is None:
            self.name = self.metric + ("_lenient" if self.extract is not None else "")
        return self


def _metric_entry(value: object) -> object:
    return {"metric": value} if isinstance(value, str) else value


MetricEntry = Annotated[MetricSpec, BeforeValidator(_metric_entry, json_schema_input_type=Union[str, MetricSpec])]


class TargetSpec(Strict):
    metric: str = Field(description="The metric that decides: one of the task's metrics (by name).")
    threshold: float = Field(ge=0.0, le=1.0, description="The score in [0, 1] a rung must meet on dev.")


class PromptSpec(Strict):
    instruction: str = Field(description="Task instruction; sent as the system message in chat format.")
    input_template: str = Field(
        default="{input}",
        description="User message; `{input}` is replaced by the example's input. Data is never passed "
        "through str.format, so braces in data are safe.",
    )
    format: Literal["auto", "chat", "plain"] = Field(
        default="auto",
        description="`chat` uses the model's chat template; `plain` renders instruction, input and answer as plain "
        "text (base models without one); `auto` (the default) is chat where the model has a chat template, plain "
        "where it has none. The run record states the format used.",
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


class GenerationSpec(Strict):
    max_new_tokens: int = Field(default=64, ge=1, le=4096, description="Most tokens generated per answer.")
    label_scoring: Literal["loglik", "generate"] = Field(
        default="loglik",
        description="Label outputs: `loglik` scores every label by log-likelihood; `generate` decodes freely.",
    )
    batch_size: int = Field(default=8, ge=1, le=1024, description="Examples per model call batch.")
    stop_at_json_end: bool = Field(
        default=True, description="json outputs: stop decoding once the top-level JSON object has closed."
    )
    temperature: float = Field(
        default=0.0, ge=0.0, le=5.0, description="0 decodes greedily (the default); above 0 samples (generation only)."
    )
    top_p: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description="Nucleus sampling: keep the smallest token set "
        "holding this much probability (with temperature > 0).",
    )
    seed: int = Field(default=0, description="Sampling seed (with temperature > 0): same seed, same samples.")
    samples: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Samples per example (temperature > 0): the example's score is the mean over them.",
    )

    @model_validator(mode="after")
    def _sampling(self) -> GenerationSpec:
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
        default=0.05,
        gt=0,
        lt=0.5,
        description="Significance level of the paired tests (Holm-corrected across the rungs compared): a costlier "
        "rung counts as better only when its improvement is significant.",
    )
    prefer: Literal["cost", "quality"] = Field(
        default="cost",
        description="Among the rungs that meet the target: `cost` recommends the cheapest; `quality` a costlier one "
        "where the paired test on dev says it is significantly better (Holm-corrected).",
    )
    non_inferiority_margin: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="Reported with the recommendation: whether the chosen rung's paired difference to the best "
        "measured rung is above minus this margin (95% interval). It never passes over a cheaper rung that meets "
        "the target.",
    )
    power: float = Field(
        default=0.8, gt=0, lt=1, description="Power for the 'how many examples would it take' estimates."
    )
    resolution: float = Field(
        default=0.1,
        gt=0,
        le=1,
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
        default=None,
        ge=0,
        description="Price of one hour of the machine that trains and serves (accelerator- or CPU-hour). Without "
        "it (and without token prices) costs are reported in machine-hours.",
    )
    price_per_1k_prompt_tokens: float | None = Field(
        default=None,
        ge=0,
        description="An API-served model: price per 1,000 prompt tokens (then per-call cost is by tokens).",
    )
    price_per_1k_completion_tokens: float | None = Field(
        default=None, ge=0, description="Price per 1,000 completion tokens."
    )
    calls_per_month: int = Field(default=100_000, ge=0, description="Expected calls per month once deployed.")
    months: float = Field(default=12, gt=0, description="How long the choice is expected to serve (months).")
    currency: str = Field(default="USD", max_length=8, description="Currency of the prices (a label for reports).")

    @model_validator(mode="after")
    def _token_prices_together(self) -> CostSpec:
        if (self.price_per_1k_prompt_tokens is None) != (self.price_per_1k_completion_tokens is None):
            raise ValueError("give both price_per_1k_prompt_tokens and price_per_1k_completion_tokens, or neither")
        if self.price_per_1k_prompt_tokens is not None and self.price_per_hour is None:
            raise ValueError(
                "token prices price each call; give price_per_hour too, to price the adaptation (training time)"
            )
        return self
