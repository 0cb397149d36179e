"""What every part of the task model shares: the strict base (unknown fields are errors) and the
vocabulary constants."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from ladder.defaults import DEFAULT_EMBEDDER as DEFAULT_EMBEDDER  # the task model's defaults
from ladder.defaults import DEFAULT_MODEL as DEFAULT_MODEL

BUILTIN_METRICS = (
    "accuracy",
    "exact_match",
    "token_f1",
    "json_valid",
    "json_field_f1",
    "items_f1",
    "rouge_l",
    "chrf",
    "numeric_match",
    "judge",
)
JSON_METRICS = ("json_valid", "json_field_f1")

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
TEMPLATE_FIELDS = ("input",)


class Strict(BaseModel):
    """The one base of every strict model (task files, records, baselines, suites): an unknown field is an error."""

    model_config = ConfigDict(extra="forbid")
