"""What every benchmark shares: the repository on the import path, the materialized model cache, the shipped tasks,
and a one-line description of the machine it ran on (figures are only comparable side by side, on one machine).

Each benchmark runs as ``python bench/NAME.py`` (its folder is on the import path) and starts with
``from _common import ROOT``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from ladder.paths import model_dir  # noqa: E402  (the repository is on the path from here)

os.environ.setdefault("LADDER_MODEL_DIR", str(model_dir()))  # the model materialized by `make setup` (user cache)

TASKS = ROOT / "tasks"
SNIPS = TASKS / "snips-intent" / "task.yaml"
QUIZ = TASKS / "quiz-facts" / "task.yaml"
ADDRESS = TASKS / "us-address" / "task.yaml"


def machine() -> str:
    """The processor and the flags that decide CPU speed here (avx512f, avx512_bf16, amx_bf16), for every table."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")), "?")
    have = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
    return (
        f"processor: {model}; {os.cpu_count()} CPUs; flags: {', '.join(have) or 'none of avx512f/avx512_bf16/amx_bf16'}"
    )
