"""Backends turn rendered prompts into outputs. Heavy imports happen inside each backend module."""

from __future__ import annotations

from typing import Callable

from ladder.backends.base import Backend
from ladder.registry import Registry

# name -> factory(model_name, base_dir, options) ; imported lazily so that `import ladder` stays light
BACKENDS: Registry[Callable[..., Backend]] = Registry("backend")


@BACKENDS.register("transformers")
def _transformers(model: str, base_dir=None, **options) -> Backend:
    from ladder.backends.hf import TransformersBackend

    return TransformersBackend.from_spec(model, base_dir=base_dir, **options)


@BACKENDS.register("scripted")
def _scripted(model: str, base_dir=None, labels=None, **options) -> Backend:
    """Deterministic, no model: answers with a label named in the input, else 'unknown' (for smoke tests)."""
    from ladder.backends.scripted import ScriptedBackend

    return ScriptedBackend(labels=labels)


def create_backend(name: str, model: str, base_dir=None, **options) -> Backend:
    return BACKENDS.get(name)(model, base_dir=base_dir, **options)
