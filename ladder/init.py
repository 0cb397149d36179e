"""`ladder init`: from a team's own data to a task folder that validates and assesses.

One CSV/JSONL file (split here) or train/dev/test files (kept as given). The input, target and id fields
are guessed from their names (or asked for in the error when they cannot be told apart); the output kind
is inferred from the targets (a small repeating set: label; JSON objects or arrays: json; else text), and
the metrics follow it. A single file is split deterministically (seeded), stratified by label, with
inputs that are equal after normalization or near-duplicates (MinHash LSH over word pairs) kept
in one split. task.yaml is written with a comment on every choice, SOURCE.md as a stub to fill, and
what was written is validated as `ladder validate` would.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ladder.data.checks import duplicate_groups
from ladder.data.splits import as_text
from ladder.errors import LadderError

INPUT_NAMES = ("input", "text", "question", "prompt", "query", "utterance", "sentence", "address", "source",
               "document", "content", "instruction")
TARGET_NAMES = ("target", "label", "answer", "output", "intent", "category", "class", "parsed", "response",
                "completion", "expected", "y")
ID_NAMES = ("id", "_id", "uid", "guid", "example_id", "key", "qid")
MAX_LABELS = 50
NEAR_DUPLICATE = 0.8  # Jaccard similarity of word pairs at or above which two inputs are one (data.near_duplicate_jaccard)
SPLIT_NAMES = {"train": ("train",), "dev": ("dev", "valid", "validation", "val"), "test": ("test", "eval")}


@dataclass
class Source:
    path: Path
    rows: list[dict]
    sha256: str


@dataclass
class Inferred:
    """Every choice `ladder init` made, with why: printed, and written as comments into task.yaml."""

    input_field: str
    target_field: str
    id_field: str | None
    kind: str
    labels: list[str] | None
    notes: list[str] = field(default_factory=list)


def _fail(where: str, message: str) -> LadderError:
    return LadderError(f"{where}: {message}")


# -- reading -------------------------------------------------------------------------------------------
def read_table(path: Path) -> Source:
    """Rows of a JSONL or CSV file, each an object; a problem is a one-line error naming the file and line."""
    if not path.is_file():
        raise _fail(str(path), "file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(str(path), f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path, text)
    elif suffix in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(path, text)
    else:
        raise _fail(str(path), "give a .jsonl or .csv file")
    if not rows:
        raise _fail(str(path), "no rows")
    return Source(path, rows, hashlib.sha256(raw).hexdigest())


def _jsonl_rows(path: Path, text: str) -> list[dict]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _fail(f"{path}:{number}", f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(row, dict):
            raise _fail(f"{path}:{number}", f"expected an object with fields, got {type(row).__name__}")
        rows.append(row)
    return rows


def _looks_like_data(name: str) -> bool:
    return not name.strip() or len(name.split()) > 3 or bool(re.fullmatch(r"[-+]?\d+([.,]\d+)?", name.strip()))


def _csv_rows(path: Path, text: str) -> list[dict]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as exc:
        raise _fail(f"{path}:1", f"not CSV ({exc})") from None
    names = [h.strip() for h in header]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if any(_looks_like_data(n) for n in names) or dupes:
        why = f"repeated name {dupes[0]!r}" if dupes else f"{[n for n in names if _looks_like_data(n)][0]!r} is not a field name"
        raise _fail(f"{path}:1", f"the first row must be a header naming the fields ({why}); add a line such as "
                                 f"`text,label` above the data")
    rows = []
    try:
        for values in reader:
            line = reader.line_num
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(names):
                raise _fail(f"{path}:{line}", f"{len(values)} fields, the header has {len(names)} (a ragged CSV: "
                                              "quote fields that contain commas)")
            rows.append(dict(zip(names, values)))
    except csv.Error as exc:
        raise _fail(f"{path}:{reader.line_num}", f"not CSV ({exc})") from None
    columns = {n: {row[n] for row in rows} for n in names}
    for n in names:  # a header-less file's first row repeats as data in its own column (a label, say)
        if n in columns[n]:
            raise _fail(f"{path}:1", f"the first row looks like data, not a header ({n!r} is also a value of its "
                                     "column); add a header line naming the fields")
    return rows


# -- fields and kind -----------------------------------------------------------------------------------
def _by_name(fields: list[str], names: tuple[str, ...], taken: set[str]) -> str | None:
    lowered = {f.lower(): f for f in fields if f not in taken}
    return next((lowered[n] for n in names if n in lowered), None)


def guess_fields(rows: list[dict], where: str, input_field: str | None, target_field: str | None,
                 id_field: str | None) -> tuple[str, str, str | None, list[str]]:
    fields = [f for f in rows[0] if all(f in r and r[f] not in (None, "") for r in rows)]
    listed = ", ".join(fields) or "none"
    for flag, name in (("--input", input_field), ("--target", target_field), ("--id", id_field)):
        if name is not None and name not in fields:
            raise _fail(where, f"{flag} {name!r} is not a field of every row (fields: {listed})")
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
        raise _fail(where, f"cannot tell which field is the {'input' if not input_field else 'target'}: pass "
                           f"{missing} (fields: {listed})")
    notes.insert(0, f"input field {input_field!r}, target field {target_field!r}, "
                    + (f"id field {id_field!r}" if id_field else "no id field (ids are made from the row order)"))
    return input_field, target_field, id_field, notes


def _as_json(value: object) -> object | None:
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
    parsed = [_as_json(t) for t in targets]
    if all(p is not None for p in parsed):
        shape = "objects" if all(isinstance(p, dict) for p in parsed) else "arrays" if all(isinstance(p, list) for p in parsed) else "objects and arrays"
        return "json", None, f"json: all {n} targets parse as JSON {shape}"
    texts = [as_text(t) or "" for t in targets]
    counts = Counter(texts)
    repeating = sum(c for c in counts.values() if c >= 2)
    if 2 <= len(counts) <= MAX_LABELS and len(counts) <= n / 3 and max(map(len, counts)) <= 60 and repeating >= 0.9 * n:
        labels = sorted(counts, key=lambda k: (-counts[k], k))
        return "label", labels, (f"label: {len(counts)} distinct targets over {n} rows, each {min(counts.values())} "
                                 f"to {max(counts.values())} times")
    return "text", None, f"text: {len(counts)} distinct targets over {n} rows (free text, not a small repeating set)"


# -- splitting -----------------------------------------------------------------------------------------
def eval_size(n: int) -> int:
    """Examples for dev and for test each: 15%, at least min(100, n/5), at most 500."""
    return min(500, max(round(0.15 * n), min(100, n // 5)))


def split_rows(targets: list[str], inputs: list[str], labels: list[str] | None, seed: int
               ) -> tuple[dict[str, list[int]], list[str]]:
    """Row indexes per split: test and dev of `eval_size` rows each, stratified by label, duplicate groups whole."""
    rng = random.Random(seed)
    groups = duplicate_groups(inputs, NEAR_DUPLICATE, seed)
    notes = []
    merged = sum(len(g) - 1 for g in groups)
    if merged:
        notes.append(f"{merged} rows repeat an earlier input (equal after normalization, or near-duplicates): each "
                     "group stays in one split")
    size = eval_size(len(targets))
    strata: dict[str, list[list[int]]] = defaultdict(list)
    for group in groups:
        strata[targets[group[0]] if labels else ""].append(group)
    quotas: dict[str, float] = {}
    for key, members in strata.items():
        count = sum(len(g) for g in members)
        if labels and count < 3:
            notes.append(f"label {key!r} has {count} example(s), too few to stratify: all go to train, so dev and test "
                         "cannot measure it")
            quotas[key] = 0.0
        else:
            quotas[key] = size * count / len(targets)
    out: dict[str, list[int]] = {"train": [], "dev": [], "test": []}
    for key in sorted(strata):
        members = strata[key]
        rng.shuffle(members)
        filled = {"test": 0, "dev": 0}
        for group in members:
            split = next((s for s in ("test", "dev") if filled[s] + len(group) / 2 <= quotas[key]), "train")
            if split != "train":
                filled[split] += len(group)
            out[split] += group
    for split in out:
        out[split].sort()
    return out, notes


# -- writing -------------------------------------------------------------------------------------------
def _yaml(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)  # JSON scalars and flow lists are valid YAML


def slug(text: str, fallback: str) -> str:
    """``text`` with every run of characters other than letters and digits made one hyphen."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or fallback


def _task_name(out: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", out.resolve().name).strip("-._") or "task"
    return name if name[0].isalnum() else f"t{name}"


def _token_counter(model: str, base: Path):
    """Tokens of a text under the task model's tokenizer (the one every backend and training use)."""
    from ladder.backends.hf.model import HFModel, resolve_model

    return HFModel(resolve_model(model, base)).count_continuation


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)


@dataclass
class InitResult:
    task_path: Path
    lines: list[str]  # what was inferred and why, for the terminal


def init_task(data: list[Path], out: Path, input_field: str | None = None, target_field: str | None = None,
              id_field: str | None = None, corpus: Path | None = None, model: str = "smollm2-135m-instruct",
              seed: int = 0, force: bool = False) -> InitResult:
    from ladder.scoring.stats import wilson

    if not data or len(data) > 3:
        raise LadderError(f"ladder init: give one data file, or train, dev and test files ({len(data)} given)")
    task_path = out / "task.yaml"
    if task_path.exists() and not force:
        raise LadderError(f"{task_path}: already exists (--force overwrites)")
    sources = [read_table(p) for p in data]
    where = str(data[0])
    all_rows = [r for s in sources for r in s.rows]
    input_field, target_field, id_field, notes = guess_fields(all_rows, where, input_field, target_field, id_field)
    for s in sources[1:]:
        guess_fields(s.rows, str(s.path), input_field, target_field, id_field)  # every file has the fields
    kind, labels, why = infer_kind([r[target_field] for r in all_rows])
    notes.append(f"output kind {why}")
    split_of = _assign_files(sources, seed) if len(sources) > 1 else None

    rows_by_split: dict[str, list[dict]] = {}
    made_ids = id_field is None
    if split_of is None:
        rows = sources[0].rows
        inputs = [as_text(r[input_field]) or "" for r in rows]
        targets = [as_text(r[target_field]) or "" for r in rows]
        indexes, split_notes = split_rows(targets, inputs, labels, seed)
        notes += split_notes
        stem = slug(sources[0].path.stem, "row")
        for split, members in indexes.items():
            rows_by_split[split] = [({"id": f"{stem}-{i:05d}"} if made_ids else {}) | rows[i] for i in members]
        notes.append(f"split {len(rows)} rows (seed {seed}) into train {len(indexes['train'])}, dev {len(indexes['dev'])}, "
                     f"test {len(indexes['test'])}" + (", stratified by label" if labels else ""))
    else:
        for split, source in split_of.items():
            stem = slug(source.path.stem, split)
            rows_by_split[split] = [({"id": f"{stem}-{i:05d}"} if made_ids else {}) | r for i, r in enumerate(source.rows)]
        notes.append("kept the given splits: " + ", ".join(f"{s} {split_of[s].path.name} ({len(split_of[s].rows)})"
                                                            for s in ("train", "dev", "test")))
    if made_ids:
        id_field = "id"
    n_dev = len(rows_by_split["dev"])
    if n_dev == 0 or not rows_by_split["train"] or not rows_by_split["test"]:
        raise LadderError(f"{where}: {sum(len(v) for v in rows_by_split.values())} rows are too few for train, dev and "
                          "test splits")
    low, high = wilson(round(0.5 * n_dev), n_dev)
    low9, high9 = wilson(round(0.9 * n_dev), n_dev)
    dev_note = (f"dev has {n_dev} examples: a 95% interval of about ±{(high - low) / 2:.3f} at a score of 0.5 and "
                f"±{(high9 - low9) / 2:.3f} at 0.9 (yes/no metrics): a gap to the target smaller than that stays inconclusive")
    notes.append(dev_note)

    out.mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(exist_ok=True)
    for split, rows in rows_by_split.items():
        (out / "data" / f"{split}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                     encoding="utf-8")
    extra = _extra_fields(all_rows, corpus is not None)
    notes += [f"field {name!r} read as data.{role}" for role, name in extra.items()]
    count = _token_counter(model, out)
    text = _task_yaml(out, rows_by_split, input_field, target_field, id_field, kind, labels, notes, corpus, model,
                      seed, count, dev_note, extra)
    task_path.write_text(text, encoding="utf-8")
    source_md = out / "SOURCE.md"
    if not source_md.exists() or force:
        source_md.write_text(_source_md(sources, notes), encoding="utf-8")
    _validate(task_path)
    return InitResult(task_path, notes)


def _extra_fields(rows: list[dict], has_corpus: bool) -> dict[str, str]:
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


def _assign_files(sources: list[Source], seed: int) -> dict[str, Source]:
    """train/dev/test by file name (train, dev|valid|validation|val, test|eval), else in the order given;
    with two files, train and test (dev is then split from train)."""
    named: dict[str, Source] = {}
    for s in sources:
        words = set(re.split(r"[^a-z]+", s.path.stem.lower()))
        for split, names in SPLIT_NAMES.items():
            if words & set(names) and split not in named:
                named[split] = s
                break
    if len(named) == len(sources):
        ordered = named
    else:
        ordered = dict(zip(("train", "dev", "test") if len(sources) == 3 else ("train", "test"), sources))
    if len(sources) == 2:
        train = ordered["train"]
        rng = random.Random(seed)
        indexes = list(range(len(train.rows)))
        rng.shuffle(indexes)
        n_dev = min(eval_size(len(train.rows) + len(ordered["test"].rows)), len(train.rows) // 3)
        dev = sorted(indexes[:n_dev])
        keep = sorted(indexes[n_dev:])
        ordered = {"train": Source(train.path, [train.rows[i] for i in keep], train.sha256),
                   "dev": Source(train.path.with_name(train.path.stem + "-dev" + train.path.suffix),
                                 [train.rows[i] for i in dev], train.sha256),
                   "test": ordered["test"]}
    return ordered


def _task_yaml(out: Path, rows: dict[str, list[dict]], input_field: str, target_field: str, id_field: str,
               kind: str, labels: list[str] | None, notes: list[str], corpus: Path | None, model: str, seed: int,
               count, dev_note: str, extra: dict[str, str]) -> str:
    train = rows["train"]
    train_inputs = [as_text(r[input_field]) or "" for r in train]
    train_targets = [as_text(r[target_field]) or "" for r in train]
    if kind == "label":
        instruction = f"Classify the input. Answer with exactly one of: {', '.join(labels or [])}."
    elif kind == "json":
        parsed = [_as_json(r[target_field]) for r in train]
        keys = Counter(k for p in parsed if isinstance(p, dict) for k in p)
        shape = "JSON object" if all(isinstance(p, dict) for p in parsed) else "JSON array"
        instruction = f"Answer with a {shape} only." + (
            f" Use the keys: {', '.join(k for k, _ in keys.most_common(12))}." if keys else "")
    else:
        instruction = "Answer the input. Answer briefly, with the answer only."
    input_tokens = [count(t) for t in train_inputs]
    target_tokens = [count(t) for t in train_targets]
    overhead = count(instruction) + 24  # chat template turns and the end-of-turn token
    lengths = [i + t + overhead for i, t in zip(input_tokens, target_tokens)]
    max_seq_len = max(64, min(2048, _round_up(max(lengths), 16)))
    steps_per_epoch = math.ceil(len(train) / 8)
    epochs = 1 if steps_per_epoch >= 50 else min(5, math.ceil(50 / steps_per_epoch))
    total_steps = steps_per_epoch * epochs
    eval_every = max(5, total_steps // 6)
    n_labels = len(labels or [])
    k = min(max(8, n_labels) if kind == "label" else 8, 16, len(train))
    metrics = {"label": ["accuracy"], "json": ["json_valid", "exact_match", "json_field_f1"],
               "text": ["exact_match", "token_f1"]}[kind]
    target_metric = {"label": "accuracy", "json": "json_field_f1", "text": "token_f1"}[kind]
    threshold = {"label": 0.9, "json": 0.9, "text": 0.5}[kind]
    lines = [
        f"# yaml-language-server: $schema={_schema_ref(out)}",
        "# Written by `ladder init`; every choice below says why. Edit freely, then `ladder validate`.",
        f"name: {_task_name(out)}",
        "description: \"\"  # one sentence: what the model must do, and for whom",
        "version: 1",
        "data:",
        "  train: data/train.jsonl",
        "  dev: data/dev.jsonl      # decisions (climb or stop) are made on dev",
        "  test: data/test.jsonl    # held out: read only by the eval step, reported beside dev",
        f"  input_field: {_yaml(input_field)}",
        f"  target_field: {_yaml(target_field)}",
        f"  id_field: {_yaml(id_field)}",
        *(f"  {role}: {_yaml(name)}  # " + ("other acceptable answers (lists of text)" if role == "alternatives_field"
                                         else "the corpus document answering each example: retrieval is scored on it")
          for role, name in extra.items()),
        "output:",
        f"  kind: {kind}  # {next(n for n in notes if n.startswith('output kind'))[len('output kind '):]}",
    ]
    if labels:
        lines.append(f"  labels: {_yaml(labels)}")
    lines += [
        f"metrics: {_yaml(metrics)}  # what fits output kind {kind}; every one is reported, the target decides",
        "target:",
        f"  metric: {target_metric}",
        f"  threshold: {threshold}  # a placeholder: set the score your product needs",
        f"  # {dev_note}",
        f"model: {model}",
    ]
    if corpus is not None:
        lines += ["corpus:",
                  f"  path: {_yaml(os.path.relpath(corpus.resolve(), out.resolve()))}  # documents the rag rung retrieves from"]
    lines += [
        "prompt:",
        f"  instruction: {_yaml(instruction)}  # generated from the data: write what a person would need to know",
        "  input_template: \"{input}\"",
        "rungs:",
        "  - type: prompt          # zero-shot: the instruction alone",
        "  - type: fewshot",
        f"    k: {k}                 # demonstrations from train" + (f" (at least one per label: {n_labels} labels)" if kind == "label" and n_labels > 8 else ""),
        f"    selection: {'stratified' if kind == 'label' else 'random'}  # {'balanced over the labels' if kind == 'label' else 'the default for non-label outputs'}",
    ]
    if corpus is not None:
        lines += ["  - type: rag             # retrieved passages in the prompt (--corpus)"]
    lines += [
        "  - type: lora",
        "    train:",
        f"      epochs: {epochs}            # {steps_per_epoch} steps of 8 per epoch over {len(train)} train examples"
        + ("" if epochs == 1 else f": {epochs} epochs for ~{total_steps} steps (one epoch would barely move the weights)"),
        f"      max_seq_len: {max_seq_len}     # the longest train example is {max(lengths)} tokens (instruction, input, answer)",
        f"      eval_every: {eval_every}        # ~6 dev evaluations over the training (early stopping on dev loss)",
        f"      checkpoint_every: {eval_every}",
        "  # - type: full          # a full fine-tune: add it when LoRA leaves a measured gap",
    ]
    if kind != "label":
        longest = max(target_tokens) if target_tokens else 16
        max_new = max(16, min(1024, _round_up(longest * 1.25 + 8, 8)))
        lines += ["generation:",
                  f"  max_new_tokens: {max_new}  # the longest train answer is {longest} tokens, plus a margin"]
    lines += [f"seed: {seed}", ""]
    return "\n".join(lines)


def _schema_ref(out: Path) -> str:
    schema = Path(__file__).resolve().parent / "task.schema.json"
    try:
        return os.path.relpath(schema, out.resolve())
    except ValueError:
        return str(schema)


def _source_md(sources: list[Source], notes: list[str]) -> str:
    lines = ["# Source", "", "Fill in: where the data comes from, its license, how it was collected or labelled, and",
             "anything a reader must know before trusting a score on it.", "", "## Files `ladder init` read", ""]
    lines += [f"- `{s.path}`: {len(s.rows)} rows, sha256 `{s.sha256}`" for s in sources]
    lines += ["", "## What `ladder init` inferred", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def _validate(task_path: Path) -> None:
    from ladder.data.splits import load_task_data
    from ladder.spec import load_task

    load_task_data(load_task(task_path))
