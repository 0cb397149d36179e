"""One renderer for the task file's pydantic errors: every problem at once, ``file: field.path: message``,
with "did you mean" for unknown fields, rung kinds and values."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from ladder.errors import problem
from ladder.spec.rungs import RUNG_SPECS
from ladder.spec.task import TaskSpec


def _format_error(err: Mapping[str, Any]) -> str:
    loc, msg = problem(err, tags=RUNG_SPECS)  # the shared renderer; below, the task file's own hints
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{loc}: {msg}"
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag", "")
        hint = difflib.get_close_matches(str(tag), list(RUNG_SPECS), n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"{loc}.type: unknown rung {tag!r}{did}; known: {', '.join(RUNG_SPECS)}"
    if kind == "union_tag_not_found":
        return f"{loc}.type: missing (one of: {', '.join(RUNG_SPECS)})"
    if kind == "literal_error":
        expected = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
        hint = difflib.get_close_matches(str(err.get("input")), expected, n=1)
        did = f"did you mean {hint[0]!r}? " if hint else ""
        return f"{loc}: unknown value {err.get('input')!r}; {did}(one of: {', '.join(expected)})"
    named = re.match(r"([a-z_]+)[.\[:]", msg)
    if not err["loc"] and named and named.group(1) in TaskSpec.model_fields:
        return str(msg)  # a whole-task check that names its field (target.metric ..., metrics[1]: ...)
    return f"{loc}: {msg}"


def _suggest_unknown(err: Mapping[str, Any], model: type[BaseModel]) -> str:
    """Add a 'did you mean' to an unknown-field error, looking up the sibling fields."""
    target: type[BaseModel] | None = model
    for item in err["loc"][:-1]:
        if isinstance(item, int):
            continue
        if item in RUNG_SPECS and target is None:  # pydantic's discriminated-union tag
            target = RUNG_SPECS[item]
            continue
        field = target.model_fields.get(str(item)) if target is not None else None
        ann = field.annotation if field is not None else None
        target = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    if target is None:
        return ""
    hint = difflib.get_close_matches(str(err["loc"][-1]), list(target.model_fields), n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""
