"""Zero-shot: the instruction as the system message (so a model's default system text, which SmolLM2
injects when none is given, never silently changes the task) and the input as the user message."""

from __future__ import annotations

from ladder.rungs.base import BuildContext, Candidate
from ladder.spec import PromptRungSpec, rung_name


def build_prompt(rung: PromptRungSpec, ctx: BuildContext) -> Candidate:
    prompt = ctx.spec.prompt
    return Candidate(rung_name(rung), "prompt", prompt.instruction, prompt.input_template, (), {})
