"""Reading a ``task.yaml``: YAML safely loaded, validated, every problem reported at once; the JSON Schema."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ladder.errors import LadderError, ValidationFailed
from ladder.spec.errors import _format_error, _suggest_unknown
from ladder.spec.task import TaskSpec


@dataclass(frozen=True)
class TaskFile:
    """A validated spec and the file it came from (data paths resolve relative to it)."""

    spec: TaskSpec
    path: Path
    model_override: bool = False  # spec.model came from the command line (--model), not from the file

    def resolve(self, relative: str) -> Path:
        return (self.path.parent / relative).resolve()

    def with_model(self, model: str | None) -> TaskFile:
        """This task on another base model (``--model``: an alias, a .gguf file or a model folder), the task
        file unchanged. A path is taken from the working directory, where the command line was typed."""
        if not model or model == self.spec.model:
            return self
        path = Path(model).expanduser()
        if path.exists() or path.suffix == ".gguf" or len(path.parts) > 1:
            model = str(path.resolve())
        return TaskFile(spec=self.spec.model_copy(update={"model": model}), path=self.path, model_override=True)


def shown_path(path: Path) -> str:
    """A path for messages: relative to the working directory when inside it, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def parse_task(raw: object, source: str) -> TaskSpec:
    """Validate a parsed YAML document; all problems at once, each ``source: field.path: message``."""
    if not isinstance(raw, dict):
        raise ValidationFailed([f"{source}: (top level): expected a mapping of fields, got {type(raw).__name__}"])
    try:
        return TaskSpec.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            line = _format_error(err)
            if err["type"] == "extra_forbidden":
                line += _suggest_unknown(err, TaskSpec)
            lines.append(f"{source}: {line}")
        raise ValidationFailed(lines) from None


def load_task(path: str | Path) -> TaskFile:
    """Read and validate a ``task.yaml`` (or a folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "task.yaml"
    if not path.is_file():
        raise LadderError(f"{shown_path(path)}: no such task file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{shown_path(path)}:{mark.line + 1}" if mark is not None else shown_path(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValidationFailed([f"{where}: invalid YAML: {problem}"]) from None
    except UnicodeDecodeError as exc:
        raise ValidationFailed([f"{shown_path(path)}: not UTF-8 text ({exc.reason})"]) from None
    return TaskFile(spec=parse_task(raw, shown_path(path)), path=path.resolve())


def json_schema() -> dict[str, Any]:
    schema = TaskSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ladder task.yaml"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
