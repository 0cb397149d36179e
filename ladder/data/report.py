"""What the data checks found (``ladder check-data``; the cheap checks run before every assessment too)."""

from __future__ import annotations

from typing import Literal

from ladder.spec import Strict

Severity = Literal["ok", "info", "warning", "error"]


class DataFinding(Strict):
    """One finding of a data check: the examples involved (split/id) and what is wrong with them."""

    examples: list[str]  # "split/id", first the one the finding is about
    where: str = ""  # file:line of that first example
    detail: str
    score: float | None = None  # similarity, confidence of a label error, length: what ranks the findings


class DataCheck(Strict):
    name: str
    title: str
    severity: Severity
    count: int  # findings in all (the list below may be cut)
    summary: str
    findings: list[DataFinding] = []
    allowed_by: str | None = None  # the spec field that turned an error into a warning


def not_checked(name: str, title: str, why: str) -> DataCheck:
    """A check this install cannot run (the extra it needs is missing): said in the report, never passed off as
    "none found"."""
    return DataCheck(name=name, title=title, severity="info", count=0, summary=f"not checked: {why}")


class DataReport(Strict):
    """What `ladder check-data` found (the cheap checks run before every assessment too)."""

    checks: list[DataCheck]
    label_balance: dict[str, dict[str, int]] | None = None  # split -> label -> count (label tasks)

    def check(self, name: str) -> DataCheck | None:
        return next((c for c in self.checks if c.name == name), None)

    @property
    def errors(self) -> list[DataCheck]:
        return [c for c in self.checks if c.severity == "error"]
