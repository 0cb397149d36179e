"""Writing the task folder: task.yaml with a comment on every choice, SOURCE.md, and validating what was written."""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from pathlib import Path

from ladder.data.read import Source
from ladder.data.splits import as_text
from ladder.init.infer import as_json


# -- writing -------------------------------------------------------------------------------------------
def _yaml(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)  # JSON scalars and flow lists are valid YAML


def slug(text: str, fallback: str) -> str:
    """``text`` with every run of characters other than letters and digits made one hyphen."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or fallback


def _task_name(out: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", out.resolve().name).strip("-._") or "task"
    return name if name[0].isalnum() else f"t{name}"


def token_counter(model: str, base: Path):
    """Tokens of a text under the task model's tokenizer (the one every backend and training use)."""
    from ladder.backends.hf.model import HFModel, resolve_model

    return HFModel(resolve_model(model, base)).count_continuation


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
    metrics = {
        "label": ["accuracy"],
        "json": ["json_valid", "exact_match", "json_field_f1"],
        "text": ["exact_match", "token_f1"],
    }[kind]
    target_metric = {"label": "accuracy", "json": "json_field_f1", "text": "token_f1"}[kind]
    threshold = {"label": 0.9, "json": 0.9, "text": 0.5}[kind]
    lines = [
        f"# yaml-language-server: $schema={_schema_ref(out)}",
        "# Written by `ladder init`; every choice below says why. Edit freely, then `ladder validate`.",
        f"name: {_task_name(out)}",
        'description: ""  # one sentence: what the model must do, and for whom',
        "version: 1",
        "data:",
        "  train: data/train.jsonl",
        "  dev: data/dev.jsonl      # decisions (climb or stop) are made on dev",
        "  test: data/test.jsonl    # held out: read only by the eval step, reported beside dev",
        f"  input_field: {_yaml(input_field)}",
        f"  target_field: {_yaml(target_field)}",
        f"  id_field: {_yaml(id_field)}",
        *(
            f"  {role}: {_yaml(name)}  # "
            + (
                "other acceptable answers (lists of text)"
                if role == "alternatives_field"
                else "the corpus document answering each example: retrieval is scored on it"
            )
            for role, name in extra.items()
        ),
        "output:",
        f"  kind: {kind}  # {next(n for n in notes if n.startswith('output kind'))[len('output kind ') :]}",
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
        lines += [
            "corpus:",
            f"  path: {_yaml(os.path.relpath(corpus.resolve(), out.resolve()))}  # documents the rag rung retrieves from",
        ]
    lines += [
        "prompt:",
        f"  instruction: {_yaml(instruction)}  # generated from the data: write what a person would need to know",
        '  input_template: "{input}"',
        "rungs:",
        "  - type: prompt          # zero-shot: the instruction alone",
        "  - type: fewshot",
        f"    k: {k}                 # demonstrations from train"
        + (f" (at least one per label: {n_labels} labels)" if kind == "label" and n_labels > 8 else ""),
        f"    selection: {'stratified' if kind == 'label' else 'random'}  # {'balanced over the labels' if kind == 'label' else 'the default for non-label outputs'}",
    ]
    if corpus is not None:
        lines += ["  - type: rag             # retrieved passages in the prompt (--corpus)"]
    lines += [
        "  - type: lora",
        "    train:",
        f"      epochs: {epochs}            # {steps_per_epoch} steps of 8 per epoch over {len(train)} train examples"
        + (
            ""
            if epochs == 1
            else f": {epochs} epochs for ~{total_steps} steps (one epoch would barely move the weights)"
        ),
        f"      max_seq_len: {max_seq_len}     # the longest train example is {max(lengths)} tokens (instruction, input, answer)",
        f"      eval_every: {eval_every}        # ~6 dev evaluations over the training (early stopping on dev loss)",
        f"      checkpoint_every: {eval_every}",
        "  # - type: full          # a full fine-tune: add it when LoRA leaves a measured gap",
    ]
    if kind != "label":
        longest = max(target_tokens) if target_tokens else 16
        max_new = max(16, min(1024, _round_up(longest * 1.25 + 8, 8)))
        lines += [
            "generation:",
            f"  max_new_tokens: {max_new}  # the longest train answer is {longest} tokens, plus a margin",
        ]
    lines += [f"seed: {seed}", ""]
    return "\n".join(lines)


def _schema_ref(out: Path) -> str:
    schema = Path(__file__).resolve().parent / "task.schema.json"
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
