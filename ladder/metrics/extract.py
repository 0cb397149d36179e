"""Lenient extraction of an answer from an output before scoring (``extract:`` on a metric entry)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from ladder.metrics.builtin import NUMBER
from ladder.text import normalize

if TYPE_CHECKING:
    from ladder.spec import RegexExtract  # the task file's {regex: ...} (spec is above metrics)


def first_label(text: str, labels: list[str]) -> str | None:
    """The label mentioned first in the text (whole words, after normalization; the longest at a tie)."""
    norm = normalize(text)
    best: tuple[int, int, str] | None = None
    for label in labels:
        found = re.search(rf"(?<!\w){re.escape(normalize(label))}(?!\w)", norm)
        if found and (best is None or (found.start(), -len(label)) < best[:2]):
            best = (found.start(), -len(label), label)
    return best[2] if best else None


def first_json(text: str) -> str | None:
    """The first JSON object or array inside the text (e.g. after 'Here is the JSON:' or in a code fence)."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[{\[]", text):
        try:
            value, _end = decoder.raw_decode(text, match.start())
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(value, (dict, list)) and value:
            return json.dumps(value, ensure_ascii=False)
    return None


def first_number(text: str) -> str | None:
    found = NUMBER.search(text.replace("−", "-"))
    return found.group(0) if found else None


def extractor(extract: str | RegexExtract, labels: list[str] | None) -> Callable[[str], str]:
    """The extraction step a metric entry names: what it finds, or the output unchanged when it finds
    nothing (so a lenient score is never below the strict one for that reason)."""
    if extract == "first_label":
        find: Callable[[str], str | None] = lambda t: first_label(t, labels or [])  # noqa: E731
    elif extract == "first_json":
        find = first_json
    elif extract == "first_number":
        find = first_number
    else:
        assert not isinstance(extract, str), extract  # the named extractors are above
        pattern = re.compile(extract.regex)  # a RegexExtract (spec/sections.py)

        def find(text: str) -> str | None:
            found = pattern.search(text)
            return None if found is None else (found.group(1) if pattern.groups else found.group(0))

    return lambda text: (lambda got: text if got is None else got)(find(text))
