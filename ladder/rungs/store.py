"""The training store: each finished training's artifact and record in ``$LADDER_HOME/training/<key>``, keyed by
what determines it (the base model's content, the formatted data, settings, seed, where it ran). ``result.json``
is written last, once the artifact is whole: its presence means "finished". It is a versioned, typed document
(``StoredTraining``); an entry written before it was versioned is read as version 0."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from ladder.backends.base import Artifact
from ladder.errors import LadderError, problem
from ladder.fileio import atomic_write_text, read_json
from ladder.record import TrainingRecord
from ladder.spec import AdapterSettings, Strict

RESULT = "result.json"
STORE_FORMAT = "ladder-training"
STORE_VERSION = 1


class StoredArtifact(Strict):
    kind: Literal["adapter", "model"]
    folder: str  # the artifact's folder name inside the store entry
    sha256: str
    bytes: int
    rank: int | None = None
    quantized: bool = False


class StoredTraining(Strict):
    format: Literal["ladder-training"] = STORE_FORMAT
    version: int = STORE_VERSION
    training: TrainingRecord  # artifact and checkpoint_dir point into the store; reused False
    artifact: StoredArtifact


def save_finished(work: Path, training: TrainingRecord, artifact: Artifact) -> None:
    stored = StoredArtifact(
        kind=artifact.kind,
        folder=artifact.path.name,
        sha256=artifact.sha256,
        bytes=artifact.bytes,
        rank=artifact.rank,
        quantized=artifact.quantized,
    )
    atomic_write_text(work / RESULT, StoredTraining(training=training, artifact=stored).model_dump_json(indent=1))


def load_finished(work: Path) -> tuple[TrainingRecord, Artifact] | None:
    """A finished training in the store, if there is one whose artifact is still whole."""
    if not (work / RESULT).is_file():
        return None
    raw = read_json(work / RESULT, "finished training")
    if not isinstance(raw, dict):
        raise LadderError(f"{work / RESULT}: not a finished training")
    try:
        stored = StoredTraining.model_validate(raw if "version" in raw else _from_version_0(raw, work))
    except (ValidationError, KeyError, TypeError) as exc:  # a damaged entry: say which, do not guess
        detail = ": ".join(problem(exc.errors()[0])) if isinstance(exc, ValidationError) else repr(exc)
        raise LadderError(
            f"{work / RESULT}: not a finished training ({detail}); remove the folder to train again"
        ) from None
    folder = work / stored.artifact.folder
    if not folder.is_dir():
        return None
    a = stored.artifact
    return stored.training, Artifact(a.kind, folder, a.sha256, a.bytes, a.rank, a.quantized)


def _from_version_0(raw: dict[str, Any], work: Path) -> dict[str, Any]:
    """An entry written before the store was versioned: the training's outcome without its artifact fields."""
    artifact = raw["artifact"]
    training = {
        **raw["training"],
        "artifact": str(work / artifact["folder"]),
        "artifact_bytes": artifact["bytes"],
        "artifact_sha256": artifact["sha256"],
        "checkpoint_dir": str(work),
    }
    return {"format": STORE_FORMAT, "version": STORE_VERSION, "training": training, "artifact": artifact}


def dir_digest(folder: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(data).digest())
        size += len(data)
    return digest.hexdigest(), size


def canonical_adapter_config(folder: Path) -> None:
    """peft writes ``target_modules`` from a set, in an order that changes with each process's hash seed:
    the same adapter would get another hash in every run. Sorted, the same weights give the same bytes."""
    path = folder / "adapter_config.json"
    config = json.loads(path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def save_artifact(model, rung, hf, work: Path, weights: dict | None = None) -> Artifact:
    """The trained weights as a folder any backend loads: the adapter (LoRA), or the model with its
    tokenizer (full), written in ``work`` and swapped in whole. ``weights``: the whole weights of a model whose
    own are sharded (gathered by the training loop), saved in place of its own."""
    lora = isinstance(rung, AdapterSettings)
    folder = work / ("adapter" if lora else "model")
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, **({} if weights is None else {"state_dict": weights}))
    if lora:
        canonical_adapter_config(tmp)
    else:
        hf.tokenizer.save_pretrained(tmp)
    digest, size = dir_digest(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    rank = adapter_rank(folder) if lora else None
    return Artifact(
        "adapter" if lora else "model", folder, digest, size, rank, lora and getattr(rung, "quantize", "none") != "none"
    )


def adapter_rank(folder: Path) -> int:
    """The saved adapter's rank (a preference rung started from a lora rung's adapter keeps that one's)."""
    return int(json.loads((folder / "adapter_config.json").read_text())["r"])


def copy_into(source: Path, dest: Path) -> None:
    """The run folder's own copy of an artifact: hard links where the file system allows, else copies."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, copy_function=link_or_copy)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


def link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
