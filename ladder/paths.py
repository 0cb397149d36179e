"""Where ladder keeps things outside the repository: result cache and materialized models.

``LADDER_HOME`` (default ``./.ladder``) holds ``results/`` (the model-output cache) and ``models/``
(models materialized from GGUF). ``LADDER_MODEL_DIR`` overrides the models folder alone, so tests can
use a throw-away result cache while sharing one materialized model.
"""

from __future__ import annotations

import os
from pathlib import Path


def ladder_home() -> Path:
    return Path(os.environ.get("LADDER_HOME", ".ladder")).expanduser()


def result_cache_dir() -> Path:
    return ladder_home() / "results"


def model_dir() -> Path:
    override = os.environ.get("LADDER_MODEL_DIR")
    return Path(override).expanduser() if override else ladder_home() / "models"
