"""The task file's field reference, generated from the model itself (types, defaults, descriptions), so the docs
cannot drift from what ``ladder validate`` accepts: ``docs/task-file.md`` holds it between two markers and a test
fails when it is stale (``python -m ladder.spec.reference --write`` regenerates it)."""

from __future__ import annotations

import json
import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ladder.spec.rungs import RUNG_KINDS
from ladder.spec.task import TaskSpec

BEGIN = "<!-- BEGIN GENERATED: python -m ladder.spec.reference --write -->"
END = "<!-- END GENERATED -->"


def _models(annotation: object) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation (``X | None``, ``list[X]``, unions, ``Annotated``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += [m for m in _models(arg) if m not in found]
    return found


def _type(annotation: object) -> str:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.__name__
    if annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(json.dumps(a) for a in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    factory = field.default_factory
    value = factory() if factory is not None and field.default is PydanticUndefined else field.default  # type: ignore[call-arg]
    if isinstance(value, BaseModel):
        return "(its defaults)"
    return f"`{json.dumps(value, default=str)}`"


def _table(model: type[BaseModel], title: str) -> list[str]:
    lines = [f"### {title}", "", "| field | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        meaning = " ".join((field.description or "").split()).replace("|", "\\|")
        lines.append(f"| `{name}` | {_type(field.annotation)} | {_default(field)} | {meaning} |")
    return lines + [""]


def reference() -> str:
    """Every section of a task file and every rung kind, in the order a task file reads."""
    out: list[str] = [BEGIN, ""]
    done: set[type[BaseModel]] = set()
    queue: list[tuple[str, type[BaseModel]]] = [("task.yaml", TaskSpec)]
    rung_settings = {kind.settings for kind in RUNG_KINDS}
    while queue:
        title, model = queue.pop(0)
        if model in done:
            continue
        done.add(model)
        out += _table(model, title)
        for name, field in model.model_fields.items():
            for inner in _models(field.annotation):
                if inner not in done and inner not in rung_settings:
                    queue.append((f"{title.removesuffix('task.yaml') or ''}{name}".lstrip("."), inner))
    out += [
        "### rungs",
        "",
        "Each rung is a mapping with `type` (its kind, in ladder order) and its kind's settings.",
        "",
    ]
    for kind in RUNG_KINDS:
        out += _table(kind.settings, f"rungs: type {kind.name}")
        for name, field in kind.settings.model_fields.items():
            for inner in _models(field.annotation):
                if inner not in done:
                    done.add(inner)
                    out += _table(inner, f"rungs: type {kind.name}: {name}")
    return "\n".join(out + [END]) + "\n"


def replace_in(text: str) -> str:
    """``text`` with the part between the markers replaced by the current reference."""
    start, end = text.index(BEGIN), text.index(END) + len(END) + 1
    return text[:start] + reference() + text[end:]


if __name__ == "__main__":  # python -m ladder.spec.reference --write [docs/task-file.md]
    path = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/task-file.md")
    if "--write" in sys.argv:
        path.write_text(replace_in(path.read_text()))
    else:
        sys.stdout.write(reference())
