"""The report as data: sections of paragraphs, lists, tables and figures, built once from a run record
and rendered twice (Markdown for pull requests, HTML for stakeholders), so the two never disagree.

Text may carry two inline marks, ``**bold**`` and ```code```; each renderer turns them into its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Notice:
    """A warning above everything else (a failed or interrupted run)."""

    text: str


@dataclass(frozen=True)
class Items:
    items: list[str]
    numbered: bool = False


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]
    highlight: frozenset[int] = frozenset()  # row indexes to mark (the recommended rung)


@dataclass(frozen=True)
class Figure:
    """A plot: ``kind`` names a function of ``report.plots``, ``data`` its plain-number argument. The
    numbers it draws are in a table of the same section, or in its caption."""

    kind: str
    data: dict[str, Any]
    caption: str


Block = Union[Paragraph, Notice, Items, Table, Figure]


@dataclass
class Section:
    id: str
    title: str  # "" for the opening block (no heading)
    blocks: list[Block] = field(default_factory=list)
    in_markdown: bool = True  # False: only the HTML report has it (the Markdown stays PR-comment sized)


@dataclass
class Document:
    title: str
    sections: list[Section]
    footer: str = ""
