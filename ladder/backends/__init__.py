"""Backends turn rendered prompts into outputs and serve trained artifacts. Each is imported by name,
lazily, so that `import ladder` (and the scripted backend) stays free of torch and vllm."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ladder.backends.base import Backend
from ladder.registry import Registry

# name -> factory(model_name, base_dir, serving=ServingSpec | None, batch_size=..., **options)
BACKENDS: Registry[Callable[..., Backend]] = Registry("backend")


def _dtype(serving) -> str | None:
    return None if serving is None or serving.dtype == "auto" else serving.dtype


@BACKENDS.register("transformers")
def _transformers(model: str, base_dir=None, serving=None, labels=None, lora_ranks=(), **options) -> Backend:
    from ladder.extras import require

    require(["local"], "the transformers backend")
    from ladder.backends.hf.transformers import TransformersBackend

    return TransformersBackend.from_spec(
        model, base_dir=base_dir, dtype=options.pop("dtype", _dtype(serving)), **options
    )


@BACKENDS.register("vllm")
def _vllm(model: str, base_dir=None, serving=None, labels=None, lora_ranks=(), **options) -> Backend:
    """One in-process engine for the whole assessment; LoRA slots sized from the lora rungs to come."""
    from ladder.extras import require

    require(["local"], "the vllm backend")
    from ladder.backends.vllm import VLLMBackend, lora_rank_slot

    engine = {}
    if serving is not None:
        engine = dict(
            gpu_memory_utilization=serving.gpu_memory_utilization,
            max_model_len=serving.max_model_len,
            tensor_parallel_size=serving.tensor_parallel_size,
            enforce_eager=serving.enforce_eager,
            kv_cache_gb=serving.kv_cache_gb,
        )
    if lora_ranks:
        engine.update(max_lora_rank=lora_rank_slot(max(lora_ranks)), max_loras=len(lora_ranks))
    return VLLMBackend.from_spec(
        model, base_dir=base_dir, dtype=options.pop("dtype", _dtype(serving)), **engine, **options
    )


@BACKENDS.register("openai")
def _openai(model: str, base_dir=None, serving=None, labels=None, lora_ranks=(), base_url=None, **options) -> Backend:
    from ladder.backends.openai import OpenAIBackend

    return OpenAIBackend.from_spec(
        model, base_dir=base_dir, serving=serving, base_url=base_url, batch_size=options.get("batch_size", 8)
    )


@BACKENDS.register("scripted")
def _scripted(model: str, base_dir=None, serving=None, labels=None, lora_ranks=(), **options) -> Backend:
    """Deterministic, no model: answers with a label named in the input, else 'unknown' (for smoke tests)."""
    from ladder.backends.scripted import ScriptedBackend

    return ScriptedBackend(labels=labels)


def resolve_backend_name(name: str | None) -> str:
    """``auto`` (or nothing): vllm where CUDA and vllm are both present, else transformers."""
    if name not in (None, "auto"):
        return name
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        from ladder.backends.hardware import cuda_available

        if cuda_available():
            return "vllm"
    return "transformers"


def create_backend(name: str, model: str, base_dir=None, **options) -> Backend:
    return BACKENDS.get(resolve_backend_name(name))(model, base_dir=base_dir, **options)


@contextmanager
def open_backend(name: str, model: str, base_dir=None, **options) -> Iterator[Backend]:
    """``create_backend`` for the work inside the ``with``, closed after it however the work ends."""
    backend = create_backend(name, model, base_dir=base_dir, **options)
    try:
        yield backend
    finally:
        backend.close()
