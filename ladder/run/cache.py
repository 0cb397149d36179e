"""The result cache: model outputs keyed by everything that determines them.

Key = sha256 of (ladder version, backend identity: model and tokenizer hashes, dtype, device, library
versions; the rendered prompts; the rendered label completions; generation settings; the example ids).
Values are model outputs and the wall time measured when they were computed; scores are recomputed
from the outputs on every run, so a metric fix never serves stale scores.

While a split is being computed, each finished batch is written at once (atomically, fsync'd) under
``<key>.partial/``: a run killed mid-split resumes from its finished batches, and the whole entry
replaces them when the split completes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ladder.fileio import atomic_write_text


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
        shutil.rmtree(self._partial(key), ignore_errors=True)

    # -- an unfinished split, batch by batch ------------------------------------------------------
    def _partial(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.partial"

    def batches(self, key: str) -> list[dict]:
        """The finished batches of an unfinished split (each as given to ``put_batch``); unreadable ones
        (there should be none: writes are atomic) are skipped and recomputed."""
        if not self.enabled:
            return []
        found = []
        for path in sorted(self._partial(key).glob("batch-*.json")):
            try:
                found.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
        return found

    def put_batch(self, key: str, first: int, value: dict) -> None:
        if self.enabled:
            atomic_write_text(self._partial(key) / f"batch-{first:08d}.json", json.dumps(value))


def figure_cache(enabled: bool = True) -> ResultCache:
    """The report's drawn figures (``report.plots.drawn``), beside the model outputs: an unchanged re-run draws none."""
    from ladder.paths import result_cache_dir

    return ResultCache(result_cache_dir() / "figures", enabled=enabled)
