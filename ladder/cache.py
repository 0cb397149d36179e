"""The result cache: model outputs keyed by everything that determines them.

Key = sha256 of (ladder version, backend identity: model and tokenizer hashes, dtype, device, library
versions; the rendered prompts; the rendered label completions; generation settings; the example ids).
Values are model outputs and the wall time measured when they were computed; scores are recomputed
from the outputs on every run, so a metric fix never serves stale scores.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ladder.fileio import atomic_write_text


def cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class ResultCache:
    def __init__(self, root: Path, enabled: bool = True):
        self.root = root
        self.enabled = enabled

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        if not self.enabled:
            return None
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def put(self, key: str, value: dict) -> None:
        if not self.enabled:
            return
        atomic_write_text(self._path(key), json.dumps(value))
