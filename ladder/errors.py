"""User-facing errors: one readable line each, exit code 2, never a traceback."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class LadderError(Exception):
    """A problem with the user's input (task file, data, arguments, environment).

    The CLI prints ``str(error)`` and exits with code 2.
    """

    exit_code = 2


class ValidationFailed(LadderError):
    """Several problems found at once; each is one ``location: message`` line."""

    def __init__(self, problems: list[str], warnings: list[str] | None = None):
        self.problems = list(problems)
        self.warnings = list(warnings or [])
        super().__init__("\n".join(self.problems))


class MissingDependency(LadderError):
    """An optional heavy dependency is not installed; the message names the pip line."""

    def __init__(self, what: str, pip_line: str):
        super().__init__(f"{what} is not installed: run `{pip_line}`")


def format_loc(loc: tuple | list, tags: object = ()) -> str:
    """A pydantic error location as a field path: ``rungs[2].train.max_steps``. Entries in ``tags`` (a
    discriminated union's tag, which pydantic inserts after the index) are left out."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in tags and parts and parts[-1].startswith("["):
            continue
        else:
            name = str(item)
            name = name if name.isprintable() and name.strip() == name and name else repr(name)  # one line, visible
            parts.append(("." if parts else "") + name)
    return "".join(parts) or "(top level)"


def problem(err: Mapping[str, Any], unknown: str = "unknown field", tags: object = ()) -> tuple[str, str]:
    """One pydantic error as (field path, message); ``tags`` as for ``format_loc``."""
    msg = unknown if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
    return format_loc(tuple(err["loc"]), tags), msg


def validation_problems(exc, source: str) -> list[str]:
    """Every problem of a pydantic ``ValidationError`` as one line, ``source: field.path: message``: the one
    renderer of records, baselines, suites and metric options (task files add "did you mean" hints on top of
    it, ``spec/errors.py``)."""
    return [f"{source}: {where}: {msg}" for where, msg in map(problem, exc.errors())]
