"""Rungs build candidates. A rung sees the train split (and dev, for early stopping later), never test."""

from __future__ import annotations

from ladder.registry import Registry
from ladder.rungs.base import BuildContext, Candidate, Demo, Passage, RungBuilder, Selection

RUNGS: Registry[RungBuilder] = Registry("rung")

# Registration happens on import of each rung module (cheap: no heavy imports at module level).
from ladder.rungs import distill as _distill  # noqa: E402,F401
from ladder.rungs import fewshot as _fewshot  # noqa: E402,F401
from ladder.rungs import finetune as _finetune  # noqa: E402,F401
from ladder.rungs import preference as _preference  # noqa: E402,F401
from ladder.rungs import prompt as _prompt  # noqa: E402,F401
from ladder.rungs import rag as _rag  # noqa: E402,F401


def build_candidate(rung_spec, ctx: BuildContext) -> Candidate:
    return RUNGS.get(rung_spec.type)(rung_spec, ctx)


__all__ = ["RUNGS", "BuildContext", "Candidate", "Demo", "Passage", "Selection", "build_candidate"]
