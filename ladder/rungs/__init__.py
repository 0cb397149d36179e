"""Rungs build candidates. A rung sees the train split (and dev, for early stopping), never test, and never a
backend: what it needs from the run it asks its ``BuildContext`` for.

``RUNGS`` is the one table of rung kinds and their builders (the facts about each kind, such as its order and
whether it trains, are ``spec.rungs.RUNG_KINDS``)."""

from __future__ import annotations

from ladder.registry import Registry
from ladder.rungs import continued, distill, fewshot, finetune, preference, prompt, rag
from ladder.rungs.base import (
    BuildContext,
    Candidate,
    Demo,
    Passage,
    RungBuilder,
    Selection,
)

RUNGS: Registry[RungBuilder] = Registry("rung")
for _kind, _build in {
    "prompt": prompt.build_prompt,
    "fewshot": fewshot.build_fewshot,
    "rag": rag.build_rag,
    "distill": distill.build_distill,
    "continued": continued.build_continued,
    "lora": finetune.build_lora,
    "full": finetune.build_full,
    "preference": preference.build_preference,
}.items():
    RUNGS.register(_kind)(_build)


def build_candidate(rung_spec, ctx: BuildContext) -> Candidate:
    return RUNGS.get(rung_spec.type)(rung_spec, ctx)


__all__ = ["RUNGS", "BuildContext", "Candidate", "Demo", "Passage", "Selection", "build_candidate"]
