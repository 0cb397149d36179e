"""User-facing errors: one readable line each, exit code 2, never a traceback."""

from __future__ import annotations


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
