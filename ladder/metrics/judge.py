"""The ``judge`` metric: a model grades each output against a rubric written in task.yaml.

Unlike the other metrics it cannot score a string alone: the eval step asks a judge model (``run/judge.py``)
and the scores arrive with the outputs. What lives here is pure: the options, the judge's prompt, the grades it
may answer, strict parsing of a generated verdict, and grades on the metric's [0, 1] scale.

- ``scale: [low, high]`` (integers, at most ten points; default 1-5) or ``pass_fail``; ``criteria``: pass/fail
  per criterion, the score the share passed.
- ``mode: scores`` (default): the judge's log-likelihood of every grade after the prompt; the score is the
  probability-weighted grade (G-Eval, Liu et al. 2023), the discrete grade the most likely one. It cannot answer
  out of form. ``mode: generate``: the judge writes its verdict, parsed strictly (a JSON object
  ``{"grade": ...}``, nothing else); an answer out of form is asked again (``retries``), then scored as in
  ``scores`` mode if the backend can, and counted either way (never a silent 0).
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ladder.errors import LadderError
from ladder.metrics.registry import METRICS, Metric, Options

PASS, FAIL = "pass", "fail"


class JudgeOptions(Options):
    rubric: str = Field(min_length=1, description="What a good answer is: the criteria the judge grades by.")
    scale: tuple[int, int] | Literal["pass_fail"] = Field(
        default=(1, 5), description="Integer grades [low, high] (at most 10 points), or pass_fail."
    )
    criteria: list[str] = Field(
        default_factory=list,
        description="Pass/fail per criterion instead of one grade: each is asked apart, the score is the share "
        "passed (scale is then pass_fail).",
    )
    model: str = Field(
        default="task",
        description="The judge: `task` (the task's base model, never a candidate's weights), a registry alias or a "
        "local model folder (transformers), or the model name an OpenAI-compatible `base_url` serves.",
    )
    base_url: str | None = Field(default=None, description="An OpenAI-compatible endpoint serving the judge.")
    mode: Literal["scores", "generate"] = Field(
        default="scores",
        description="scores: the likelihood of every grade (cannot be out of form); generate: a written verdict "
        'parsed strictly ({"grade": ...}).',
    )
    reference: bool = Field(default=True, description="Show the judge the reference answer when the example has one.")
    retries: int = Field(default=2, ge=0, le=5, description="generate: asks again after an answer out of form.")
    max_new_tokens: int = Field(default=24, ge=4, le=512, description="generate: the verdict's token budget.")

    @field_validator("scale")
    @classmethod
    def _scale(cls, value: tuple[int, int] | str) -> tuple[int, int] | str:
        if isinstance(value, tuple):
            low, high = value
            if not (0 <= low < high <= low + 9):
                raise ValueError(f"[low, high] with 0 <= low < high and at most 10 points; got [{low}, {high}]")
        return value

    @model_validator(mode="after")
    def _criteria_pass_fail(self) -> JudgeOptions:
        if self.criteria and self.scale != "pass_fail":
            object.__setattr__(self, "scale", "pass_fail")  # a criterion is met or not
        if self.base_url is not None and self.model == "task":
            raise ValueError("base_url: name the model the endpoint serves in `model`")
        return self

    @property
    def grades(self) -> list[str]:
        """The answers the judge may give, in order from worst to best."""
        if self.scale == "pass_fail":
            return [FAIL, PASS]
        low, high = self.scale
        return [str(g) for g in range(low, high + 1)]

    @property
    def questions(self) -> list[str]:
        """One rubric per call: the rubric, or each criterion (with the rubric as context)."""
        if not self.criteria:
            return [self.rubric]
        return [f"{self.rubric}\nCriterion: {c}" for c in self.criteria]

    @property
    def units(self) -> list[float]:
        """``grades`` on the metric's [0, 1] scale, in the same order."""
        return [self.unit(self.grade_value(g)) for g in self.grades]

    def unit(self, grade: float) -> float:
        """A grade on the judge's scale as a score in [0, 1] (pass 1, fail 0)."""
        if self.scale == "pass_fail":
            return float(grade)
        low, high = self.scale
        return (grade - low) / (high - low)

    def grade_value(self, text: str) -> float:
        """One of ``grades`` as a number on the scale (pass 1, fail 0)."""
        if self.scale == "pass_fail":
            return 1.0 if text == PASS else 0.0
        return float(text)


def judge_messages(
    options: JudgeOptions, question: str, input: str, output: str, reference: str | None
) -> list[dict[str, str]]:
    """The judge's conversation: the rubric, the input, the reference (when shown), the answer, and how to reply."""
    grades = options.grades
    if options.mode == "generate":
        reply = f'Reply with only a JSON object {{"grade": G}} where G is one of {", ".join(grades)}.'
    else:
        reply = f"Reply with only the grade: one of {', '.join(grades)}."
    what = (
        "pass or fail" if options.scale == "pass_fail" else f"a grade from {grades[0]} (worst) to {grades[-1]} (best)"
    )
    parts = [f"Rubric:\n{question}", f"Input:\n{input}"]
    if reference is not None:
        parts.append(f"Reference answer:\n{reference}")
    parts += [f"Answer to grade:\n{output}", f"Give the answer {what} by the rubric. {reply}"]
    return [
        {"role": "system", "content": "You are a strict, fair grader. You grade answers by a rubric."},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def parse_verdict(text: str, options: JudgeOptions) -> str | None:
    """A generated verdict read strictly: the whole reply (trimmed, one code fence allowed) is a JSON object with
    one key ``grade`` whose value is one of the grades; anything else is None (out of form)."""
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, ValueError):
        return None
    if not isinstance(value, dict) or set(value) != {"grade"}:
        return None
    grade = value["grade"]
    if isinstance(grade, bool):
        return None
    if isinstance(grade, (int, float)) and float(grade).is_integer():
        grade = str(int(grade))
    if isinstance(grade, str) and grade.strip().lower() in options.grades:
        return grade.strip().lower()
    return None


def _not_here(prediction: str, target: str, options: JudgeOptions) -> float:
    raise LadderError(
        "the judge metric is graded by a judge model in the eval step, not from a string: it cannot score "
        "answers outside an assessment (a rung's training filter, dev_metric early stopping)"
    )


METRICS.register("judge")(
    Metric(
        "judge",
        _not_here,
        binary=False,
        options=JudgeOptions,
        description="A judge model grades each output against a rubric (calibrated against human grades).",
    )
)
