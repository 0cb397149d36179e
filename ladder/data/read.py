"""The one reader of JSONL and CSV data: the task's splits and extra rows (``parse_rows``: every row, a row that
does not parse kept as its problem, so all problems are reported at once), the corpus's JSONL, and a team's own
file for ``ladder init`` (``read_table``: the first problem a one-line error naming the file and line; a CSV must
start with a header naming its fields)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ladder.errors import LadderError


@dataclass
class Source:
    path: Path
    rows: list[dict[str, Any]]
    sha256: str


def fail(where: str, message: str) -> LadderError:
    return LadderError(f"{where}: {message}")


def read_table(path: Path) -> Source:
    """Rows of a JSONL or CSV file, each an object; a problem is a one-line error naming the file and line."""
    if not path.is_file():
        raise fail(str(path), "file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise fail(str(path), f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path, text)
    elif suffix in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(path, text)
    else:
        raise fail(str(path), "give a .jsonl or .csv file")
    if not rows:
        raise fail(str(path), "no rows")
    return Source(path, rows, hashlib.sha256(raw).hexdigest())


def parse_rows(text: str, suffix: str) -> list[tuple[int, object]]:
    """(line number, parsed row) pairs of a .csv or .jsonl file's text; a row that fails to parse is
    returned as an Exception (its message names what is wrong)."""
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines(keepends=True))
        return [(reader.line_num, row) for row in reader]
    rows: list[tuple[int, object]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            rows.append((number, ValueError(f"invalid JSON: {exc.msg} (column {exc.colno})")))
    return rows


def _jsonl_rows(path: Path, text: str) -> list[dict[str, Any]]:
    rows = []
    for number, row in parse_rows(text, ".jsonl"):
        if isinstance(row, Exception):
            raise fail(f"{path}:{number}", str(row))
        if not isinstance(row, dict):
            raise fail(f"{path}:{number}", f"expected an object with fields, got {type(row).__name__}")
        rows.append(row)
    return rows


def _looks_like_data(name: str) -> bool:
    return not name.strip() or len(name.split()) > 3 or bool(re.fullmatch(r"[-+]?\d+([.,]\d+)?", name.strip()))


def _csv_rows(path: Path, text: str) -> list[dict[str, Any]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as exc:
        raise fail(f"{path}:1", f"not CSV ({exc})") from None
    names = [h.strip() for h in header]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if any(_looks_like_data(n) for n in names) or dupes:
        why = (
            f"repeated name {dupes[0]!r}"
            if dupes
            else f"{[n for n in names if _looks_like_data(n)][0]!r} is not a field name"
        )
        raise fail(
            f"{path}:1",
            f"the first row must be a header naming the fields ({why}); add a line such as `text,label` above the data",
        )
    rows = []
    try:
        for values in reader:
            line = reader.line_num
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(names):
                raise fail(
                    f"{path}:{line}",
                    f"{len(values)} fields, the header has {len(names)} (a ragged CSV: "
                    "quote fields that contain commas)",
                )
            rows.append(dict(zip(names, values)))
    except csv.Error as exc:
        raise fail(f"{path}:{reader.line_num}", f"not CSV ({exc})") from None
    columns = {n: {row[n] for row in rows} for n in names}
    for n in names:  # a header-less file's first row repeats as data in its own column (a label, say)
        if n in columns[n]:
            raise fail(
                f"{path}:1",
                f"the first row looks like data, not a header ({n!r} is also a value of its "
                "column); add a header line naming the fields",
            )
    return rows
