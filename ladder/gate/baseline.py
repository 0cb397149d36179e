"""Baseline files: one rung's per-example scores (and output hashes) on one split, committed beside the code a gate
checks; made from a run record, saved, and loaded with a one-line error for anything else."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, ValidationError

import ladder
from ladder.errors import LadderError, validation_problems
from ladder.fileio import atomic_write_text, read_json
from ladder.record import AssessmentRun, ExampleRecord, ModelIdentity, RungResult
from ladder.spec import Strict

BASELINE_FORMAT: Literal["ladder-baseline"] = "ladder-baseline"

BASELINE_VERSION = 1


class BaselineExample(Strict):
    id: str
    scores: dict[str, float]
    output_sha256: str


class Baseline(Strict):
    format: Literal["ladder-baseline"] = BASELINE_FORMAT
    version: int = BASELINE_VERSION
    task_name: str
    rung: str
    rung_type: str
    settings: dict[str, Any]
    split: Literal["dev", "test"]
    metric: str  # the metric gated by default (the task's target metric)
    metrics: list[str]
    data_hashes: dict[str, str]
    limit: int | None
    model: ModelIdentity
    ladder_version: str
    run_id: str
    created: str
    examples: list[BaselineExample] = Field(min_length=1)
    judges: dict[str, str] = {}  # judge metrics: who graded them, by which options (judge_keys); a gate needs the same


def judge_keys(run: AssessmentRun) -> dict[str, str]:
    """Per judge metric of a run: the judge's identity and a hash of its options (rubric, scale, mode...). Judged
    scores compare only under the same judge and rubric."""
    options = {m.name: m.options for m in run.spec.metrics}
    return {
        metric: f"{summary.judge}; options {hashlib.sha256(json.dumps(options.get(metric), sort_keys=True).encode()).hexdigest()[:12]}"
        for metric, summary in run.judges.items()
    }


def output_hash(record: ExampleRecord) -> str:
    answers = record.samples or [record.output]
    return hashlib.sha256(json.dumps(answers, ensure_ascii=False).encode()).hexdigest()


def find_rung(run: AssessmentRun, name: str, source: str) -> RungResult:
    result = run.rung(name)
    if result is None:
        measured = ", ".join(r.name for r in run.rungs) or "none"
        raise LadderError(f"{source}: rung {name!r} was not measured in run {run.run_id} (measured: {measured})")
    return result


def make_baseline(run: AssessmentRun, rung: str, split: str = "test", source: str = "run") -> Baseline:
    result = find_rung(run, rung, source)
    examples = [r for r in result.examples if r.split == split]
    if not examples:
        raise LadderError(f"{source}: rung {rung!r} has no {split} examples")
    return Baseline(
        task_name=run.task_name,
        rung=rung,
        rung_type=result.type,
        settings=result.settings,
        split=split,  # type: ignore[arg-type]
        metric=run.target.metric,
        metrics=run.spec.metric_names,
        data_hashes=run.data_hashes,
        limit=run.limit,
        model=run.model,
        ladder_version=ladder.__version__,
        run_id=run.run_id,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        examples=[BaselineExample(id=r.id, scores=r.scores, output_sha256=output_hash(r)) for r in examples],
        judges=judge_keys(run),
    )


def save_baseline(baseline: Baseline, path: Path) -> None:
    atomic_write_text(path, baseline.model_dump_json(indent=1) + "\n")


Document = TypeVar("Document", bound=Strict)


def load_document(path: str | Path, model: type[Document], what: str, made_by: str) -> Document:
    """A versioned JSON document of the gate's (``format`` and ``version`` fields): anything else is one line."""
    path = Path(path)
    raw = read_json(path, what)
    fmt, version = model.model_fields["format"].default, model.model_fields["version"].default
    if not isinstance(raw, dict) or raw.get("format") != fmt:
        raise LadderError(f"{path}: not a ladder {what} ({made_by} writes one)")
    if raw.get("version") != version:
        raise LadderError(f"{path}: {what} version {raw.get('version')!r} is not {version}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise LadderError(validation_problems(exc, str(path))[0]) from None


def load_baseline(path: str | Path) -> Baseline:
    return load_document(path, Baseline, "baseline file", "`ladder baseline RUN --rung NAME --to FILE`")
