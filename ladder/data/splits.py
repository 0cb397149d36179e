"""Reading a task's splits (JSONL or CSV) and checking them: fields, ids, labels, leakage. Problems are
collected, never raised one at a time: each is ``file:line: message``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ladder.data.read import parse_rows
from ladder.errors import ValidationFailed
from ladder.spec import TaskFile, TaskSpec, shown_path
from ladder.text import short_hash

if TYPE_CHECKING:
    from ladder.data.corpus import Corpus, Document
    from ladder.data.grades import HumanGrade
    from ladder.data.report import DataReport
    from ladder.memo import Store

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Example:
    id: str
    input: str
    target: str
    split: str
    source: str  # "file:line", for messages
    alternatives: tuple[str, ...] = ()  # other acceptable answers
    doc_id: str | None = None  # the corpus document that answers it (retrieval is scored on it)

    @property
    def references(self) -> tuple[str, ...]:
        return (self.target, *self.alternatives)


@dataclass(frozen=True)
class Splits:
    train: list[Example]
    dev: list[Example]
    test: list[Example]
    hashes: dict[str, str]  # split -> sha256 of the file's bytes
    warnings: list[str] = field(default_factory=list)
    checks: DataReport | None = None  # what the cheap data checks found

    def get(self, split: str) -> list[Example]:
        return {"train": self.train, "dev": self.dev, "test": self.test}[split]


def _data_file(task: TaskFile, key: str, problems: list[str]) -> tuple[str, str, list[tuple[str, object]]] | None:
    """The file named by ``data.<key>`` (a split, data.unlabeled, data.preferences): its shown path, sha256
    and ``(file:line, parsed row)`` pairs; or None, its problem named by the task file's field (wrong suffix,
    not found) or by the file (not UTF-8)."""
    rel = getattr(task.spec.data, key)
    path = task.resolve(rel)
    task_shown, shown = shown_path(task.path), shown_path(path)
    if path.suffix.lower() not in (".jsonl", ".csv"):
        problems.append(f"{task_shown}: data.{key}: {rel} must be a .jsonl or .csv file")
        return None
    if not path.is_file():
        problems.append(f"{task_shown}: data.{key}: file not found: {rel}")
        return None
    raw = path.read_bytes()  # read once: hashed, then parsed
    try:
        rows = parse_rows(raw.decode("utf-8"), path.suffix.lower())
    except UnicodeDecodeError as exc:
        problems.append(f"{shown}: not UTF-8 text ({exc.reason})")
        return None
    return shown, hashlib.sha256(raw).hexdigest(), [(f"{shown}:{line}", row) for line, row in rows]


TASK_FIELDS = ("input", "target", "id")  # roles named by a data.<role>_field of the task file


def _row_fields(where: str, row: object, fields: dict[str, str], problems: list[str]) -> dict[str, str] | None:
    """``{role: text}`` of one parsed row for the required ``fields`` (``{role: field name}``), or None with
    every problem of the row named by file:line (unparsable, not an object, a field missing or not text)."""
    if isinstance(row, Exception):
        problems.append(f"{where}: {row}")
        return None
    if not isinstance(row, dict):
        problems.append(f"{where}: expected an object with fields, got {type(row).__name__}")
        return None
    values = {}
    for role, name in fields.items():
        if row.get(name) in (None, ""):
            hint = f" ({role}_field)" if role in TASK_FIELDS else ""
            problems.append(f"{where}: missing field {name!r}{hint}")
            continue
        text = as_text(row[name])
        if text is None:
            problems.append(f"{where}: field {name!r} must be text, got {type(row[name]).__name__}")
            continue
        values[role] = text
    return values if len(values) == len(fields) else None


def as_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return None


def _json_problem(target: str) -> str | None:
    """Why a json task's target is unusable, or None: it must be a JSON object or array."""
    try:
        value = json.loads(target)
    except (json.JSONDecodeError, RecursionError) as exc:
        return f"is not JSON ({getattr(exc, 'msg', 'nested too deeply')})"
    if not isinstance(value, (dict, list)):
        return f"is JSON {type(value).__name__}, not an object or array"
    return None


def load_splits(task: TaskFile, strict: bool = True, store: Store | None = None) -> Splits:
    """Read and check all three splits; raise ValidationFailed listing every problem. The data checks
    (``ladder.data.checks``) run too: their errors (conflicts, leakage) are problems unless ``strict`` is off
    (``ladder check-data`` reports them instead), their warnings are warnings; ``store`` keeps their results."""
    spec = task.spec
    data = spec.data
    problems: list[str] = []
    warnings: list[str] = []
    loaded: dict[str, list[Example]] = {}
    hashes: dict[str, str] = {}
    labels = set(spec.output.labels or [])
    fields = {
        role: name
        for role, name in (("input", data.input_field), ("target", data.target_field), ("id", data.id_field))
        if name is not None
    }
    for split in SPLITS:
        examples: list[Example] = []
        loaded[split] = examples
        found = _data_file(task, split, problems)
        if found is None:
            continue
        shown, hashes[split], rows = found
        for where, row in rows:
            values = _row_fields(where, row, fields, problems)
            if values is None:
                continue
            assert isinstance(row, dict)  # a row that is not an object gives no values
            values.setdefault("target", "")  # an open-ended task (data.target_field null) has no references
            if labels and values["target"] not in labels:
                problems.append(f"{where}: label {values['target']!r} is not in output.labels")
            json_problem = _json_problem(values["target"]) if spec.output.kind == "json" else None
            if json_problem:
                problems.append(f"{where}: field {data.target_field!r} {json_problem} (output.kind json)")
            alternatives: tuple[str, ...] = ()
            if data.alternatives_field and row.get(data.alternatives_field) is not None:
                raw_alts = row[data.alternatives_field]
                raw_alts = [raw_alts] if isinstance(raw_alts, str) else raw_alts
                if not isinstance(raw_alts, list) or not all(isinstance(a, str) for a in raw_alts):
                    problems.append(f"{where}: field {data.alternatives_field!r} must be a list of strings")
                else:
                    alternatives = tuple(a for a in raw_alts if a != values["target"])
            doc_id = None
            if data.doc_id_field:
                doc_id = as_text(row.get(data.doc_id_field)) or None
                if doc_id is None:
                    problems.append(f"{where}: missing field {data.doc_id_field!r} (doc_id_field)")
            example_id = values.get("id") or short_hash(values["input"])
            examples.append(Example(example_id, values["input"], values["target"], split, where, alternatives, doc_id))
        if not examples and not any(p.startswith(f"{shown}:") for p in problems):
            problems.append(f"{shown}: split {split!r} has no examples")

    seen_ids: dict[str, str] = {}
    for split in SPLITS:
        for ex in loaded[split]:
            if ex.id in seen_ids:
                problems.append(f"{ex.source}: duplicate id {ex.id!r} (first at {seen_ids[ex.id]})")
            else:
                seen_ids[ex.id] = ex.source

    report = None
    if len(hashes) == len(SPLITS):  # every file was read: check the rows that read well (every problem at once)
        from ladder.data.checks import problems_and_warnings

        report = _checked(spec, loaded, store)
        errors, warned = problems_and_warnings(report)
        warnings += warned
        if strict:
            problems += errors
    if problems:
        raise ValidationFailed(problems, warnings)
    return Splits(loaded["train"], loaded["dev"], loaded["test"], hashes, warnings, report)


def _checked(spec: TaskSpec, loaded: dict[str, list[Example]], store: Store | None) -> DataReport:
    """``checks.cheap_checks``; with a ``store``, kept under the examples, the settings they read and the checks' code
    (an unchanged re-run neither computes them nor imports datasketch)."""
    from ladder.data import CHECKS_CODE
    from ladder.data.checks import cheap_checks
    from ladder.data.report import DataReport
    from ladder.memo import remembered

    parts = {
        "checks": "cheap",
        "settings": spec.model_dump(mode="json", include={"data", "output", "seed"}),
        "examples": [
            [s, ex.id, ex.input, ex.target, ex.source, list(ex.alternatives), ex.doc_id]
            for s in SPLITS
            for ex in loaded[s]
        ],
    }
    compute = lambda: cheap_checks(spec, loaded).model_dump(mode="json")  # noqa: E731
    kept = remembered(store, parts, ("datasketch",), CHECKS_CODE, compute)
    return DataReport.model_validate(kept)


@dataclass(frozen=True)
class PreferenceRow:
    """A user-given preference pair (data.preferences): for this input, ``chosen`` is better than ``rejected``."""

    id: str
    input: str
    chosen: str
    rejected: str
    source: str  # "file:line"


@dataclass(frozen=True)
class TaskData:
    splits: Splits
    corpus: Corpus | None
    unlabeled: list[Example] = field(default_factory=list)  # data.unlabeled: inputs only (target "")
    preferences: list[PreferenceRow] = field(default_factory=list)  # data.preferences
    reserve: list[Example] = field(default_factory=list)  # data.reserve: labelled, for decisions only (ladder resolve)
    domain_text: list[Document] = field(default_factory=list)  # data.domain_text: the continued rung's text
    human_grades: list[HumanGrade] = field(default_factory=list)  # data.human_grades: the judges' calibration

    def for_rungs(self) -> dict[str, object]:
        """What a rung's context holds of it (``BuildContext`` fields): the corpus and the extra data files."""
        return {
            "corpus": self.corpus,
            "unlabeled": self.unlabeled,
            "preferences": self.preferences,
            "domain_text": self.domain_text,
        }


def _extra_rows(
    task: TaskFile, key: str, fields: dict[str, str], problems: list[str], optional: dict[str, str | None] | None = None
) -> list[tuple[str, dict[str, str]]]:
    """The rows of an optional data file (data.unlabeled, data.preferences): (file:line, {role: text}), every
    problem named by file and line (or by the task file's field when the file itself is wrong)."""
    if getattr(task.spec.data, key) is None:
        return []
    found = _data_file(task, key, problems)
    if found is None:
        return []
    shown, _, rows = found
    out = []
    for where, row in rows:
        values = _row_fields(where, row, fields, problems)
        if values is not None:
            assert isinstance(row, dict)
            for role, name in (optional or {}).items():
                text = as_text(row.get(name)) if name is not None else None
                if text:
                    values[role] = text
            out.append((where, values))
    if not out and not any(p.startswith(f"{shown}:") for p in problems):
        problems.append(f"{shown}: data.{key} has no rows")
    return out


def load_reserve(task: TaskFile, splits: Splits, problems: list[str]) -> list[Example]:
    """data.reserve: labelled examples for decisions only (``ladder resolve``). They stand in for more dev
    examples, so none may repeat an input of any split (after normalization) nor an id."""
    from ladder.text import normalize

    data = task.spec.data
    seen = {normalize(ex.input): ex.source for split in SPLITS for ex in splits.get(split)}
    ids = {ex.id for split in SPLITS for ex in splits.get(split)}
    labels = set(task.spec.output.labels or [])
    fields = {"input": data.input_field, **({"target": data.target_field} if data.target_field else {})}
    reserve = []
    for where, values in _extra_rows(task, "reserve", fields, problems, {"id": data.id_field}):
        example_id = values.get("id") or short_hash(values["input"])
        if normalize(values["input"]) in seen:
            problems.append(
                f"{where}: input is also at {seen[normalize(values['input'])]}; data.reserve must hold "
                "inputs no split has"
            )
        elif example_id in ids:
            problems.append(f"{where}: duplicate id {example_id!r} (a split has it)")
        elif labels and values["target"] not in labels:
            problems.append(f"{where}: label {values['target']!r} is not in output.labels")
        else:
            ids.add(example_id)
            seen[normalize(values["input"])] = where
            reserve.append(Example(example_id, values["input"], values.get("target", ""), "dev", where))
    return reserve


def load_extra(task: TaskFile, splits: Splits, problems: list[str]) -> tuple[list[Example], list[PreferenceRow]]:
    """data.unlabeled and data.preferences. A row whose input is a dev or test input (after normalization) is
    an error unless data.allow_duplicate_inputs: training on held-out inputs (even without their targets)
    would flatter the evaluation."""
    from ladder.text import normalize

    data = task.spec.data
    held_out = {normalize(ex.input): ex.source for split in ("dev", "test") for ex in splits.get(split)}

    def leaks(where: str, text: str, key: str) -> bool:
        found = held_out.get(normalize(text))
        if found and not data.allow_duplicate_inputs:
            problems.append(
                f"{where}: input is also a held-out input ({found}); data.{key} must not hold dev or "
                "test inputs (data.allow_duplicate_inputs: true allows it)"
            )
            return True
        return False

    unlabeled = []  # an id is optional here: without one, the input's hash
    for where, values in _extra_rows(task, "unlabeled", {"input": data.input_field}, problems, {"id": data.id_field}):
        if not leaks(where, values["input"], "unlabeled"):
            unlabeled.append(
                Example(values.get("id") or short_hash(values["input"]), values["input"], "", "unlabeled", where)
            )
    preferences = []
    fields = {"input": data.input_field, "chosen": "chosen", "rejected": "rejected"}
    for where, values in _extra_rows(task, "preferences", fields, problems):
        if values["chosen"] == values["rejected"]:
            problems.append(f"{where}: chosen and rejected are the same answer")
        elif not leaks(where, values["input"], "preferences"):
            preferences.append(
                PreferenceRow(
                    short_hash(values["input"] + "\n" + values["chosen"] + "\n" + values["rejected"]),
                    values["input"],
                    values["chosen"],
                    values["rejected"],
                    where,
                )
            )
    return unlabeled, preferences


def load_task_data(task: TaskFile, strict: bool = True, store: Store | None = None) -> TaskData:
    """Splits and corpus, checked together (every problem at once): a data doc_id must name a document. ``store``:
    where the data checks' results may be kept (``ladder.memo``)."""
    from ladder.data.corpus import load_corpus, load_domain_text
    from ladder.data.grades import load_human_grades

    problems: list[str] = []
    warnings: list[str] = []
    splits = corpus = None
    try:
        splits = load_splits(task, strict, store)
    except ValidationFailed as exc:
        problems += exc.problems
        warnings += exc.warnings
    if task.spec.corpus is not None:
        try:
            corpus = load_corpus(task)
        except ValidationFailed as exc:
            problems += exc.problems
    if splits is not None and corpus is not None:
        known = corpus.doc_ids()
        for split in SPLITS:
            for ex in splits.get(split):
                if ex.doc_id is not None and ex.doc_id not in known:
                    problems.append(f"{ex.source}: doc_id {ex.doc_id!r} is not a document of the corpus")
    unlabeled: list[Example] = []
    preferences: list[PreferenceRow] = []
    reserve: list[Example] = []
    if splits is not None:
        problems += _demonstrations_fit(task, len(splits.train))
        unlabeled, preferences = load_extra(task, splits, problems)
        reserve = load_reserve(task, splits, problems)
    try:
        domain_text: list[Document] = load_domain_text(task) if task.spec.data.domain_text is not None else []
    except ValidationFailed as exc:
        domain_text, problems = [], problems + exc.problems
    grades = load_human_grades(task, problems, _extra_rows)
    if problems:
        raise ValidationFailed(problems, warnings)
    assert splits is not None
    return TaskData(splits, corpus, unlabeled, preferences, reserve, domain_text, grades)


def _demonstrations_fit(task: TaskFile, n_train: int) -> list[str]:
    """Demonstrations come from the train split: a rung cannot ask for more than it holds."""
    problems = []
    for i, rung in enumerate(task.spec.rungs):
        k = getattr(rung, "k", None) if rung.type == "fewshot" else getattr(rung, "fewshot_k", None)
        if k and k > n_train:
            field = "k" if rung.type == "fewshot" else "fewshot_k"
            problems.append(
                f"{shown_path(task.path)}: rungs[{i}].{field}: {k} demonstrations asked, the train split has {n_train}"
            )
    return problems
