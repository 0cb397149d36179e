"""Writing the task folder: task.yaml with a comment on every choice, SOURCE.md, and validating what was written."""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from ladder.data.read import Source
from ladder.data.splits import as_text
from ladder.init.infer import as_json
from ladder.spec import TaskSpec

# -- writing -------------------------------------------------------------------------------------------
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _yaml(value: object) -> str:
    """A scalar or a list of scalars as YAML: a plain word as it is, anything else as JSON (which is YAML)."""
    if isinstance(value, str) and _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value, ensure_ascii=False)


def slug(text: str, fallback: str) -> str:
    """``text`` with every run of characters other than letters and digits made one hyphen."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or fallback


def _task_name(out: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", out.resolve().name).strip("-._") or "task"
    return name if name[0].isalnum() else f"t{name}"


def token_counter(model: str, base: Path):
    """Tokens of a text under the task model's tokenizer (the one every backend and training use); None, with the
    reason, where this install cannot read it (a core install without the model's package or ``ladder[local]``)."""
    from ladder.backends.hf.model import HFModel, resolve_model
    from ladder.errors import MissingDependency

    try:
        return HFModel(resolve_model(model, base)).count_continuation, None
    except MissingDependency as exc:
        return None, str(exc)


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)


def task_yaml(
    out: Path,
    rows: dict[str, list[dict]],
    input_field: str,
    target_field: str,
    id_field: str,
    kind: str,
    labels: list[str] | None,
    notes: list[str],
    corpus: Path | None,
    model: str,
    seed: int,
    count,
    dev_note: str,
    extra: dict[str, str],
) -> str:
    train = rows["train"]
    train_inputs = [as_text(r[input_field]) or "" for r in train]
    train_targets = [as_text(r[target_field]) or "" for r in train]
    if kind == "label":
        instruction = f"Classify the input. Answer with exactly one of: {', '.join(labels or [])}."
    elif kind == "json":
        parsed = [as_json(r[target_field]) for r in train]
        keys = Counter(k for p in parsed if isinstance(p, dict) for k in p)
        shape = "JSON object" if all(isinstance(p, dict) for p in parsed) else "JSON array"
        instruction = f"Answer with a {shape} only." + (
            f" Use the keys: {', '.join(k for k, _ in keys.most_common(12))}." if keys else ""
        )
    else:
        instruction = "Answer the input. Answer briefly, with the answer only."
    if count is not None:
        input_tokens = [count(t) for t in train_inputs]
        target_tokens = [count(t) for t in train_targets]
        overhead = count(instruction) + 24  # chat template turns and the end-of-turn token
        lengths = [i + t + overhead for i, t in zip(input_tokens, target_tokens)]
        max_seq_len: dict[str, int] = {"max_seq_len": max(64, min(2048, _round_up(max(lengths), 16)))}
    else:  # not estimated here: the defaults, and a comment that says so
        max_seq_len = {}
    steps_per_epoch = math.ceil(len(train) / 8)
    epochs = 1 if steps_per_epoch >= 50 else min(5, math.ceil(50 / steps_per_epoch))
    total_steps = steps_per_epoch * epochs
    eval_every = max(5, total_steps // 6)
    n_labels = len(labels or [])
    k = min(max(8, n_labels) if kind == "label" else 8, 16, len(train))
    metrics = {
        "label": ["accuracy"],
        "json": ["json_valid", "exact_match", "json_field_f1"],
        "text": ["exact_match", "token_f1"],
    }[kind]
    target_metric = {"label": "accuracy", "json": "json_field_f1", "text": "token_f1"}[kind]
    threshold = {"label": 0.9, "json": 0.9, "text": 0.5}[kind]
    doc: dict[str, Any] = {
        "name": _task_name(out),
        "description": "",
        "version": 1,
        "data": {
            "train": "data/train.jsonl",
            "dev": "data/dev.jsonl",
            "test": "data/test.jsonl",
            "input_field": input_field,
            "target_field": target_field,
            "id_field": id_field,
            **extra,
        },
        "output": {"kind": kind, **({"labels": labels} if labels else {})},
        "metrics": metrics,
        "target": {"metric": target_metric, "threshold": threshold},
        "model": model,
        **({"corpus": {"path": os.path.relpath(corpus.resolve(), out.resolve())}} if corpus is not None else {}),
        "prompt": {"instruction": instruction, "input_template": "{input}"},
        "rungs": [
            {"type": "prompt"},
            {"type": "fewshot", "k": k, "selection": "stratified" if kind == "label" else "random"},
            *([{"type": "rag"}] if corpus is not None else []),
            {
                "type": "lora",
                "train": {
                    "epochs": epochs,
                    **max_seq_len,
                    "eval_every": eval_every,
                    "checkpoint_every": eval_every,
                },
            },
        ],
        "seed": seed,
    }
    comments: dict[tuple[object, ...], str] = {
        ("description",): "one sentence: what the model must do, and for whom",
        ("data", "dev"): "decisions (climb or stop) are made on dev",
        ("data", "test"): "held out: read only by the eval step, reported beside dev",
        ("data", "alternatives_field"): "other acceptable answers (lists of text)",
        ("data", "doc_id_field"): "the corpus document answering each example: retrieval is scored on it",
        ("output", "kind"): next(n for n in notes if n.startswith("output kind"))[len("output kind ") :],
        ("metrics",): f"what fits output kind {kind}; every one is reported, the target decides",
        ("target", "threshold"): "a placeholder: set the score your product needs",
        ("corpus", "path"): "documents the rag rung retrieves from",
        ("prompt", "instruction"): "generated from the data: write what a person would need to know",
        ("rungs", 0, "type"): "zero-shot: the instruction alone",
        ("rungs", 1, "k"): "demonstrations from train"
        + (f" (at least one per label: {n_labels} labels)" if kind == "label" and n_labels > 8 else ""),
        ("rungs", 1, "selection"): "balanced over the labels"
        if kind == "label"
        else "the default for non-label outputs",
    }
    if corpus is not None:
        comments[("rungs", 2, "type")] = "retrieved passages in the prompt (--corpus)"
    lora = len(doc["rungs"]) - 1
    comments[("rungs", lora, "train", "epochs")] = (
        f"{steps_per_epoch} steps of 8 per epoch over {len(train)} train examples"
        + (
            ""
            if epochs == 1
            else f": {epochs} epochs for ~{total_steps} steps (one epoch would barely move the weights)"
        )
    )
    if count is not None:
        comments[("rungs", lora, "train", "max_seq_len")] = (
            f"the longest train example is {max(lengths)} tokens (instruction, input, answer)"
        )
    else:
        comments[("rungs", lora, "type")] = (
            "max_seq_len and max_new_tokens not estimated: the model's tokenizer is not installed here; "
            "`ladder check-data` measures truncation where it is"
        )
    comments[("rungs", lora, "train", "eval_every")] = (
        "~6 dev evaluations over the training (early stopping on dev loss)"
    )
    after = {
        ("target",): [dev_note],
        ("rungs",): ["- type: full  # a full fine-tune: add it when LoRA leaves a measured gap"],
    }
    if kind != "label" and count is not None:
        longest = max(target_tokens) if target_tokens else 16
        doc["generation"] = {"max_new_tokens": max(16, min(1024, _round_up(longest * 1.25 + 8, 8)))}
        comments[("generation", "max_new_tokens")] = f"the longest train answer is {longest} tokens, plus a margin"
        doc["seed"] = doc.pop("seed")  # last, as people read it
    TaskSpec.model_validate(doc)  # the document is a task: a renamed or mistyped field fails here, not for the user
    head = [
        f"# yaml-language-server: $schema={_schema_ref(out)}",
        "# Written by `ladder init`; every choice below says why. Edit freely, then `ladder validate`.",
    ]
    return "\n".join(head + _emit(doc, comments, after)) + "\n"


def _emit(
    value: dict[str, Any],
    comments: dict[tuple[object, ...], str],
    after: dict[tuple[object, ...], list[str]],
    path: tuple[object, ...] = (),
    indent: str = "",
) -> list[str]:
    """YAML lines of a mapping (scalars and lists of scalars as JSON, which is YAML; mappings and lists of mappings
    in block style), each line with its comment."""
    lines: list[str] = []
    for key, item in value.items():
        here = (*path, key)
        note = f"  # {comments[here]}" if here in comments else ""
        if isinstance(item, dict):
            lines += [f"{indent}{key}:{note}", *_emit(item, comments, after, here, indent + "  ")]
        elif isinstance(item, list) and item and all(isinstance(x, dict) for x in item):
            lines.append(f"{indent}{key}:{note}")
            for i, entry in enumerate(item):
                inner = _emit(entry, comments, after, (*here, i), indent + "    ")
                lines += [f"{indent}  - {inner[0].lstrip()}", *inner[1:]]
        else:
            lines.append(f"{indent}{key}: {_yaml(item)}{note}")
        lines += [f"{indent}{'  ' if isinstance(item, list) else ''}# {text}" for text in after.get(here, [])]
    return lines


def _schema_ref(out: Path) -> str:
    schema = Path(__file__).resolve().parents[1] / "task.schema.json"
    try:
        return os.path.relpath(schema, out.resolve())
    except ValueError:
        return str(schema)


def source_stub(sources: list[Source], notes: list[str]) -> str:
    lines = [
        "# Source",
        "",
        "Fill in: where the data comes from, its license, how it was collected or labelled, and",
        "anything a reader must know before trusting a score on it.",
        "",
        "## Files `ladder init` read",
        "",
    ]
    lines += [f"- `{s.path}`: {len(s.rows)} rows, sha256 `{s.sha256}`" for s in sources]
    lines += ["", "## What `ladder init` inferred", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def validate(task_path: Path) -> None:
    from ladder.data.splits import load_task_data
    from ladder.spec import load_task

    load_task_data(load_task(task_path))
