"""A Hugging Face model folder as the rest of ladder needs it: its tokenizer, how a prompt becomes token
ids, the formatter of its chat template, and its weights loaded on request.

Every backend that serves a local model (transformers, vllm, and openai where the task's model is a
local folder) and the training rungs use this one loader, so a prompt is tokenized the same way
wherever it goes, and training never reaches into a backend.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ladder.backends.base import ChatFormatter, Formatter, PlainFormatter, Prompt
from ladder.backends.models import ALIASES, ModelRef, locate_alias_gguf
from ladder.errors import LadderError
from ladder.fileio import cached_file_hash
from ladder.paths import legacy_dir, model_dir


def quiet_transformers() -> None:
    """Progress bars and advisory warnings from transformers would drown ladder's own output."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def materialize_gguf(gguf: Path, dest_root: Path | None = None) -> Path:
    """Dequantize a GGUF once into a safetensors folder; later calls return the folder at once."""
    dest_root = dest_root or model_dir()
    key = f"{gguf.stem}-{cached_file_hash(gguf)[:12]}"
    dest = dest_root / key
    if (dest / "config.json").is_file():
        return dest
    old = legacy_dir("models")
    if old is not None and dest_root == model_dir() and (old / key / "config.json").is_file():
        dest_root.mkdir(parents=True, exist_ok=True)
        try:  # made by ladder < 0.2.0 in ./.ladder/models: moved into the user cache, not made again
            os.replace(old / key, dest)
            return dest
        except OSError:  # on another filesystem: used where it is
            return old / key
    from ladder.extras import require

    require(["local"], f"materializing {gguf.name} into {dest_root}, once")
    dest_root.mkdir(parents=True, exist_ok=True)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    tmp = Path(tempfile.mkdtemp(dir=dest_root, prefix=f".{key}."))
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    from ladder import progress

    own_bar = gguf_utils.tqdm  # transformers' own tqdm bar for the conversion joins ladder's display instead
    gguf_utils.tqdm = lambda items, desc="", **_: progress.iterate(
        items, f"[{gguf.name}] de-quantizing tensors", unit="tensor"
    )
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        if _gguf_adds_bos(gguf) and not getattr(tokenizer, "add_bos_token", True):
            # transformers' GGUF loader drops tokenizer.ggml.add_bos_token (Gemma 3's is true): without its
            # <bos> the model is broken (loss ~10 nats); set on the saved tokenizer, every backend adds it
            tokenizer.add_bos_token = True
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


def _gguf_adds_bos(gguf: Path) -> bool:
    """What the GGUF's own metadata says of a beginning-of-sequence token (``tokenizer.ggml.add_bos_token``)."""
    from gguf import GGUFReader

    field = GGUFReader(gguf).fields.get("tokenizer.ggml.add_bos_token")
    return bool(field.contents()) if field is not None else False


def resolve_model(name: str, base_dir: Path | None = None) -> ModelRef:
    """Turn ``task.model`` into a local folder (materializing a GGUF once)."""
    if name in ALIASES:
        gguf = locate_alias_gguf(name, model_dir() / "gguf")
        return ModelRef(name, materialize_gguf(gguf), str(gguf))
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = (base_dir / path).resolve()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise LadderError(f"model: GGUF file not found: {path}")
        return ModelRef(name, materialize_gguf(path), str(path))
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / "tokenizer.json").is_file():
            raise LadderError(
                f"model: {path} has neither config.json nor tokenizer.json (not a Hugging Face model or tokenizer folder)"
            )
        return ModelRef(name, path, str(path))
    known = ", ".join(sorted(ALIASES))
    raise LadderError(f"model: {name!r} is neither a known alias ({known}), a .gguf file, nor a model folder")


class HFModel:
    """A model folder's text side read light (``tokens.FolderTokenizer``: no torch, no transformers) where the folder
    allows, transformers' tokenizer where it does not; ``tokenizer`` (transformers', for decoding and saving) and the
    weights load when first asked for, so a run whose outputs are all cached loads neither."""

    def __init__(self, ref: ModelRef):
        from ladder.backends.hf.tokens import FolderTokenizer

        self.ref = ref
        self._tokenizer = None
        self.light = FolderTokenizer.open(ref.path)
        # a tokenizer-only folder (a served model's) has no config.json: the server says what fits
        config = json.loads((ref.path / "config.json").read_text()) if (ref.path / "config.json").is_file() else {}
        self.max_context: int | None = config.get("max_position_embeddings")
        if self.light is not None:
            self.bos_token_id = self.light.token_id("bos_token")
            self.eos_token_id = self.light.token_id("eos_token")
            self.pad_token_id = self.light.token_id("pad_token")
            self.bos_token = self.light.special_tokens.get("bos_token")
            self.eos_token = self.light.special_tokens.get("eos_token")
            self.chat_template = self.light.chat_template
            self._adds_bos = self.light.adds_bos()
        else:
            from ladder.extras import require

            require(["local"], f"the tokenizer of {ref.path}: no tokenizer.json, or options only transformers reads")
            tokenizer = self.tokenizer
            self.bos_token_id, self.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
            self.pad_token_id, self.bos_token, self.eos_token = (
                tokenizer.pad_token_id,
                tokenizer.bos_token,
                tokenizer.eos_token,
            )
            self.chat_template = tokenizer.chat_template
            probe = tokenizer("a").input_ids
            self._adds_bos = self.bos_token_id is not None and len(probe) > 0 and probe[0] == self.bos_token_id

    @property
    def tokenizer(self):
        """transformers' tokenizer of the folder (decoding, saving with a trained model), loaded on first use."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            quiet_transformers()
            self._tokenizer = AutoTokenizer.from_pretrained(self.ref.path)
        return self._tokenizer

    @property
    def pad_id(self) -> int:
        if self.pad_token_id is not None:
            return self.pad_token_id
        return self.eos_token_id if self.eos_token_id is not None else 0

    def _ids(self, text: str) -> list[int]:
        if self.light is not None:
            return self.light.encode(text)
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def encode(self, prompt: Prompt) -> list[int]:
        """A whole prompt: the beginning-of-sequence token added where the tokenizer adds one and the
        rendered text does not already hold it."""
        if not isinstance(prompt, str):
            return list(prompt)
        ids = self._ids(prompt)
        bos = self.bos_token_id
        if self._adds_bos and (not ids or ids[0] != bos) and not prompt.startswith(self.bos_token or "\0"):
            ids = [bos] + ids
        return ids

    def encode_continuation(self, text: str) -> list[int]:
        """Text that follows a prompt (an answer, a label): no special tokens added."""
        return self._ids(text)

    def count_continuation(self, text: str) -> int:
        """Tokens of text that follows a prompt (how every backend counts a generated answer it cut)."""
        return len(self.encode_continuation(text))

    def formatter(self, format: str) -> Formatter:
        if format == "plain" or (format == "auto" and not self.chat_template):
            return PlainFormatter()
        if not self.chat_template:
            raise LadderError(f"model {self.ref.name!r} has no chat template: set prompt.format: plain")
        end = self.eos_token or ""
        light = self.light

        def apply(messages, add_generation_prompt: bool) -> str:
            if light is not None:
                return light.apply_chat_template(messages, add_generation_prompt)
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=add_generation_prompt
            )

        return ChatFormatter(apply, end)

    def check_fits(self, prompt_tokens: int, extra: int) -> None:
        if self.max_context and prompt_tokens + extra > self.max_context:
            raise LadderError(
                f"a prompt of {prompt_tokens} tokens plus {extra} for the answer exceeds the context of "
                f"{self.ref.name!r} ({self.max_context} tokens): use fewer demonstrations or a smaller context_tokens"
            )

    def load(self, dtype, device: str, path=None, attn_implementation: str | None = None):
        """The causal LM (the base weights, or another folder of the same architecture: a full fine-tune)."""
        from transformers import AutoModelForCausalLM

        quiet_transformers()
        options = {"attn_implementation": attn_implementation} if attn_implementation else {}
        model = AutoModelForCausalLM.from_pretrained(path or self.ref.path, dtype=dtype, **options)
        return model.to(device)

    def load_4bit(self, device: str, what: str):
        """The base weights in 4-bit NF4 (QLoRA), on a CUDA GPU."""
        return load_4bit(self.ref.path, device, what)

    def content_identity(self) -> dict:
        """What the base model is (weights, tokenizer, config hashes), not where its files are: training store keys."""
        from ladder.backends.models import content_identity, model_identity

        return content_identity(model_identity(self.ref))


def load_4bit(path, device: str, what: str):
    """QLoRA: a base model in 4-bit NF4 (bitsandbytes) with bf16 compute, on a CUDA GPU."""
    import importlib.util

    import torch

    if not str(device).startswith("cuda"):
        raise LadderError(f"{what}: quantize: 4bit (QLoRA) needs a CUDA GPU; this machine has none")
    if importlib.util.find_spec("bitsandbytes") is None:
        from ladder.errors import MissingDependency

        raise MissingDependency(f"bitsandbytes (for {what}, quantize: 4bit)", "pip install bitsandbytes")
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quiet_transformers()

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
    return AutoModelForCausalLM.from_pretrained(path, quantization_config=quant, device_map={"": device})
