"""What the processor can do natively, and the precision ``dtype: auto`` picks from it.

bf16 pays on a CPU only where the instruction set has bf16 dot products (x86 ``avx512_bf16`` or
``amx_bf16``; Arm ``bf16``): there a bf16 matmul runs ~2.6x the fp32 rate (measured on an AMD EPYC with
avx512_bf16). Without them torch emulates bf16 and a decoder layer's matmuls run 3-7x *slower* than in
fp32 (measured on an AVX2-only EPYC), so ``auto`` must look before it picks. CUDA: bf16, as before.
``LADDER_CPU_BF16=0|1`` overrides the detection (to compare both on one machine).
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
    """The weights' precision ``dtype: auto`` means on this device."""
    if str(device).startswith("cuda"):
        return "bfloat16"
    return "bfloat16" if cpu_has_native_bf16() else "float32"


def train_precision(device: str) -> str:
    """How the training loop runs its forward pass over fp32 master weights: bf16 autocast where bf16 is
    native (CUDA, or a CPU with bf16 dot products), fp32 elsewhere."""
    return "bf16-autocast" if auto_dtype(device) == "bfloat16" else "fp32"
