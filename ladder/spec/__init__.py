"""The task spec: one flat ``task.yaml`` per task folder, validated by one pydantic model (``task.TaskSpec``)
built from its sections (``sections``, ``rungs``: the one table of rung kinds, ``serving``). Every default lives
in the model; unknown keys are errors; every problem is reported at once as ``file: field.path: message``
(``errors``); ``load`` reads the file and publishes the JSON Schema."""

from ladder.spec.base import (
    BUILTIN_METRICS,
    DEFAULT_EMBEDDER,
    DEFAULT_MODEL,
    JSON_METRICS,
    PLACEHOLDER,
    TEMPLATE_FIELDS,
    Strict,
)
from ladder.spec.load import (
    TaskFile,
    json_schema,
    json_schema_text,
    load_task,
    parse_task,
    shown_path,
)
from ladder.spec.rungs import (
    ADAPTER_RUNGS,
    LADDER,
    LEARNING_FROM_RUNGS,
    PROMPT_RUNGS,
    RUNG_KINDS,
    RUNG_SPECS,
    TRAINED_RUNGS,
    AdapterSettings,
    DistillRungSpec,
    FewShotRungSpec,
    FullRungSpec,
    LoraRungSpec,
    PreferenceRungSpec,
    PromptRungSpec,
    RagRungSpec,
    RungKind,
    RungSpec,
    TrainedRungSpec,
    TrainSpec,
    rung_name,
)
from ladder.spec.sections import (
    CorpusSpec,
    CostSpec,
    DataSpec,
    GenerationSpec,
    MetricEntry,
    MetricSpec,
    OutputSpec,
    PolicySpec,
    PromptSpec,
    RegexExtract,
    TargetSpec,
)
from ladder.spec.serving import ServingSpec
from ladder.spec.task import TaskSpec

__all__ = [
    "ADAPTER_RUNGS", "BUILTIN_METRICS", "DEFAULT_EMBEDDER", "DEFAULT_MODEL", "JSON_METRICS", "LADDER",
    "LEARNING_FROM_RUNGS", "PLACEHOLDER", "PROMPT_RUNGS", "RUNG_KINDS", "RUNG_SPECS", "TEMPLATE_FIELDS", "TRAINED_RUNGS",
    "AdapterSettings", "CorpusSpec", "CostSpec", "DataSpec", "DistillRungSpec", "FewShotRungSpec", "FullRungSpec",
    "GenerationSpec", "LoraRungSpec", "MetricEntry", "MetricSpec", "OutputSpec", "PolicySpec", "PreferenceRungSpec",
    "PromptRungSpec", "PromptSpec", "RagRungSpec", "RegexExtract", "RungKind", "RungSpec", "ServingSpec", "Strict",
    "TargetSpec", "TaskFile", "TaskSpec", "TrainSpec", "TrainedRungSpec", "json_schema", "json_schema_text", "load_task",
    "parse_task", "rung_name", "shown_path",
]
