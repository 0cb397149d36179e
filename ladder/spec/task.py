"""The task: one flat ``task.yaml`` per task folder, validated by one pydantic model.

Every default lives in the model (never in ``.get(key, default)`` elsewhere); unknown keys are errors
(``extra="forbid"``)."""

from __future__ import annotations

from pydantic import (
    Field,
    ValidationInfo,
    model_validator,
)

from ladder.errors import LadderError
from ladder.spec.base import DEFAULT_EMBEDDER, DEFAULT_MODEL, JSON_METRICS, Strict
from ladder.spec.rungs import (
    LADDER,
    PROMPT_RUNGS,
    ContinuedRungSpec,
    DistillRungSpec,
    FewShotRungSpec,
    LoraRungSpec,
    PreferenceRungSpec,
    RagRungSpec,
    RungSpec,
    rung_name,
)
from ladder.spec.sections import (
    CorpusSpec,
    CostSpec,
    DataSpec,
    GenerationSpec,
    MetricEntry,
    OutputSpec,
    PolicySpec,
    PromptSpec,
    TargetSpec,
)
from ladder.spec.serving import ServingSpec


class TaskSpec(Strict):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="The task's name: letters, digits, dot, underscore and hyphen (run folders and reports use it).",
    )
    description: str = Field(default="", description="One line on what the task is, shown in reports.")
    version: int = Field(
        default=1,
        ge=1,
        description="The task's own version: raise it when the task changes meaning (recorded with every run).",
    )
    data: DataSpec = Field(
        description="Where the splits are, which fields hold input, target and id, and how strict the data checks are."
    )
    output: OutputSpec = Field(description="What an answer is: a label from a set, free text, or JSON.")
    metrics: list[MetricEntry] = Field(
        min_length=1,
        description="Every metric is measured and reported; target.metric decides. A name, or a "
        "mapping {metric, name, options, extract}.",
    )
    target: TargetSpec = Field(description="The metric that decides and the threshold a rung must meet on dev.")
    model: str = Field(
        default=DEFAULT_MODEL,
        description="Registry alias (smollm2-135m-instruct), a local Hugging Face folder, or a .gguf file.",
    )
    embedder: str = Field(
        default=DEFAULT_EMBEDDER,
        description="Sentence embedder for retrieval and `similar` demonstrations: alias all-minilm-l6-v2 or a local "
        "sentence-transformers folder.",
    )
    corpus: CorpusSpec | None = Field(default=None, description="Documents to retrieve from (the rag rung).")
    prompt: PromptSpec = Field(
        description="The instruction, the input template and the prompt format every rung starts from."
    )
    rungs: list[RungSpec] = Field(
        min_length=1,
        description="The rungs to climb, in ladder order: prompt, fewshot, rag, distill, continued, lora, preference, "
        "full.",
    )
    generation: GenerationSpec = Field(
        default=GenerationSpec(),
        description="How answers are produced: label scoring or generation, token budget, batch size, sampling.",
    )
    policy: PolicySpec = Field(
        default=PolicySpec(),
        description="When to climb and when to stop: confidence, margin, inconclusive handling, sequential decisions.",
    )
    cost: CostSpec = Field(
        default=CostSpec(), description="Prices for the cost model (none: machine-hours) and the expected call volume."
    )
    serving: ServingSpec = Field(
        default=ServingSpec(), description="Which backend serves the candidates and its settings."
    )
    seed: int = Field(
        default=0, description="Seed of every random choice (each rung and purpose draws its own stream from it)."
    )

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> TaskSpec:
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
            if (
                isinstance(rung, (FewShotRungSpec, RagRungSpec))
                and rung.selection == "stratified"
                and self.output.kind != "label"
            ):
                raise ValueError(
                    f"rung {rung_name(rung)!r}: selection 'stratified' needs output.kind 'label'; use 'random'"
                )
            if isinstance(rung, RagRungSpec) and self.corpus is None:
                raise ValueError(f"rung {rung_name(rung)!r}: the rag rung needs a `corpus`")
            if isinstance(rung, ContinuedRungSpec):
                self._resolve_text(rung)
        for index, rung in enumerate(self.rungs):
            if isinstance(rung, LoraRungSpec) and rung.init is not None:
                before = {rung_name(r): r for r in self.rungs[:index]}
                if rung.init not in before or before[rung.init].type != "continued":
                    raise ValueError(
                        f"rung {rung_name(rung)!r}: init {rung.init!r} is not a continued rung listed before it"
                    )
        for index, rung in enumerate(self.rungs):
            if isinstance(rung, (DistillRungSpec, PreferenceRungSpec)):
                self._resolve_sources(index, rung)
        if self.data.target_field is None:
            self._open_ended()
        sampling = self.generation.temperature > 0
        if sampling and self.output.kind == "label" and self.generation.label_scoring == "loglik":
            raise ValueError(
                "generation.temperature > 0 samples answers, but label_scoring 'loglik' scores every "
                "label without decoding: set generation.label_scoring: generate"
            )
        if self.data.doc_id_field and self.corpus is None:
            raise ValueError("data.doc_id_field names corpus documents, but the task has no `corpus`")
        return self

    def _open_ended(self) -> None:
        """No reference answers: free text graded by judges, and only the rungs that learn from none."""
        if self.output.kind != "text":
            raise ValueError("data.target_field: null (no reference answers) needs output.kind text")
        others = [m.name for m in self.metrics if m.metric != "judge"]
        if others:
            raise ValueError(f"metrics: {others[0]!r} compares with a reference, and data.target_field is null")
        for rung in self.rungs:
            learns = rung.type in ("fewshot", "distill", "continued", "lora", "full") or (
                isinstance(rung, PreferenceRungSpec) and rung.pairs_from != "judge" and self.data.preferences is None
            )
            if learns:
                raise ValueError(
                    f"rung {rung_name(rung)!r}: it learns from reference answers, and data.target_field is null "
                    "(an open-ended task: prompt, rag, and preference with pairs_from: judge or data.preferences)"
                )

    def _resolve_text(self, rung: ContinuedRungSpec) -> None:
        """The continued rung's text made explicit (``auto`` -> domain_text or corpus), and there."""
        name = rung_name(rung)
        if rung.source == "auto":
            if self.data.domain_text is None and self.corpus is None:
                raise ValueError(
                    f"rung {name!r}: the continued rung learns from the domain's text: give data.domain_text or a `corpus`"
                )
            rung.source = "domain_text" if self.data.domain_text is not None else "corpus"
        elif rung.source == "domain_text" and self.data.domain_text is None:
            raise ValueError(f"rung {name!r}: source 'domain_text' needs data.domain_text")
        elif rung.source == "corpus" and self.corpus is None:
            raise ValueError(f"rung {name!r}: source 'corpus' needs a `corpus`")

    def _resolve_sources(self, index: int, rung: DistillRungSpec | PreferenceRungSpec) -> None:
        """The rungs a distill or preference rung learns from, by name, each listed before it; defaults made
        explicit (the record then says which rung taught which)."""
        name = rung_name(rung)
        before = {rung_name(r): r for r in self.rungs[:index]}
        if isinstance(rung, DistillRungSpec):
            if rung.teacher is None:
                teachers = [n for n, r in before.items() if r.type in PROMPT_RUNGS]
                if not teachers:
                    raise ValueError(
                        f"rung {name!r}: a distill rung needs a teacher: a prompt, fewshot or rag rung listed before it"
                    )
                rung.teacher = teachers[-1]
            teacher = before.get(rung.teacher)
            if teacher is None or teacher.type not in PROMPT_RUNGS:
                what = "is not a rung listed before it" if teacher is None else f"is a {teacher.type} rung"
                raise ValueError(
                    f"rung {name!r}: teacher {rung.teacher!r} {what}; the teacher is a prompt, fewshot or "
                    f"rag rung listed before it ({', '.join(n for n, r in before.items() if r.type in PROMPT_RUNGS) or 'none'})"
                )
            return
        if rung.init is not None and (rung.init not in before or before[rung.init].type != "lora"):
            raise ValueError(f"rung {name!r}: init {rung.init!r} is not a lora rung listed before it")
        if rung.pairs_from == "judge":
            judges = [m.name or m.metric for m in self.metrics if m.metric == "judge"]
            if not judges:
                raise ValueError(
                    f"rung {name!r}: pairs_from judge needs a judge metric in `metrics` (its judge grades the answers)"
                )
            rung.judge = rung.judge or judges[0]
            if rung.judge not in judges:
                raise ValueError(f"rung {name!r}: judge {rung.judge!r} is not a judge metric ({', '.join(judges)})")
            if self.data.preferences is not None:
                raise ValueError(f"rung {name!r}: pairs_from judge makes its own pairs; data.preferences gives them")
            return
        if self.data.preferences is not None:
            return  # the pairs are given
        if rung.negatives_from is None:
            if not before:
                raise ValueError(
                    f"rung {name!r}: a preference rung needs rejected answers: a rung listed before it "
                    "(whose wrong answers on train are used) or data.preferences"
                )
            rung.negatives_from = list(before)[-1]
        if rung.negatives_from not in before:
            raise ValueError(
                f"rung {name!r}: negatives_from {rung.negatives_from!r} is not a rung listed before it "
                f"({', '.join(before) or 'none'})"
            )

    def with_format(self, format: str) -> TaskSpec:
        """This spec with ``prompt.format`` as a backend resolved it (``auto`` becomes chat or plain)."""
        if format == self.prompt.format:
            return self
        return self.model_copy(update={"prompt": self.prompt.model_copy(update={"format": format})})

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
                raise ValueError(
                    f"metrics[{i}].{exc}" if str(exc).startswith("options.") else f"metrics[{i}]: {exc}"
                ) from None
            if entry.metric in JSON_METRICS and self.output.kind != "json":
                raise ValueError(f"metric {entry.metric!r} needs output.kind 'json'")
            if entry.extract == "first_label" and self.output.kind != "label":
                raise ValueError(f"metrics[{i}].extract: first_label needs output.kind 'label'")
            if entry.metric == "judge" and entry.extract is not None:
                raise ValueError(f"metrics[{i}].extract: a judge reads the whole answer; drop extract")
        if self.target.metric not in names:
            raise ValueError(f"target.metric {self.target.metric!r} is not one of metrics: {names}")
        target = next(m for m in self.metrics if m.name == self.target.metric)
        if registered and target.metric == "judge":
            self._judged_target()

    def _judged_target(self) -> None:
        """A judged target is graded in the eval step only: what scores answers elsewhere by it cannot run."""
        if self.policy.sequential:
            raise ValueError(
                "policy.sequential tests per-example scores against the threshold one at a time, and a judge's "
                "scores are on its own scale (a calibrated one reaches the people's only as a mean): set it false"
            )
        for rung in self.rungs:
            name = rung_name(rung)
            if isinstance(rung, DistillRungSpec):
                raise ValueError(
                    f"rung {name!r}: a distill rung keeps the teacher's right answers by the target metric, and a "
                    "judge target is graded only in the eval step: make target.metric a reference metric"
                )
            if isinstance(rung, PreferenceRungSpec) and self.data.preferences is None and rung.pairs_from != "judge":
                raise ValueError(
                    f"rung {name!r}: rejected answers are chosen by the target metric on train, and a judge target is "
                    "graded only in the eval step: give data.preferences, or pairs_from: judge"
                )
            train = getattr(rung, "train", None)
            if train is not None and train.early_stopping == "dev_metric":
                raise ValueError(
                    f"rung {name!r}: train.early_stopping dev_metric measures the target metric during training, and "
                    "a judge target is graded only in the eval step: use dev_loss"
                )
