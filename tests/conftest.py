from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# The materialized bundled model is shared by all tests (made once by `make setup` / `ladder prepare`).
os.environ.setdefault("LADDER_MODEL_DIR", str(ROOT / ".ladder" / "models"))
LABELS = ["weather", "music", "booking"]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Each test gets its own result cache; the materialized model is shared (made once by `make setup`)."""
    monkeypatch.setenv("LADDER_HOME", str(tmp_path / "ladder-home"))
    monkeypatch.setenv("LADDER_MODEL_DIR", os.environ["LADDER_MODEL_DIR"])


def _rows(prefix: str, n: int, offset: int = 0) -> list[dict]:
    words = {"weather": "is it raining in", "music": "play a song by", "booking": "book a table at"}
    rows = []
    for i in range(n):
        label = LABELS[(i + offset) % len(LABELS)]
        rows.append({"id": f"{prefix}-{i}", "text": f"{words[label]} place {prefix} {i}", "label": label})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def base_spec() -> dict:
    return {
        "name": "tiny",
        "data": {
            "train": "train.jsonl",
            "dev": "dev.jsonl",
            "test": "test.jsonl",
            "input_field": "text",
            "target_field": "label",
            "id_field": "id",
        },
        "output": {"kind": "label", "labels": list(LABELS)},
        "metrics": ["accuracy"],
        "target": {"metric": "accuracy", "threshold": 0.9},
        "prompt": {"instruction": "Classify: weather, music or booking.", "input_template": "Text: {input}"},
        "rungs": [{"type": "prompt"}, {"type": "fewshot", "k": 3}],
        "seed": 0,
    }


@pytest.fixture
def make_task(tmp_path):
    """Write a small task folder; returns the task.yaml path. Overrides are merged at the top level."""

    def make(spec_overrides: dict | None = None, train=None, dev=None, test=None, folder: str = "task", corpus=None) -> Path:
        root = tmp_path / folder
        root.mkdir(parents=True, exist_ok=True)
        if corpus is not None:
            write_jsonl(root / "corpus.jsonl", corpus)
        write_jsonl(root / "train.jsonl", train if train is not None else _rows("train", 12))
        write_jsonl(root / "dev.jsonl", dev if dev is not None else _rows("dev", 6, 1))
        write_jsonl(root / "test.jsonl", test if test is not None else _rows("test", 9, 2))
        spec = base_spec()
        spec.update(spec_overrides or {})
        path = root / "task.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        return path

    return make


TINY_CORPUS = [
    {"id": "weather", "text": "Rain, sun and forecasts are weather questions. Is it raining: weather."},
    {"id": "music", "text": "Songs, albums and artists are music requests. Play a song: music."},
    {"id": "booking", "text": "Tables, restaurants and reservations are booking requests. Book a table: booking."},
]


def rag_spec(**rung) -> dict:
    """Spec overrides for a tiny task with a corpus and all rungs, rag included."""
    return {
        "corpus": {"path": "corpus.jsonl", "chunk_size": 32, "chunk_overlap": 4},
        "rungs": [{"type": "prompt"}, {"type": "fewshot", "k": 3}, {"type": "rag", "top_k": 2, **rung}],
    }
