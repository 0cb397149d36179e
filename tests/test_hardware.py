"""dtype: auto follows what the processor does natively (no model needed)."""

from __future__ import annotations

import pytest

from ladder.backends import hardware


AVX2_ONLY = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx fma avx2\n\nprocessor\t: 1\n"
AVX512_BF16 = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_bf16 avx512_vnni\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n"


def test_cpu_flags_reads_the_first_processor():
    assert hardware.cpu_flags(AVX2_ONLY) == {"fpu", "sse2", "avx", "fma", "avx2"}
    assert hardware.cpu_flags(AVX512_BF16) & hardware.BF16_FLAGS == {"avx512_bf16"}
    assert hardware.cpu_flags(ARM) & hardware.BF16_FLAGS == {"bf16"}
    assert hardware.cpu_flags("") == set()


@pytest.mark.parametrize("forced, cpu", [("0", "float32"), ("1", "bfloat16")])
def test_auto_dtype(monkeypatch, forced, cpu):
    monkeypatch.setenv("LADDER_CPU_BF16", forced)
    hardware.cpu_has_native_bf16.cache_clear()
    try:
        assert hardware.auto_dtype("cpu") == cpu
        assert hardware.auto_dtype("cuda:0") == "bfloat16"
        assert hardware.train_precision("cpu") == ("bf16-autocast" if forced == "1" else "fp32")
    finally:
        hardware.cpu_has_native_bf16.cache_clear()


def test_auto_dtype_follows_proc_cpuinfo(monkeypatch, tmp_path):
    monkeypatch.delenv("LADDER_CPU_BF16", raising=False)
    monkeypatch.setattr(hardware.platform, "system", lambda: "Linux")
    for text, expected in ((AVX2_ONLY, "float32"), (AVX512_BF16, "bfloat16")):
        fake = tmp_path / "cpuinfo"
        fake.write_text(text)
        real_path = hardware.Path
        monkeypatch.setattr(hardware, "Path", lambda p: fake if p == "/proc/cpuinfo" else real_path(p))
        hardware.cpu_has_native_bf16.cache_clear()
        assert hardware.auto_dtype("cpu") == expected
    hardware.cpu_has_native_bf16.cache_clear()
