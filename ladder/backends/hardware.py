"""What the processor can do natively, and the precision ``dtype: auto`` picks.

``auto`` is bf16 on CUDA and fp32 on every CPU, measured, not assumed:
- bf16 pays on a CPU only where the instruction set has bf16 dot products (x86 ``avx512_bf16`` or
  ``amx_bf16``; Arm ``bf16``): there a bf16 matmul ran ~2.6x the fp32 rate (AMD EPYC with avx512_bf16).
  Without them torch emulates bf16: a decoder layer's matmuls ran 3-7x *slower* than fp32, and few-shot
  generation on us-address 2x slower (AVX2-only EPYC, 2026-11-26).
- Its answers are not fp32's: label predictions of SmolLM2-135M on 100 SNIPS test examples in bf16
  weights agreed with fp32 on 92/100 (zero-shot) and 97/100 (8-shot); with only the linear layers in
  bf16 (fp32 residual stream, norms and softmax) 94/100 zero-shot. A small model's label log-likelihoods
  are close together, and bf16 moves them past each other. ladder's bar for a silent default is 99/100.
So bf16 on a CPU is the user's explicit choice (``serving.dtype: bfloat16``), and ladder says when the
processor would only emulate it.
"""

from __future__ import annotations

import functools
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


def auto_dtype(device: str) -> str:
    """The weights' precision ``dtype: auto`` means on this device (see the module's text)."""
    return "bfloat16" if str(device).startswith("cuda") else "float32"


def emulation_warning(dtype: str, device: str) -> str | None:
    """A one-line warning when a half-precision dtype was asked for on a CPU that would only emulate it."""
    if str(device).startswith("cuda") or dtype not in ("bfloat16", "float16") or cpu_has_native_bf16():
        return None
    return (f"dtype {dtype} on a CPU without native bf16 instructions (no avx512_bf16/amx_bf16 in /proc/cpuinfo): "
            "torch emulates it, 3-7x slower than float32 on the matmuls")
