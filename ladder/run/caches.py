"""What ladder keeps on disk (``ladder cache info``) and removing what no run record refers to (``ladder cache prune``).

Prunable, because a run record names it: a materialized model (by its weights' sha256 or its folder), the GGUF a
kept model was made from, and a finished training (by its artifact's sha256). Kept whatever the records say: a
training that has not finished (its checkpoints resume it), and the model-output cache, retrieval indexes and corpus
embeddings (keyed by content no record names; each is rebuilt on demand, so removing its folder is always safe).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ladder.errors import LadderError
from ladder.fileio import hash_files
from ladder.paths import ladder_home, legacy_dir, model_dir, result_cache_dir, shared_dir
from ladder.record import AssessmentRun, load_run
from ladder.rungs.store import RESULT, load_finished


@dataclass
class Entry:
    path: Path
    bytes: int
    what: str  # one line: what it is
    referred: bool | None = None  # by a run record; None: not a thing records name (never pruned)


@dataclass
class Area:
    name: str
    path: Path
    entries: list[Entry] = field(default_factory=list)
    note: str = ""
    listed: bool = True  # entries worth a line each (not the result cache's key-prefix folders)

    @property
    def bytes(self) -> int:
        return sum(e.bytes for e in self.entries)


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def find_records(folders: list[Path]) -> list[tuple[Path, AssessmentRun]]:
    """Every run record under the folders (``run.json``, and records kept under other names like
    reports/records/*.json); other JSON files (baselines, migrations, caches) are passed over."""
    found = []
    for folder in folders:
        candidates = [folder] if folder.is_file() else sorted(folder.rglob("*.json"))
        for path in candidates:
            if path.name.startswith(".") or "ladder_version" not in _head(path):
                continue
            try:
                found.append((path, load_run(path)))
            except LadderError:
                continue
    return found


def _head(path: Path, chars: int = 2000) -> str:
    """A file's first characters (a run record names its ladder_version there), not the whole file."""
    with path.open(encoding="utf-8", errors="replace") as f:
        return f.read(chars)


def _referred(records: list[AssessmentRun]) -> tuple[set[str], set[str], set[str]]:
    """(model weight hashes, model folders, training artifact hashes) the records name."""
    weights, folders, artifacts = set(), set(), set()
    for run in records:
        weights.add(run.model.weights_sha256)
        if run.model.path:
            folders.add(str(Path(run.model.path).resolve()))
        for rung in run.rungs:
            if rung.training is not None and rung.training.artifact_sha256:
                artifacts.add(rung.training.artifact_sha256)
    return weights, folders, artifacts


def survey(records: list[AssessmentRun] | None) -> list[Area]:
    """Each area ladder keeps, its entries and sizes; ``referred`` filled in where ``records`` are given."""
    weights, folders, artifacts = _referred(records or [])
    known = records is not None
    areas = []

    models = Area("models", model_dir(), note="materialized models (shared by every project of this user)")
    kept_stems = []
    if models.path.is_dir():
        for folder in sorted(p for p in models.path.iterdir() if p.is_dir() and (p / "config.json").is_file()):
            files = [p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file()]
            sha = hash_files(files) if files else ""
            referred = (sha in weights or str(folder.resolve()) in folders) if known else None
            if referred is not False:
                kept_stems.append(folder.name)
            models.entries.append(Entry(folder, size_of(folder), f"model, weights sha256 {sha[:12]}", referred))
        for gguf in sorted((models.path / "gguf").glob("*.gguf")):
            referred = any(stem.startswith(gguf.stem + "-") for stem in kept_stems) if known else None
            models.entries.append(Entry(gguf, size_of(gguf), "GGUF assembled from its packages", referred))
    areas.append(models)

    training = Area("training", ladder_home() / "training", note="finished and resumable trainings (this project)")
    if training.path.is_dir():
        for work in sorted(p for p in training.path.iterdir() if p.is_dir()):
            try:
                finished = load_finished(work) if (work / RESULT).is_file() else None
            except LadderError:
                finished = None
            if finished is None:
                training.entries.append(Entry(work, size_of(work), "unfinished: its checkpoints resume it", None))
                continue
            record, artifact = finished
            referred = (artifact.sha256 in artifacts) if known else None
            what = f"{artifact.kind} of {record.steps} steps, sha256 {artifact.sha256[:12]}"
            training.entries.append(Entry(work, size_of(work), what, referred))
    areas.append(training)

    for name, path, note in (
        ("results", result_cache_dir(), "model outputs and kept checks, by content (this project)"),
        ("indexes", shared_dir("indexes"), "retrieval indexes, by corpus and embedder"),
        ("embeddings", shared_dir("embeddings"), "corpus embeddings, by corpus and embedder"),
    ):
        area = Area(name, path, note=note, listed=name == "indexes")
        if path.is_dir():
            area.entries = [Entry(p, size_of(p), name) for p in sorted(path.iterdir())]
        areas.append(area)

    for kind in ("models", "indexes", "embeddings"):
        old = legacy_dir(kind)
        if old is not None:
            area = Area(
                f"{kind} (before 0.2.0)", old, note=f"left by ladder < 0.2.0; {kind} now live in {shared_dir(kind)}"
            )
            area.entries = [Entry(p, size_of(p), "legacy", None) for p in sorted(old.iterdir())]
            areas.append(area)
    return areas


def prune(record_folders: list[Path], dry_run: bool = False) -> tuple[list[Entry], int]:
    """Remove every model, GGUF and finished training that no run record under ``record_folders`` names; returns
    what was (or, with ``dry_run``, would be) removed and the number of records read."""
    records = find_records([f for f in record_folders if f.exists()])
    if not records:
        shown = ", ".join(str(f) for f in record_folders)
        raise LadderError(
            f"--runs: no run records under {shown}: every model and training would go; name the folders that hold "
            "your runs (e.g. --runs runs --runs reports/records)"
        )
    removed = [e for area in survey([r for _, r in records]) for e in area.entries if e.referred is False]
    if not dry_run:
        for entry in removed:
            if entry.path.is_dir():
                shutil.rmtree(entry.path)
            else:
                entry.path.unlink(missing_ok=True)
    return removed, len(records)
