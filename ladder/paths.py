"""Where ladder keeps things outside the repository.

- The user cache (``$XDG_CACHE_HOME/ladder``, else ``~/.cache/ladder``), shared by every project of the user, as
  Hugging Face, pip and torch keep theirs: materialized models (``models/``), retrieval indexes (``indexes/``) and
  corpus embeddings (``embeddings/``): large, and the same whichever project asks.
- ``LADDER_HOME`` (default ``./.ladder``), the project's own: ``results/`` (the model-output cache), ``training/``
  (finished and resumable trainings) and the store lock.
- Overrides: ``LADDER_MODEL_DIR`` for the models alone (tests share one materialized model across throw-away homes);
  a ``LADDER_HOME`` set in the environment keeps everything under it, as before the user cache existed.

Before 0.2.0 models, indexes and embeddings lived in ``./.ladder`` too: a model found there is moved into the user
cache the first time it is asked for (``legacy_dir``; ``ladder cache info`` lists what is left there).
"""

from __future__ import annotations

import os
from pathlib import Path

LEGACY = Path(".ladder")  # where every cache lived before 0.2.0 (relative to the directory a command ran in)


def ladder_home() -> Path:
    return Path(os.environ.get("LADDER_HOME", ".ladder")).expanduser()


def user_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "ladder"


def shared_dir(kind: str) -> Path:
    """``models``, ``indexes`` or ``embeddings``: under ``LADDER_HOME`` where it is set, else in the user cache."""
    return ladder_home() / kind if "LADDER_HOME" in os.environ else user_cache() / kind


def result_cache_dir() -> Path:
    return ladder_home() / "results"


def model_dir() -> Path:
    override = os.environ.get("LADDER_MODEL_DIR")
    return Path(override).expanduser() if override else shared_dir("models")


def legacy_dir(kind: str) -> Path | None:
    """``./.ladder/<kind>`` where a pre-0.2.0 ladder left it and the shared folder is elsewhere; else None."""
    old = LEGACY / kind
    if "LADDER_HOME" in os.environ or os.environ.get("LADDER_MODEL_DIR") or not old.is_dir():
        return None
    return old if old.resolve() != shared_dir(kind).resolve() else None
