"""Data checks on small crafted data with known answers; `ladder check-data` end to end (scripted model for the
label-error check, the real tokenizer for truncation); assess records the checks."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import ROOT, _rows

from ladder.backends.scripted import ScriptedBackend, last_user_message
from ladder.cli.main import main
from ladder.data.measured import label_issue_check, truncation_check
from ladder.data.splits import load_splits, load_task_data
from ladder.errors import ValidationFailed
from ladder.run.datacheck import check_data
from ladder.spec import load_task

LONG = "the quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat near the old door of the house"


def _crafted():
    train = _rows("train", 12)
    train += [
        {"id": "dup-a", "text": "book a table for two", "label": "booking"},
        {"id": "dup-b", "text": "Book a  table for TWO", "label": "booking"},  # equal after normalization
        {"id": "dup-c", "text": "play some jazz", "label": "music"},
        {"id": "dup-d", "text": "play some jazz", "label": "music"},  # identical
        {"id": "conf-a", "text": "is it sunny", "label": "weather"},
        {"id": "conf-b", "text": "Is it sunny", "label": "music"},  # the same input, another target
        {"id": "near-train", "text": LONG + " tonight", "label": "weather"},
        {
            "id": "quote-train",
            "text": "my favourite line is that all happy families are alike in their own way",
            "label": "music",
        },
    ]
    dev = _rows("dev", 6, 1)
    test = _rows("test", 9, 2) + [
        {"id": "leak", "text": "PLAY some jazz!", "label": "music"},  # normalized copy? no: punctuation differs
        {"id": "exact-leak", "text": "play some jazz", "label": "music"},
        {"id": "near-test", "text": LONG + " today", "label": "weather"},  # the last word changed
        {
            "id": "quote-test",
            "text": "she said all happy families are alike in their own way so sing",
            "label": "music",
        },
        {"id": "long", "text": "weather " * 300, "label": "weather"},
    ]
    return train, dev, test


def test_every_cheap_check_on_crafted_data(make_task):
    train, dev, test = _crafted()
    task = load_task(make_task(train=train, dev=dev, test=test))
    splits = load_splits(task, strict=False)
    report = splits.checks
    by = {c.name: c for c in report.checks}
    dupes = {tuple(f.examples) for f in by["duplicates"].findings}
    assert dupes == {("train/dup-a", "train/dup-b"), ("train/dup-c", "train/dup-d")}
    assert any("equal after normalization" in f.detail for f in by["duplicates"].findings)
    assert any("identical" in f.detail for f in by["duplicates"].findings)
    assert by["conflicts"].severity == "error" and by["conflicts"].count == 1
    assert by["conflicts"].findings[0].examples == ["train/conf-a", "train/conf-b"]
    # exact leakage: the test copy of "play some jazz" (the punctuated one is a near-duplicate: Jaccard 1.0 over words)
    assert by["leakage"].severity == "error" and [f.examples[0] for f in by["leakage"].findings] == ["test/exact-leak"]
    near = {f.examples[0]: f for f in by["near_leakage"].findings if f.score >= 0.8}
    assert set(near) == {"test/leak", "test/near-test"} and by["near_leakage"].count == 2
    # 19 words once articles go (SQuAD tokens), the last changed: 17 of the 19 distinct word pairs shared
    assert near["test/near-test"].score == pytest.approx(17 / 19, abs=1e-3)
    assert near["test/near-test"].examples[1] == "train/near-train"
    assert [f.examples for f in by["ngram_overlap"].findings] == [["test/quote-test", "train/quote-train"]]
    assert by["length_outliers"].findings[0].examples == ["test/long"] and by["length_outliers"].severity == "info"
    assert report.label_balance["train"] == {"weather": 4 + 1 + 1, "music": 4 + 2 + 1 + 1, "booking": 4 + 2}
    assert {c.name for c in report.errors} == {"conflicts", "leakage", "near_leakage"}


def test_conflicts_and_leakage_are_errors_unless_allowed(make_task):
    train, dev, test = _crafted()
    with pytest.raises(ValidationFailed) as info:
        load_task_data(load_task(make_task(train=train, dev=dev, test=test)))
    problems = info.value.problems
    assert any(
        "train.jsonl:" in p and "the same input, different targets" in p and "data.allow_conflicting_targets" in p
        for p in problems
    )
    assert any("test.jsonl:11: leakage: test input also appears at" in p for p in problems)
    assert any("test.jsonl:12: near-duplicate of" in p and "Jaccard 0.89" in p for p in problems)
    assert not any("below the threshold" in p for p in problems)
    allowed = {
        "data": {
            "train": "train.jsonl",
            "dev": "dev.jsonl",
            "test": "test.jsonl",
            "input_field": "text",
            "target_field": "label",
            "id_field": "id",
            "allow_duplicate_inputs": True,
            "allow_conflicting_targets": True,
        }
    }
    data = load_task_data(load_task(make_task(allowed, train=train, dev=dev, test=test, folder="allowed")))
    warnings = data.splits.warnings
    assert any("allowed by data.allow_duplicate_inputs" in w for w in warnings)
    assert any("conflicts" in w and "allowed by data.allow_conflicting_targets" in w for w in warnings)


def test_a_label_missing_from_train_is_a_warning(make_task):
    train = [r for r in _rows("train", 12) if r["label"] != "booking"]
    splits = load_splits(load_task(make_task(train=train)))
    check = splits.checks.check("label_balance")
    assert (
        check.severity == "warning"
        and "'booking' has no train example but appears in dev and test" in check.findings[0].detail
    )


def test_truncation_and_label_issues_by_hand():
    from ladder.data.splits import Example

    examples = [Example(f"e{i}", f"text {i}", "a" if i % 2 else "b", "train", f"t.jsonl:{i + 1}") for i in range(20)]
    check = truncation_check([("lora", 10)], examples, lambda ex: 5 + int(ex.id[1:]))
    assert (
        check.count == 14 and check.findings[0].score == 24
    )  # lengths 5..24: 11 and up and "24 tokens > lora's max_seq_len 10" in check.findings[0].detail
    # a confident model that disagrees with two given labels: exactly those two, the most confident first
    probs = [[0.95, 0.05] if ex.target == "a" else [0.05, 0.95] for ex in examples]
    probs[3], probs[6] = [0.02, 0.98], [0.97, 0.03]  # e3 is labelled a, e6 labelled b
    check = label_issue_check(examples, probs, ["a", "b"], "a test")
    assert [f.examples[0] for f in check.findings] == ["train/e3", "train/e6"]
    assert "the model puts 0.02 on it and 0.98 on 'b'" in check.findings[0].detail


def _keyword_model(labels):
    words = {"raining": "weather", "song": "music", "table": "booking"}

    def respond(prompt: str) -> str:
        text = last_user_message(prompt)
        return next((label for word, label in words.items() if word in text), "unknown")

    return ScriptedBackend(respond, labels)


def test_check_data_finds_planted_label_errors(make_task):
    train = _rows("train", 30)
    for row in (train[4], train[17]):  # planted: labels that the (scripted) model contradicts
        row["label"] = "music" if row["label"] != "music" else "weather"
    task = load_task(make_task(train=train))
    report = check_data(task, backend=_keyword_model(["weather", "music", "booking"]), label_errors="")
    check = report.check("label_issues")
    assert {f.examples[0] for f in check.findings} == {"train/train-4", "train/train-17"}
    assert "the prompt rung's label probabilities" in check.summary


def test_check_data_cli_exit_codes_and_json(make_task, tmp_path, capsys):
    train, dev, test = _crafted()
    path = make_task(train=train, dev=dev, test=test)
    out = tmp_path / "checks.json"
    assert main(["check-data", str(path), "--json", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "FAIL Conflicting targets" in printed and "3 check(s) failed" in printed
    assert "test.jsonl:12: near-duplicate of" in printed
    saved = json.loads(out.read_text())
    assert {c["name"] for c in saved["checks"] if c["severity"] == "error"} == {"conflicts", "leakage", "near_leakage"}
    clean = make_task(folder="clean")
    assert main(["check-data", str(clean)]) == 0
    assert "no check failed" in capsys.readouterr().out
    assert main(["check-data", str(clean), "--label-errors", "nope"]) == 2
    assert "--label-errors: nope is not a prompt, fewshot or lora rung" in capsys.readouterr().err


def test_assess_records_the_checks_and_the_report_shows_them(make_task, tmp_path):
    from ladder.report import write_report
    from ladder.run.assess import assess

    train = _rows("train", 12) + [
        {"id": "d1", "text": "play some jazz", "label": "music"},
        {"id": "d2", "text": "play some jazz", "label": "music"},
    ]
    task = load_task(make_task(train=train))
    run, out = assess(task, backend=_keyword_model(["weather", "music", "booking"]), out_dir=tmp_path / "run")
    names = [c.name for c in run.data_checks.checks]
    assert names[:3] == ["duplicates", "conflicts", "leakage"] and "label_issues" in names
    assert run.data_checks.check("duplicates").count == 1
    assert any("duplicates" in w for w in run.warnings)
    write_report(out)
    md = (out / "report.md").read_text()
    assert "## Data checks" in md and "play some jazz" in md


@pytest.mark.model
def test_check_data_truncation_with_the_real_tokenizer(capsys):
    """us-address: the lora rung's max_seq_len 272 holds every train and dev example (the longest is 267 tokens
    of prompt and answer, as the task file says); the tokenizer alone is loaded, not the weights."""
    assert main(["check-data", str(ROOT / "tasks" / "us-address" / "task.yaml"), "--show", "0"]) == 0
    printed = capsys.readouterr().out
    assert "examples truncated by lora (max_seq_len 272): 0 of 1187 (the longest is 267 tokens)" in printed


def test_shipped_tasks_pass_their_data_checks():
    for name in ("snips-intent", "quiz-facts", "us-address"):
        splits = load_splits(load_task(ROOT / "tasks" / name / "task.yaml"))
        assert not splits.checks.errors, name
        raw = yaml.safe_load((ROOT / "tasks" / name / "task.yaml").read_text())
        assert not raw["data"].get("allow_duplicate_inputs")


@pytest.mark.model
def test_label_errors_by_k_fold_lora_score_every_train_example_out_of_fold(make_task, capsys):
    """The real model: two LoRA adapters, each trained on one half of train (2 steps) and scoring the other
    half; dev and test under the adapter trained on all of train."""
    spec = {
        "rungs": [
            {"type": "prompt"},
            {"type": "lora", "train": {"max_steps": 2, "batch_size": 4, "eval_every": 2, "max_seq_len": 64}},
        ]
    }
    path = make_task(spec)
    out = path.parent / "checks.json"
    code = main(["check-data", str(path), "--label-errors", "lora", "--folds", "2", "--json", str(out)])
    assert code == 0
    err = capsys.readouterr().err
    assert "fold 1/2" in err and "fold 2/2" in err and "train fold 2: 6 examples" in err
    check = next(c for c in json.loads(out.read_text())["checks"] if c["name"] == "label_issues")
    assert check["summary"].startswith(f"{check['count']} of 27 labels") and "2-fold lora adapters" in check["summary"]


def test_label_issues_on_too_few_examples_say_so():
    from ladder.data.splits import Example

    examples = [Example(f"e{i}", "x", "a", "dev", f"d.jsonl:{i + 1}") for i in range(3)]
    check = label_issue_check(examples, [[0.1, 0.9]] * 3, ["a", "b"], "a test")
    assert check.severity == "ok" and check.summary.startswith("not computed: 3 examples over 1 labels are too few")


def test_near_duplicates_with_other_targets_are_contrastive_pairs_not_leakage(make_task):
    """Templated short questions that differ in one word and have different answers (a real task: Jaccard
    0.80 over word pairs) test that word; they are a warning with the count. The same template with the same
    answer stays a refused leak."""
    template = "what is the capital of the state whose flower is the {} blossom in the spring season"
    train = _rows("train", 12) + [
        {"id": "t-a", "text": template.format("apple"), "label": "weather"},
        {"id": "t-b", "text": template.format("orange"), "label": "music"},
    ]
    test = _rows("test", 9, 2) + [
        {"id": "c-a", "text": template.format("apple") + " please", "label": "booking"},
        {"id": "c-b", "text": template.format("orange") + " please", "label": "music"},
    ]
    splits = load_splits(load_task(make_task(train=train, test=test)), strict=False)
    by = {c.name: c for c in splits.checks.checks}
    contrastive = by["near_contrastive"]
    assert contrastive.severity == "warning" and contrastive.count == 1
    assert (
        contrastive.findings[0].examples == ["test/c-a", "train/t-a"]
        and "targets differ" in contrastive.findings[0].detail
    )
    assert "contrastive pairs, not leaked answers" in contrastive.summary
    # c-b has the same answer as its near twin t-b: a leak, refused
    assert by["near_leakage"].severity == "error" and by["near_leakage"].count == 1
    assert by["near_leakage"].findings[0].examples == ["test/c-b", "train/t-b"]
    only_contrastive = [r for r in test if r["id"] != "c-b"]
    splits = load_splits(load_task(make_task(train=train, test=only_contrastive, folder="contrastive")), strict=False)
    assert not splits.checks.errors and splits.checks.check("near_contrastive").count == 1
