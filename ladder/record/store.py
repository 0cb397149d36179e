"""Saving and loading the run record (``run.json``): everything a report or a gate needs, and nothing else is read.

Saved atomically after every rung, so an interrupted run keeps what it measured. ``schema_version``
changes whenever a field changes meaning; older records are migrated on load (``MIGRATIONS``), so a
committed baseline or example report survives the next schema change; a newer one is a clear error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ladder.errors import LadderError, validation_problems
from ladder.fileio import atomic_write_text, read_json
from ladder.record.run import SCHEMA_VERSION, AssessmentRun


def save_run(run: AssessmentRun, path: Path) -> None:
    atomic_write_text(path, run.model_dump_json(indent=1) + "\n")


def _v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """v1 kept one comparison per metric against the previous rung, a decision without a status, and
    decided on the dev mean, climbing whatever the interval (the policy it ran, written into its spec)."""
    from ladder.spec import CostSpec, PolicySpec

    raw["spec"].setdefault("policy", PolicySpec(confidence="point", inconclusive="climb").model_dump(mode="json"))
    raw["spec"].setdefault("cost", CostSpec().model_dump(mode="json"))
    for rung in raw.get("rungs", []):
        for split in rung.get("splits", {}).values():
            old = split.get("comparisons") or {}
            split["comparisons"] = [{**cmp, "metric": metric} for metric, cmp in old.items()]
            split.setdefault("latency_p50_s", split.get("latency_s_per_example", 0.0))
            split.setdefault("latency_p95_s", split.get("latency_s_per_example", 0.0))
        decision = rung["decision"]
        if "status" not in decision:
            measured = "gap is measured" in decision.get("reason", "")
            decision["status"] = "meets" if decision.get("meets_target") else ("gap" if measured else "inconclusive")
    return raw


def _v2_to_v3(raw: dict[str, Any]) -> dict[str, Any]:
    """v3 typed the record's loose parts (spec, target, model identity, training). Fields a v2 record
    could lack: a training's reuse flag, artifact hash and store entry (added during v2)."""
    for rung in raw.get("rungs", []):
        training = rung.get("training")
        if training:
            training.setdefault("reused", False)
            training.setdefault("artifact_sha256", "")
            training.setdefault("checkpoint_dir", "")
    return raw


# version -> function turning a record of that version into the next one
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2, 2: _v2_to_v3}


def migrate(raw: dict[str, Any], source: str) -> dict[str, Any]:
    version = raw.get("schema_version")
    if not isinstance(version, int) or version < 1 or version > SCHEMA_VERSION:
        raise LadderError(
            f"{source}: schema_version {version!r} is not one this ladder reads (1 to {SCHEMA_VERSION}; "
            "a newer record needs a newer ladder)"
        )
    while version < SCHEMA_VERSION:
        raw = MIGRATIONS[version](raw)
        version += 1
        raw["schema_version"] = version
    return raw


def load_run(path: str | Path) -> AssessmentRun:
    path = Path(path)
    if path.is_dir():
        path = path / "run.json"
    raw = read_json(path, "run record")
    if not isinstance(raw, dict):
        raise LadderError(f"{path}: not a run record (expected a JSON object)")
    raw = migrate(raw, str(path))
    try:
        return AssessmentRun.model_validate(raw, context={"record": True})
    except ValidationError as exc:
        raise LadderError(validation_problems(exc, str(path))[0]) from None
