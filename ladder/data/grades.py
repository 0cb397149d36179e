"""data.human_grades: people's grades of answers, the calibration set of the task's judge metrics.

A row: the input (input_field), ``output`` (the graded answer), ``grade`` (on the judge's scale: a number within
it, or pass/fail), the reference (target_field) where there is one, and ``metric`` (which judge metric) when the
task has several. Each problem is named by file and line, all at once, before any model runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ladder.metrics import JudgeOptions, scorers

if TYPE_CHECKING:
    from ladder.spec import TaskFile

_PASS = {"pass": 1.0, "fail": 0.0, "1": 1.0, "0": 0.0, "true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0}


@dataclass(frozen=True)
class HumanGrade:
    metric: str  # the judge metric it calibrates
    input: str
    output: str
    reference: str | None
    grade: float  # on the judge's scale (pass 1, fail 0); a mean of several people may fall between grades
    source: str  # file:line


def _grade(text: str, options: JudgeOptions) -> float | None:
    if options.scale == "pass_fail":
        return _PASS.get(text.strip().lower())
    try:
        value = float(text)
    except ValueError:
        return None
    low, high = options.scale
    return value if low <= value <= high else None


def load_human_grades(task: TaskFile, problems: list[str], read_rows: Callable[..., Any]) -> list[HumanGrade]:
    """``read_rows``: the one reader of optional data files (``data.splits._extra_rows``)."""
    spec = task.spec
    judges = {name: s.judge for name, s in scorers(spec).items() if s.judge is not None}
    data = spec.data
    if data.human_grades is not None and not judges:
        problems.append(f"{task.path}: data.human_grades: the task has no judge metric to calibrate")
        return []
    fields = {"input": data.input_field, "output": "output", "grade": "grade"}
    optional: dict[str, str | None] = {"reference": data.target_field, "metric": "metric"}
    grades = []
    for where, values in read_rows(task, "human_grades", fields, problems, optional):
        metric = values.get("metric")
        if metric is None:
            if len(judges) > 1:
                problems.append(f"{where}: metric: the task has several judge metrics ({', '.join(judges)}); name one")
                continue
            metric = next(iter(judges))
        if metric not in judges:
            problems.append(f"{where}: metric {metric!r} is not a judge metric of the task ({', '.join(judges)})")
            continue
        options = judges[metric]
        assert options is not None
        grade = _grade(values["grade"], options)
        if grade is None:
            scale = "pass or fail" if options.scale == "pass_fail" else "a number in [{}, {}]".format(*options.scale)
            problems.append(f"{where}: grade {values['grade']!r} is not {scale} (the judge's scale)")
            continue
        reference = values.get("reference") if options.reference else None
        grades.append(HumanGrade(metric, values["input"], values["output"], reference, grade, where))
    return grades
