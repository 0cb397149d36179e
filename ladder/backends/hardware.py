"""What the processor can do natively, and the precision ``dtype: auto`` picks.

``auto`` is fp32 on every CPU, and on CUDA the precision the checkpoint was saved in (bf16 where
config.json does not say), measured, not assumed:
- bf16 pays on a CPU only where the instruction set has bf16 dot products (x86 ``avx512_bf16`` or
  ``amx_bf16``; Arm ``bf16``): there a bf16 matmul ran ~2.6x the fp32 rate (AMD EPYC with avx512_bf16).
  Without them torch emulates bf16: a decoder layer's matmuls ran 3-7x *slower* than fp32, and few-shot
  generation on us-address 2x slower (AVX2-only EPYC, 2026-11-26).
- Its answers are not fp32's: label predictions of SmolLM2-135M on 100 SNIPS test examples in bf16
  weights agreed with fp32 on 92/100 (zero-shot) and 97/100 (8-shot); with only the linear layers in
  bf16 (fp32 residual stream, norms and softmax) 94/100 zero-shot. A small model's label log-likelihoods
  are close together, and bf16 moves them past each other. ladder's bar for a silent default is 99/100.
- Where bf16 is native (avx512_bf16 EPYC, 2 cores, 2026-11-26) it buys little: label scoring 1.56-1.87x
  faster, but 93/100 zero-shot predictions equal to fp32's (99/100 8-shot); ladder's decoding loop no
  faster (3.00 vs 3.19 examples/s: the linear layers halve, the fused attention does not gain); LoRA
  training under bf16 autocast no faster (126 vs 108 s, SNIPS), with the same dev accuracy.
So bf16 on a CPU is the user's explicit choice (``serving.dtype: bfloat16``), and ladder says when the
processor would only emulate it.
- On CUDA (H100, 2026-11-26) the same holds for an fp32 checkpoint such as the bundled one: bf16 weights
  agreed with fp32 on 92/100 and 97/100 label predictions, and ladder's decoding loop ran slower in bf16
  (13.9 examples/s, us-address 8-shot) than in fp32 (20.5): a small model's step is bound by launching
  kernels, and bf16 adds casts. So an fp32 checkpoint runs in fp32, answering as it does on a CPU; a
  checkpoint saved in bf16 or fp16 (most published ones) runs in its own precision, as vLLM's ``auto``
  does, and one whose config.json names none in bf16.
"""

from __future__ import annotations

import functools
import json
import os
import platform
from pathlib import Path

BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})  # x86 (two kinds), aarch64 /proc/cpuinfo "Features"


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of the first processor listed in a /proc/cpuinfo text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


@functools.cache
def cpu_has_native_bf16() -> bool:
    forced = os.environ.get("LADDER_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    if platform.system() == "Linux":
        try:
            return bool(cpu_flags(Path("/proc/cpuinfo").read_text()) & BF16_FLAGS)
        except OSError:
            return False
    return False  # macOS / Windows: no cheap, reliable probe here; fp32 is the safe side


def checkpoint_dtype(folder) -> str | None:
    """The precision a Hugging Face model folder's weights were saved in: config.json's ``dtype``
    (``torch_dtype`` before transformers 5), or None when it names none that ladder serves."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    saved = config.get("dtype") or config.get("torch_dtype")
    return saved if saved in ("float32", "bfloat16", "float16") else None


def auto_dtype(device: str, saved: str | None = None) -> str:
    """The weights' precision ``dtype: auto`` means on this device for a checkpoint saved in ``saved``
    (``checkpoint_dtype``; see the module's text)."""
    if not str(device).startswith("cuda"):
        return "float32"
    return saved or "bfloat16"


def weights_dtype(asked: str | None, device: str, folder, cascade: bool = False) -> str:
    """The precision a backend serves a model folder in: ``asked``, or for ``auto`` (or nothing) what
    ``auto_dtype`` picks for the folder's checkpoint on this device. The transformers and vllm backends both.
    ``cascade`` (label scoring in bf16, re-scored in fp32 where bf16's lead is small) is asked for by name; a
    backend that cannot run it (``cascade=False``) serves float32, whose answers the cascade gives."""
    if asked in (None, "auto"):
        return auto_dtype(device, checkpoint_dtype(folder))
    return "float32" if asked == "cascade" and not cascade else asked


def emulation_warning(dtype: str, device: str) -> str | None:
    """A one-line warning when a half-precision dtype was asked for on a CPU that would only emulate it."""
    if str(device).startswith("cuda") or dtype not in ("bfloat16", "float16") or cpu_has_native_bf16():
        return None
    return (
        f"dtype {dtype} on a CPU without native bf16 instructions (no avx512_bf16/amx_bf16 in /proc/cpuinfo): "
        "torch emulates it, 3-7x slower than float32 on the matmuls"
    )


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU. A CPU-only torch build (its version ends in ``+cpu``) cannot: said without
    importing torch (a second or more), so a command whose every output is cached never loads it."""
    import importlib.metadata

    try:
        if importlib.metadata.version("torch").endswith("+cpu"):
            return False
    except importlib.metadata.PackageNotFoundError:
        return False
    import torch

    return torch.cuda.is_available()


def pick_device(device: str | None) -> str:
    """``None`` or ``"auto"``: CUDA where there is a GPU, else the CPU; any other name as it is."""
    if device in (None, "auto"):
        return "cuda" if cuda_available() else "cpu"
    return device
