"""The run record (``run.json``): everything a report or a gate needs, and nothing else is read.

Saved atomically after every rung, so an interrupted run keeps what it measured. ``schema_version``
changes whenever a field changes meaning; loading a record of another version is a clear error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ladder.errors import LadderError
from ladder.fileio import atomic_write_text

SCHEMA_VERSION = 1


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExampleRecord(_Record):
    id: str
    split: Literal["dev", "test"]
    prompt_hash: str
    prompt_tokens: int
    completion_tokens: int
    output: str  # the predicted label, or the generated text
    target: str
    label_logprobs: dict[str, float] | None = None  # sum of token log-probabilities per label
    label_logprob_means: dict[str, float] | None = None  # per-token mean per label
    scores: dict[str, float]
    demo_ids: list[str] | None = None  # per-example demonstrations (selection "similar")
    retrieved: list[str] | None = None  # the retriever's top-k chunk ids, best first
    passages: int | None = None  # how many of them fit the prompt's token budget


class MetricSummary(_Record):
    mean: float
    low: float
    high: float
    n: int
    method: str


class Comparison(_Record):
    """Paired comparison of this rung against ``baseline`` on the same examples."""

    baseline: str
    delta: float
    low: float
    high: float
    p_value: float
    n: int
    method: str
    wins: int
    losses: int


class SplitResult(_Record):
    n: int
    metrics: dict[str, MetricSummary]
    wall_s: float  # model time for this split (as measured when first computed, also on a cache hit)
    latency_s_per_example: float  # wall_s / n: batched, amortized
    examples_per_s: float
    prompt_tokens_per_call: float  # what a serving bill counts: the whole prompt, shared prefix included
    completion_tokens_per_call: float  # the answer as the model would emit it, end-of-turn included
    cached: bool
    cache_key: str
    selection_s: float = 0.0  # choosing demonstrations / retrieving passages (included in the latency)
    retrieval: dict[str, MetricSummary] = {}  # recall@k, mrr@k against the data's doc_id
    comparisons: dict[str, Comparison] = {}  # metric -> paired comparison vs the previous rung


class Decision(_Record):
    action: Literal["climb", "stop"]
    meets_target: bool
    reason: str


class RungResult(_Record):
    name: str
    type: str
    settings: dict
    demo_ids: list[str]
    build_s: float
    splits: dict[str, SplitResult]  # "dev", "test"
    decision: Decision
    examples: list[ExampleRecord]
    training: dict | None = None  # training rungs: wall time, real tokens, tokens/s, peak memory, curve, artifact


class SkippedRung(_Record):
    name: str
    type: str
    reason: str


class Recommendation(_Record):
    rung: str | None  # the cheapest rung meeting the target; None when none does
    met: bool
    best_rung: str | None  # best measured on dev (when none meets the target)
    next_rung: str | None  # what to try next when none meets it
    summary: str


class AssessmentRun(_Record):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    created: str
    status: Literal["running", "complete", "failed", "interrupted"]
    error: str | None = None
    ladder_version: str
    task_name: str
    task_path: str
    spec: dict  # the resolved spec, defaults filled in
    data_hashes: dict[str, str]
    data_sizes: dict[str, int]  # examples per split (before --limit)
    limit: int | None
    model: dict  # identity: weights/tokenizer hashes, backend, dtype, device
    packages: dict[str, str]
    seed: int
    target: dict
    rungs: list[RungResult] = []
    skipped: list[SkippedRung] = []
    recommendation: Recommendation | None = None


def save_run(run: AssessmentRun, path: Path) -> None:
    atomic_write_text(path, run.model_dump_json(indent=1) + "\n")


def load_run(path: str | Path) -> AssessmentRun:
    path = Path(path)
    if path.is_dir():
        path = path / "run.json"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LadderError(f"{path}: cannot read run record ({exc.strerror})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LadderError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != SCHEMA_VERSION:
        raise LadderError(f"{path}: schema_version {version!r} is not {SCHEMA_VERSION} (written by another ladder version)")
    try:
        return AssessmentRun.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise LadderError(f"{path}: {loc}: {first['msg']}") from None
