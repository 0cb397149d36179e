from __future__ import annotations

import pytest

from ladder.data.splits import load_splits
from ladder.errors import ValidationFailed
from ladder.spec import load_task


def test_loads_splits_and_hashes(make_task):
    splits = load_splits(load_task(make_task()))
    assert (len(splits.train), len(splits.dev), len(splits.test)) == (12, 6, 9)
    assert set(splits.hashes) == {"train", "dev", "test"} and all(len(h) == 64 for h in splits.hashes.values())
    assert splits.test[0].split == "test" and splits.test[0].id == "test-0"


def test_csv_and_hash_ids(make_task, tmp_path):
    path = make_task(
        {
            "data": {
                "train": "train.csv",
                "dev": "dev.jsonl",
                "test": "test.jsonl",
                "input_field": "text",
                "target_field": "label",
            }
        }
    )
    (path.parent / "train.csv").write_text('text,label\n"hello, {braces}",weather\nplay it,music\n', encoding="utf-8")
    splits = load_splits(load_task(path))
    assert [e.input for e in splits.train] == ["hello, {braces}", "play it"]
    assert len(splits.train[0].id) == 12  # no id field: a hash of the input
    assert splits.train[1].source.endswith("train.csv:3")


def test_leakage_is_an_error_or_a_warning(make_task):
    leaked = [{"id": "x", "text": "  IS it raining in place train 0 ", "label": "weather"}]
    with pytest.raises(ValidationFailed) as info:
        load_splits(load_task(make_task(test=leaked)))
    assert len(info.value.problems) == 1
    assert "test.jsonl:1: leakage: test input also appears at" in info.value.problems[0]
    assert "train.jsonl:1" in info.value.problems[0]

    path = make_task(
        {
            "data": {
                "train": "train.jsonl",
                "dev": "dev.jsonl",
                "test": "test.jsonl",
                "input_field": "text",
                "target_field": "label",
                "id_field": "id",
                "allow_duplicate_inputs": True,
            }
        },
        test=leaked,
        folder="allowed",
    )
    splits = load_splits(load_task(path))
    assert len(splits.warnings) == 1 and "allowed by data.allow_duplicate_inputs" in splits.warnings[0]


def test_every_row_problem_reported(make_task):
    test = [
        {"id": "a", "text": "one", "label": "weather"},
        {"id": "a", "text": "two", "label": "nope"},
        {"id": "b", "label": "music"},
        {"id": "c", "text": ["not", "text"], "label": "music"},
    ]
    with pytest.raises(ValidationFailed) as info:
        load_splits(load_task(make_task(test=test, dev=[])))
    problems = "\n".join(info.value.problems)
    assert "dev.jsonl: split 'dev' has no examples" in problems
    assert "test.jsonl:2: label 'nope' is not in output.labels" in problems
    assert "test.jsonl:3: missing field 'text' (input_field)" in problems
    assert "test.jsonl:2: duplicate id 'a' (first at" in problems
    assert len(info.value.problems) == 4  # a list input is serialized as text, not an error


def test_json_targets_must_parse_as_an_object_or_array(make_task):
    spec = {
        "output": {"kind": "json"},
        "metrics": ["json_valid"],
        "target": {"metric": "json_valid", "threshold": 0.9},
        "rungs": [{"type": "prompt"}],
    }
    good = lambda prefix: [{"id": f"{prefix}-{i}", "text": f"{prefix} {i}", "label": {"a": i}} for i in range(3)]
    rows = [
        {"id": "t1", "text": "a", "label": '{"a": 1}'},
        {"id": "t2", "text": "b", "label": '[{"value": 1}]'},
        {"id": "t3", "text": "c", "label": "not json"},
        {"id": "t4", "text": "d", "label": "42"},
        {"id": "t5", "text": "e", "label": [{"value": 2, "unit": "m"}]},
    ]
    with pytest.raises(ValidationFailed) as info:
        load_splits(load_task(make_task(spec, train=good("train"), dev=good("dev"), test=rows)))
    problems = info.value.problems
    assert len(problems) == 2  # an object, an array, and a list given as JSON itself are all fine
    assert any(
        p.endswith("test.jsonl:3: field 'label' is not JSON (Expecting value) (output.kind json)") for p in problems
    )
    assert any(
        p.endswith("test.jsonl:4: field 'label' is JSON int, not an object or array (output.kind json)")
        for p in problems
    )
