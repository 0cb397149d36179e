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

import json
from dataclasses import dataclass
from pathlib import Path

from ladder.data.read import read_table
from ladder.data.splits import as_text
from ladder.defaults import DEFAULT_MODEL
from ladder.errors import LadderError
from ladder.init.infer import extra_fields, guess_fields, infer_kind
from ladder.init.split import assign_files, split_rows
from ladder.init.write import slug, source_stub, task_yaml, token_counter, validate


@dataclass
class InitResult:
    task_path: Path
    lines: list[str]  # what was inferred and why, for the terminal


def init_task(
    data: list[Path],
    out: Path,
    input_field: str | None = None,
    target_field: str | None = None,
    id_field: str | None = None,
    corpus: Path | None = None,
    model: str = DEFAULT_MODEL,
    seed: int = 0,
    force: bool = False,
) -> InitResult:
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
    split_of = assign_files(sources, seed) if len(sources) > 1 else None

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
        notes.append(
            f"split {len(rows)} rows (seed {seed}) into train {len(indexes['train'])}, dev {len(indexes['dev'])}, "
            f"test {len(indexes['test'])}" + (", stratified by label" if labels else "")
        )
    else:
        for split, source in split_of.items():
            stem = slug(source.path.stem, split)
            rows_by_split[split] = [
                ({"id": f"{stem}-{i:05d}"} if made_ids else {}) | r for i, r in enumerate(source.rows)
            ]
        notes.append(
            "kept the given splits: "
            + ", ".join(f"{s} {split_of[s].path.name} ({len(split_of[s].rows)})" for s in ("train", "dev", "test"))
        )
    if made_ids:
        id_field = "id"
    n_dev = len(rows_by_split["dev"])
    if n_dev == 0 or not rows_by_split["train"] or not rows_by_split["test"]:
        raise LadderError(
            f"{where}: {sum(len(v) for v in rows_by_split.values())} rows are too few for train, dev and test splits"
        )
    low, high = wilson(round(0.5 * n_dev), n_dev)
    low9, high9 = wilson(round(0.9 * n_dev), n_dev)
    dev_note = (
        f"dev has {n_dev} examples: a 95% interval of about ±{(high - low) / 2:.3f} at a score of 0.5 and "
        f"±{(high9 - low9) / 2:.3f} at 0.9 (yes/no metrics): a gap to the target smaller than that stays inconclusive"
    )
    notes.append(dev_note)

    count, unestimated = token_counter(model, out)  # before anything is written: a bad --model writes nothing
    out.mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(exist_ok=True)
    for split, rows in rows_by_split.items():
        (out / "data" / f"{split}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )
    extra = extra_fields(all_rows, corpus is not None)
    notes += [f"field {name!r} read as data.{role}" for role, name in extra.items()]
    if unestimated:
        notes.append(f"token lengths not estimated (max_seq_len, max_new_tokens left at their defaults): {unestimated}")
    text = task_yaml(
        out,
        rows_by_split,
        input_field,
        target_field,
        id_field,
        kind,
        labels,
        notes,
        corpus,
        model,
        seed,
        count,
        dev_note,
        extra,
    )
    task_path.write_text(text, encoding="utf-8")
    source_md = out / "SOURCE.md"
    if not source_md.exists() or force:
        source_md.write_text(source_stub(sources, notes), encoding="utf-8")
    validate(task_path)
    return InitResult(task_path, notes)
