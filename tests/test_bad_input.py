"""Every malformed input: one line per problem naming the file and the field or line, exit code 2, no
traceback, and earlier results left as they were. Then hypothesis fuzzes the task loader and the data
readers: nothing but ladder's own error may come out of them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from conftest import base_spec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ladder.cli.main import main
from ladder.data.splits import load_task_data
from ladder.errors import LadderError
from ladder.spec import load_task, parse_task

BAD = [
    # (name, spec changes, {file: content or None to delete}, command, expected text in the one line)
    ("missing file", {}, {"dev.jsonl": None}, "validate", "task.yaml: data.dev: file not found: dev.jsonl"),
    (
        "not UTF-8",
        {},
        {"train.jsonl": b'{"id": "x", "text": "\xff\xfe", "label": "music"}\n'},
        "validate",
        "train.jsonl: not UTF-8 text",
    ),
    (
        "invalid JSONL line",
        {},
        {"dev.jsonl": '{"id": "d", "text": "t", "label": "music"}\n{not json\n'},
        "validate",
        "dev.jsonl:2: invalid JSON",
    ),
    (
        "CSV row without the field",
        {"data": {**base_spec()["data"], "dev": "dev.csv"}},
        {"dev.csv": "id,text,label\nd1,,music\n"},
        "validate",
        "dev.csv:2: missing field 'text' (input_field)",
    ),
    ("empty split", {}, {"test.jsonl": ""}, "validate", "test.jsonl: split 'test' has no examples"),
    (
        "missing field",
        {},
        {"dev.jsonl": '{"id": "d", "label": "music"}\n'},
        "validate",
        "dev.jsonl:1: missing field 'text' (input_field)",
    ),
    (
        "duplicate id",
        {},
        {"dev.jsonl": '{"id": "train-0", "text": "q", "label": "music"}\n'},
        "validate",
        "dev.jsonl:1: duplicate id 'train-0' (first at",
    ),
    (
        "label outside the set",
        {},
        {"dev.jsonl": '{"id": "d", "text": "q", "label": "zzz"}\n'},
        "validate",
        "dev.jsonl:1: label 'zzz' is not in output.labels",
    ),
    (
        "overlapping splits",
        {},
        {"test.jsonl": json.dumps({"id": "t", "text": "is it raining in place train 0", "label": "weather"}) + "\n"},
        "validate",
        "test.jsonl:1: leakage: test input also appears at",
    ),
    (
        "unknown rung",
        {"rungs": [{"type": "promt"}]},
        {},
        "validate",
        "rungs[0].type: unknown rung 'promt' (did you mean 'prompt'?)",
    ),
    (
        "unknown metric",
        {"metrics": ["acuracy"]},
        {},
        "validate",
        "metrics[0]: unknown metric 'acuracy'; did you mean 'accuracy'?",
    ),
    ("unknown field", {"sed": 1}, {}, "validate", "sed: unknown field (did you mean 'seed'?)"),
    (
        "k larger than train",
        {"rungs": [{"type": "fewshot", "k": 50}]},
        {},
        "validate",
        "task.yaml: rungs[0].k: 50 demonstrations asked, the train split has 12",
    ),
    (
        "negative learning rate",
        {"rungs": [{"type": "lora", "train": {"learning_rate": -1}}]},
        {},
        "validate",
        "rungs[0].train.learning_rate: Input should be greater than 0",
    ),
    (
        "model path that does not exist",
        {"model": "nowhere/model"},
        {},
        "assess",
        "task.yaml: model: 'nowhere/model' is neither a known alias",
    ),
    (
        "corpus document without text",
        {"corpus": {"path": "corpus.jsonl"}},
        {"corpus.jsonl": '{"id": "d1", "text": ""}\n'},
        "validate",
        "corpus.jsonl:1: missing field 'text' (corpus.text_field)",
    ),
    (
        "code in YAML",
        None,
        {"task.yaml": "name: !!python/object/apply:os.system ['echo hacked']\n"},
        "validate",
        "task.yaml:1: invalid YAML: could not determine a constructor for the tag",
    ),
    (
        "not a mapping",
        None,
        {"task.yaml": "- a\n- b\n"},
        "validate",
        "(top level): expected a mapping of fields, got list",
    ),
    (
        "json target that is not JSON",
        {
            "output": {"kind": "json"},
            "metrics": ["json_valid"],
            "target": {"metric": "json_valid", "threshold": 0.5},
            "rungs": [{"type": "prompt"}],
        },
        {},
        "validate",
        "train.jsonl:1: field 'label' is not JSON",
    ),
    (
        "sampling with loglik",
        {"generation": {"temperature": 0.7}},
        {},
        "validate",
        "label_scoring 'loglik' scores every label without decoding",
    ),
    ("unknown backend", {}, {}, "assess --backend scriptd", "unknown backend 'scriptd'; did you mean 'scripted'?"),
    (
        "distill without a teacher",
        {"rungs": [{"type": "distill"}]},
        {},
        "validate",
        "rung 'distill': a distill rung needs a teacher: a prompt, fewshot or rag rung listed before it",
    ),
    (
        "distill taught by a trained rung",
        {"rungs": [{"type": "prompt"}, {"type": "distill", "teacher": "lora"}, {"type": "lora"}]},
        {},
        "validate",
        "rung 'distill': teacher 'lora' is not a rung listed before it; the teacher is a prompt, fewshot or rag rung",
    ),
    (
        "preference starting from a non-lora rung",
        {"rungs": [{"type": "prompt"}, {"type": "preference", "init": "prompt"}]},
        {},
        "validate",
        "rung 'preference': init 'prompt' is not a lora rung listed before it",
    ),
    (
        "preference with nothing to reject",
        {"rungs": [{"type": "preference"}]},
        {},
        "validate",
        "a preference rung needs rejected answers: a rung listed before it",
    ),
    (
        "continued rung with no text",
        {"rungs": [{"type": "prompt"}, {"type": "continued"}]},
        {},
        "validate",
        "rung 'continued': the continued rung learns from the domain's text: give data.domain_text or a `corpus`",
    ),
    (
        "continued rung from a domain_text the task lacks",
        {"rungs": [{"type": "continued", "source": "domain_text"}], "corpus": {"path": "corpus.jsonl"}},
        {"corpus.jsonl": '{"id": "a", "text": "Rain is weather."}\n'},
        "validate",
        "rung 'continued': source 'domain_text' needs data.domain_text",
    ),
    (
        "lora starting from a non-continued rung",
        {"rungs": [{"type": "prompt"}, {"type": "lora", "init": "prompt"}]},
        {},
        "validate",
        "rung 'lora': init 'prompt' is not a continued rung listed before it",
    ),
    (
        "domain_text file missing",
        {"data": {**base_spec()["data"], "domain_text": "domain.jsonl"}, "rungs": [{"type": "continued"}]},
        {},
        "validate",
        "task.yaml: data.domain_text: not found: domain.jsonl",
    ),
    (
        "domain_text row without text",
        {"data": {**base_spec()["data"], "domain_text": "domain.jsonl"}, "rungs": [{"type": "continued"}]},
        {"domain.jsonl": '{"text": "Rain is weather."}\n{"body": "Jazz is music."}\n'},
        "validate",
        "domain.jsonl:2: missing field 'text'",
    ),
    (
        "unlabeled file missing",
        {"data": {**base_spec()["data"], "unlabeled": "more.jsonl"}},
        {},
        "validate",
        "task.yaml: data.unlabeled: file not found: more.jsonl",
    ),
    (
        "unlabeled row without input",
        {"data": {**base_spec()["data"], "unlabeled": "more.jsonl"}},
        {"more.jsonl": '{"id": "u1", "text": "play jazz"}\n{"id": "u2"}\n'},
        "validate",
        "more.jsonl:2: missing field 'text'",
    ),
    (
        "unlabeled input that is a test input",
        {"data": {**base_spec()["data"], "unlabeled": "more.jsonl"}},
        {"more.jsonl": '{"id": "u1", "text": "is it raining in place test 1"}\n'},
        "validate",
        "test.jsonl:2); data.unlabeled must not hold dev or test inputs",
    ),
    (
        "preference pair without rejected",
        {"data": {**base_spec()["data"], "preferences": "prefs.jsonl"}},
        {"prefs.jsonl": '{"text": "play jazz", "chosen": "music"}\n'},
        "validate",
        "prefs.jsonl:1: missing field 'rejected'",
    ),
    (
        "preference pair with equal answers",
        {"data": {**base_spec()["data"], "preferences": "prefs.jsonl"}},
        {"prefs.jsonl": '{"text": "play jazz", "chosen": "music", "rejected": "music"}\n'},
        "validate",
        "prefs.jsonl:1: chosen and rejected are the same answer",
    ),
]


@pytest.mark.parametrize("name,changes,files,command,expected", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_exit_2(name, changes, files, command, expected, make_task, capsys):
    path = make_task(changes or {})
    for file, content in files.items():
        target = path.parent / file
        if content is None:
            target.unlink()
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    words = command.split()
    args = [words[0], str(path), *words[1:]]
    if words[0] == "assess":
        args += ["--out", str(path.parent / "run")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and expected in err, err
    assert all(line.startswith("error: ") for line in err.splitlines() if not line.startswith(("warning:", "backend ")))


def test_a_max_seq_len_no_training_example_fits_is_found_before_any_rung_runs(make_task, tmp_path, capsys):
    """A lora rung (its targets) or a distill rung (its prompt and one answer token) whose max_seq_len no training
    example fits: one line and exit 2 from the tokenizer, before the first rung is evaluated (a distill rung once
    failed this way after 2.5 minutes of evaluation and teacher answers)."""
    for rung, what in [
        ({"type": "lora"}, "instruction + input + answer"),
        ({"type": "distill"}, "instruction + input + one answer token"),
    ]:
        path = make_task(
            {"rungs": [{"type": "prompt"}, {**rung, "train": {"max_steps": 1, "max_seq_len": 8}}]}, folder=rung["type"]
        )
        out = tmp_path / rung["type"]
        assert main(["assess", str(path), "--backend", "scripted", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        last = err.splitlines()[-1]
        assert (
            last.startswith("error: ") and f"rungs[{rung['type']}].train.max_seq_len: 8 is shorter than every" in last
        )
        assert f"(the shortest, {what}, is" in last and "[prompt] dev" not in err  # nothing was evaluated


def test_a_bad_rung_mid_run_keeps_the_rungs_already_measured(make_task, tmp_path, capsys, monkeypatch):
    """A rung that fails to build is one line and exit 2, and run.json keeps every rung measured before it."""
    from ladder.errors import LadderError
    from ladder.record import load_run
    from ladder.rungs import RUNGS

    def fails(rung, ctx):
        raise LadderError("rungs[fewshot].k: no demonstrations could be chosen")

    monkeypatch.setitem(RUNGS._items, "fewshot", fails)
    path = make_task()
    out = tmp_path / "run"
    assert main(["assess", str(path), "--backend", "scripted", "--out", str(out)]) == 2
    last = capsys.readouterr().err.splitlines()[-1]  # progress lines before it
    assert last.startswith("error: ") and "rungs[fewshot].k: no demonstrations could be chosen" in last
    saved = load_run(out)
    assert saved.status == "failed" and [r.name for r in saved.rungs] == ["prompt"]


def test_no_traceback_from_a_subprocess_on_bad_yaml(tmp_path):
    bad = tmp_path / "task.yaml"
    bad.write_bytes(b"name: [unclosed\n\xff")
    result = subprocess.run([sys.executable, "-m", "ladder", "validate", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr and result.stderr.startswith("error: ")


# -- fuzzing ------------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
FIELDS = [
    "name",
    "data",
    "output",
    "metrics",
    "target",
    "prompt",
    "rungs",
    "generation",
    "policy",
    "cost",
    "seed",
    "model",
    "corpus",
    "train",
    "dev",
    "test",
    "kind",
    "labels",
    "type",
    "k",
    "threshold",
    "metric",
]


def _mutated_spec():
    """A valid spec with some fields replaced by arbitrary JSON values (or removed)."""
    return st.fixed_dictionaries({}).flatmap(
        lambda _: st.lists(st.tuples(st.sampled_from(FIELDS), json_values | st.just("__delete__")), max_size=4)
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=_mutated_spec(), junk=st.dictionaries(st.text(max_size=8), json_values, max_size=2))
def test_fuzzed_task_specs_raise_only_ladder_errors(changes, junk):
    raw = base_spec()
    raw["rungs"] = [{"type": "prompt"}, {"type": "fewshot", "k": 2}]
    for field, value in changes:
        if value == "__delete__":
            raw.pop(field, None)
        else:
            raw[field] = value
    raw.update(junk)
    try:
        parse_task(raw, "task.yaml")
    except LadderError as exc:
        assert str(exc) and all(line.startswith("task.yaml: ") for line in str(exc).splitlines())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_fuzzed_yaml_text_raises_only_ladder_errors(text, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "task.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_task(path)
    except LadderError as exc:  # every problem one line, naming the file (and the line or field)
        lines = str(exc).splitlines()
        assert lines and all(line.startswith(f"{path.resolve()}") and ": " in line for line in lines), lines


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    split=st.sampled_from(["train", "dev", "test"]),
    lines=st.lists(json_values.map(json.dumps) | st.text(max_size=40) | st.just(""), min_size=0, max_size=6),
    raw_bytes=st.binary(max_size=40),
    csv=st.booleans(),
)
def test_fuzzed_data_files_raise_only_ladder_errors(split, lines, raw_bytes, csv, tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    spec = base_spec()
    rows = {
        s: [{"id": f"{s}-{i}", "text": f"{s} {i}", "label": "music"} for i in range(3)]
        for s in ("train", "dev", "test")
    }
    for s, rs in rows.items():
        (root / f"{s}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rs))
    name = f"{split}.csv" if csv else f"{split}.jsonl"
    spec["data"][split] = name
    (root / name).write_bytes("\n".join(lines).encode("utf-8") + raw_bytes)
    (root / "task.yaml").write_text(yaml.safe_dump(spec))
    try:
        load_task_data(load_task(root / "task.yaml"))
    except LadderError as exc:
        assert str(exc)
