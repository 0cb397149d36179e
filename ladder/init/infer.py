"""What `ladder init` infers from the rows: which fields are the input, target and id, and the output kind
(labels, JSON, text) with the metrics that fit it."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from ladder.data.read import fail
from ladder.data.splits import as_text

INPUT_NAMES = (
    "input",
    "text",
    "question",
    "prompt",
    "query",
    "utterance",
    "sentence",
    "address",
    "source",
    "document",
    "content",
    "instruction",
)

TARGET_NAMES = (
    "target",
    "label",
    "answer",
    "output",
    "intent",
    "category",
    "class",
    "parsed",
    "response",
    "completion",
    "expected",
    "y",
)

ID_NAMES = ("id", "_id", "uid", "guid", "example_id", "key", "qid")

MAX_LABELS = 50


@dataclass
class Inferred:
    """Every choice `ladder init` made, with why: printed, and written as comments into task.yaml."""

    input_field: str
    target_field: str
    id_field: str | None
    kind: str
    labels: list[str] | None
    notes: list[str] = field(default_factory=list)


# -- fields and kind -----------------------------------------------------------------------------------
def _by_name(fields: list[str], names: tuple[str, ...], taken: set[str]) -> str | None:
    lowered = {f.lower(): f for f in fields if f not in taken}
    return next((lowered[n] for n in names if n in lowered), None)


def guess_fields(
    rows: list[dict], where: str, input_field: str | None, target_field: str | None, id_field: str | None
) -> tuple[str, str, str | None, list[str]]:
    fields = [f for f in rows[0] if all(f in r and r[f] not in (None, "") for r in rows)]
    listed = ", ".join(fields) or "none"
    for flag, name in (("--input", input_field), ("--target", target_field), ("--id", id_field)):
        if name is not None and name not in fields:
            raise fail(where, f"{flag} {name!r} is not a field of every row (fields: {listed})")
    notes = []
    if id_field is None:
        id_field = _by_name(fields, ID_NAMES, set())
        if id_field is not None and len({as_text(r[id_field]) for r in rows}) < len(rows):
            notes.append(f"field {id_field!r} is not unique, so it is not used as the id")
            id_field = None
    taken = {f for f in (id_field, input_field, target_field) if f}
    input_field = input_field or _by_name(fields, INPUT_NAMES, taken)
    taken |= {input_field} if input_field else set()
    target_field = target_field or _by_name(fields, TARGET_NAMES, taken)
    rest = [f for f in fields if f not in {id_field, input_field, target_field}]
    if input_field and not target_field and len(rest) == 1:
        target_field = rest[0]
    elif target_field and not input_field and len(rest) == 1:
        input_field = rest[0]
    elif not input_field and not target_field and len(rest) == 2:
        repeats = [f for f in rest if len({as_text(r[f]) for r in rows}) <= len(rows) / 3]
        if len(repeats) == 1:  # one field is a small repeating set: the target (a label), the other the input
            target_field = repeats[0]
            input_field = next(f for f in rest if f != target_field)
    if not input_field or not target_field:
        missing = " and ".join(f for f, v in (("--input", input_field), ("--target", target_field)) if not v)
        raise fail(
            where,
            f"cannot tell which field is the {'input' if not input_field else 'target'}: pass "
            f"{missing} (fields: {listed})",
        )
    notes.insert(
        0,
        f"input field {input_field!r}, target field {target_field!r}, "
        + (f"id field {id_field!r}" if id_field else "no id field (ids are made from the row order)"),
    )
    return input_field, target_field, id_field, notes


def as_json(value: object) -> object | None:
    if isinstance(value, (dict, list)):
        return value
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            parsed = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return None
        return parsed if isinstance(parsed, (dict, list)) else None
    return None


def infer_kind(targets: list[object]) -> tuple[str, list[str] | None, str]:
    n = len(targets)
    parsed = [as_json(t) for t in targets]
    if all(p is not None for p in parsed):
        shape = (
            "objects"
            if all(isinstance(p, dict) for p in parsed)
            else "arrays"
            if all(isinstance(p, list) for p in parsed)
            else "objects and arrays"
        )
        return "json", None, f"json: all {n} targets parse as JSON {shape}"
    texts = [as_text(t) or "" for t in targets]
    counts = Counter(texts)
    repeating = sum(c for c in counts.values() if c >= 2)
    if 2 <= len(counts) <= MAX_LABELS and len(counts) <= n / 3 and max(map(len, counts)) <= 60 and repeating >= 0.9 * n:
        labels = sorted(counts, key=lambda k: (-counts[k], k))
        return (
            "label",
            labels,
            (
                f"label: {len(counts)} distinct targets over {n} rows, each {min(counts.values())} "
                f"to {max(counts.values())} times"
            ),
        )
    return "text", None, f"text: {len(counts)} distinct targets over {n} rows (free text, not a small repeating set)"


def extra_fields(rows: list[dict], has_corpus: bool) -> dict[str, str]:
    """Optional data fields recognised by name: other acceptable answers, and (with a corpus) the answering
    document's id."""
    found = {}
    fields = [f for f in rows[0] if all(f in r for r in rows)]
    lowered = {f.lower(): f for f in fields}
    for name in ("alternatives", "aliases", "alternative_answers"):
        f = lowered.get(name)
        if f and all(isinstance(r[f], list) and all(isinstance(a, str) for a in r[f]) for r in rows):
            found["alternatives_field"] = f
            break
    if has_corpus:
        f = next((lowered[n] for n in ("doc_id", "document_id", "source_id") if n in lowered), None)
        if f and all(as_text(r[f]) for r in rows):
            found["doc_id_field"] = f
    return found
