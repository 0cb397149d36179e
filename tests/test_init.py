"""`ladder init`: a team's own CSV/JSONL to a task folder that validates and assesses."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import ROOT

from ladder.backends.scripted import ScriptedBackend
from ladder.cli.main import main
from ladder.data.splits import load_task_data
from ladder.run.assess import assess
from ladder.spec import load_task

SHIPPED = ["snips-intent", "quiz-facts", "us-address"]


def _one_file(task: str, tmp_path: Path) -> Path:
    """The raw data behind a shipped task as a team would bring it: one file, the three splits together."""
    rows = [
        line
        for split in ("train", "dev", "test")
        for line in (ROOT / "tasks" / task / "data" / f"{split}.jsonl").read_text().splitlines()
    ]
    path = tmp_path / f"{task}.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def _init(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(["init", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("task", SHIPPED)
def test_one_file_of_a_shipped_task_becomes_a_task_that_validates_and_assesses(task, tmp_path, capsys):
    extra = ["--corpus", str(ROOT / "tasks" / task / "data" / "corpus.jsonl")] if task == "quiz-facts" else []
    out = tmp_path / "task"
    code, printed, err = _init([str(_one_file(task, tmp_path)), "--out", str(out), *extra], capsys)
    assert code == 0, err
    shipped = load_task(ROOT / "tasks" / task / "task.yaml").spec
    made = load_task(out / "task.yaml")
    spec = made.spec
    assert spec.output.kind == shipped.output.kind and spec.data.input_field == shipped.data.input_field
    assert spec.data.target_field == shipped.data.target_field and spec.data.id_field == "id"
    if shipped.output.labels:
        assert sorted(spec.output.labels) == sorted(shipped.output.labels)
    assert spec.target.metric == shipped.target.metric
    assert [r.type for r in spec.rungs] == ["prompt", "fewshot"] + (["rag"] if extra else []) + ["lora"]
    text = (out / "task.yaml").read_text()
    assert text.count("#") >= 12 and "placeholder" in text and (out / "SOURCE.md").is_file()
    schema = text.splitlines()[0].removeprefix("# yaml-language-server: $schema=")
    assert (out / schema).resolve() == (ROOT / "ladder" / "task.schema.json").resolve()  # editors find the schema
    assert "written and valid. Next: ladder assess" in printed and "dev has " in printed
    data = load_task_data(made).splits
    sizes = [len(data.train), len(data.dev), len(data.test)]
    assert sum(sizes) == len(_one_file(task, tmp_path).read_text().splitlines()) and min(sizes) >= 50
    run, _ = assess(made, backend=ScriptedBackend(), rungs=["prompt", "fewshot"], limit=5, out_dir=tmp_path / "run")
    assert run.status == "complete" and [r.name for r in run.rungs] == ["prompt", "fewshot"]


@pytest.mark.parametrize("task", SHIPPED)
def test_already_split_files_are_kept_as_given(task, tmp_path, capsys):
    files = [str(ROOT / "tasks" / task / "data" / f"{s}.jsonl") for s in ("test", "train", "dev")]  # any order: by name
    code, printed, err = _init([*files, "--out", str(tmp_path / "t")], capsys)
    assert code == 0, err
    data = load_task_data(load_task(tmp_path / "t")).splits
    for split in ("train", "dev", "test"):
        given = [
            json.loads(line)["id"]
            for line in (ROOT / "tasks" / task / "data" / f"{split}.jsonl").read_text().splitlines()
        ]
        assert [ex.id for ex in data.get(split)] == given
    assert "kept the given splits" in printed


def test_a_label_split_is_stratified_deterministic_and_keeps_duplicates_together(tmp_path, capsys):
    rows = []
    for i in range(300):
        label = ["pos", "neg", "neutral"][i % 3] if i % 10 else "neg"
        rows.append({"text": f"review number {i} about product {i * 7 % 101} said {label} things", "label": label})
    rows += [
        {
            "text": "Review NUMBER 5 about product 35 said neutral things!",
            "label": "neutral",
        },  # equal after normalization
        {"text": "review number 5 about product 35 said neutral things today", "label": "neutral"},
    ]  # near-duplicate
    rows.append({"text": "a rare one", "label": "sarcastic"})
    path = tmp_path / "reviews.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    code, printed, err = _init([str(path), "--out", str(tmp_path / "a")], capsys)
    assert code == 0, err
    assert "label 'sarcastic' has 1 example(s), too few to stratify: all go to train" in printed
    assert "2 rows repeat an earlier input" in printed
    splits = load_task_data(load_task(tmp_path / "a")).splits
    where = {ex.input: split for split in ("train", "dev", "test") for ex in splits.get(split)}
    group = ["review number 5 about product 35 said neutral things", rows[-3]["text"], rows[-2]["text"]]
    assert len({where[t] for t in group}) == 1
    assert where["a rare one"] == "train"
    for split in ("dev", "test"):
        shares = {
            lab: sum(ex.target == lab for ex in splits.get(split)) / len(splits.get(split))
            for lab in ("pos", "neg", "neutral")
        }
        assert abs(shares["neg"] - 0.4) < 0.06 and abs(shares["pos"] - 0.3) < 0.06
    code, _, _ = _init([str(path), "--out", str(tmp_path / "b")], capsys)
    for split in ("train", "dev", "test"):
        assert (tmp_path / "a" / "data" / f"{split}.jsonl").read_bytes() == (
            tmp_path / "b" / "data" / f"{split}.jsonl"
        ).read_bytes()


def test_json_and_text_targets_get_their_kind_metrics_and_a_generation_budget(tmp_path, capsys):
    json_rows = [
        {"id": f"r{i}", "input": f"name {i}, age {20 + i}", "output": {"name": str(i), "age": 20 + i}}
        for i in range(120)
    ]
    (tmp_path / "people.jsonl").write_text("".join(json.dumps(r) + "\n" for r in json_rows))
    code, printed, err = _init([str(tmp_path / "people.jsonl"), "--out", str(tmp_path / "j")], capsys)
    assert code == 0, err
    spec = load_task(tmp_path / "j").spec
    assert spec.output.kind == "json" and spec.target.metric == "json_field_f1" and "json_valid" in spec.metric_names
    assert spec.rungs[1].selection == "random" and "Use the keys: name, age" in spec.prompt.instruction
    assert 16 <= spec.generation.max_new_tokens <= 64
    text_rows = [
        {"question": f"What is {i} plus {i}?", "answer": f"The sum is {2 * i}", "id": f"q{i}"} for i in range(90)
    ]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in text_rows))
    code, printed, err = _init([str(tmp_path / "qa.jsonl"), "--out", str(tmp_path / "t")], capsys)
    assert code == 0, err
    spec = load_task(tmp_path / "t").spec
    assert spec.output.kind == "text" and spec.metric_names == ["exact_match", "token_f1"]
    assert spec.rungs[2].train.epochs > 1  # a small train split gets more than one epoch, and says why
    assert "epochs for ~" in (tmp_path / "t" / "task.yaml").read_text()


@pytest.mark.parametrize(
    "content,message",
    [
        (
            "play a song by muse,music\nwhat is the weather,weather\nbook a table,booking\n",
            "reviews.csv:1: the first row must be a header naming the fields",
        ),
        (
            "text,label\nplay a song,music\nwhat, then,weather\n",
            "reviews.csv:3: 3 fields, the header has 2 (a ragged CSV",
        ),
        ("song,music\nweather,weather\nmusic,music\n", "reviews.csv:1: the first row looks like data, not a header"),
        ("a,b\nx y,1\nz w,2\n", "cannot tell which field is the input: pass --input and --target (fields: a, b)"),
    ],
)
def test_bad_files_are_one_line_errors(content, message, tmp_path, capsys):
    path = tmp_path / "reviews.csv"
    path.write_text(content)
    code, _, err = _init([str(path), "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_named_fields_must_exist_and_an_existing_task_is_not_overwritten(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"q": f"question {i}", "a": ["x", "y"][i % 2]}) + "\n" for i in range(100)))
    code, _, err = _init([str(path), "--input", "question", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "--input 'question' is not a field of every row (fields: q, a)" in err
    assert _init([str(path), "--input", "q", "--target", "a", "--out", str(tmp_path / "o")], capsys)[0] == 0
    code, _, err = _init([str(path), "--input", "q", "--target", "a", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "task.yaml: already exists (--force overwrites)" in err


@pytest.mark.model
def test_an_initialised_task_assesses_on_the_real_model(tmp_path, capsys):
    code, _, err = _init([str(_one_file("snips-intent", tmp_path)), "--out", str(tmp_path / "s")], capsys)
    assert code == 0, err
    run, _ = assess(load_task(tmp_path / "s"), rungs=["prompt"], limit=8, out_dir=tmp_path / "run")
    assert run.status == "complete" and run.rungs[0].splits["test"].n == 8
    assert run.rungs[0].splits["test"].invalid_share == 0.0


def test_two_files_take_dev_from_train_with_the_seed(tmp_path, capsys):
    """Train and test given: dev is drawn from train, by --seed like a single file's split."""
    for name, n in (("train", 300), ("test", 60)):
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(
                json.dumps({"id": f"{name}-{i}", "text": f"{name} sentence number {i}", "label": ["a", "b"][i % 2]})
                + "\n"
                for i in range(n)
            )
        )
    dev = {}
    for seed in (0, 1):
        code, _, err = _init(
            [
                str(tmp_path / "train.jsonl"),
                str(tmp_path / "test.jsonl"),
                "--seed",
                str(seed),
                "--out",
                str(tmp_path / f"s{seed}"),
            ],
            capsys,
        )
        assert code == 0, err
        splits = load_task_data(load_task(tmp_path / f"s{seed}")).splits
        assert [ex.id for ex in splits.test] == [f"test-{i}" for i in range(60)]
        assert len(splits.train) + len(splits.dev) == 300 and splits.dev
        dev[seed] = {ex.id for ex in splits.dev}
    assert dev[0] != dev[1]
