"""The metrics real tasks need, against hand-computed values; options and lenient extraction as a task
file names them; metric plugins found through the `ladder.metrics` entry-point group."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

from ladder.errors import ValidationFailed
from ladder.metrics import METRICS, first_json, first_label, read_number, scorers
from ladder.spec import parse_task


def _spec(metrics, kind="text", labels=None, target=None):
    raw = {
        "name": "t",
        "data": {"train": "a.jsonl", "dev": "b.jsonl", "test": "c.jsonl"},
        "output": {"kind": kind, **({"labels": labels} if labels else {})},
        "metrics": metrics,
        "target": {"metric": target or "exact_match", "threshold": 0.5},
        "prompt": {"instruction": "x"},
        "rungs": [{"type": "prompt"}],
    }
    return parse_task(raw, "task.yaml")


def _score(spec, name, prediction, *references):
    return scorers(spec)[name].score(prediction, tuple(references))


def test_items_f1_set_and_multiset_by_hand():
    spec = _spec(
        [
            "exact_match",
            {"metric": "items_f1"},
            {"metric": "items_f1", "name": "bag", "options": {"multiset": True}},
            {"metric": "items_f1", "name": "semi", "options": {"separator": ";"}},
        ]
    )
    # set: pred {python, sql, java}, gold {python, sql, go, rust}: 2 common, P 2/3, R 2/4, F1 = 4/7
    assert math.isclose(_score(spec, "items_f1", "Python, SQL, Java", "python, sql, go, rust"), 4 / 7)
    # items are normalized; trailing punctuation and a leading "and" go; order does not matter
    assert _score(spec, "items_f1", "rust, and Go.", "go, rust") == 1.0
    # repeated items: a set counts them once (F1 1); a multiset counts both (P 1/2... pred a,a gold a: P 1/2 R 1)
    assert _score(spec, "items_f1", "a, a", "a") == 1.0
    assert math.isclose(_score(spec, "bag", "a, a", "a"), 2 * 0.5 * 1 / 1.5)
    assert math.isclose(_score(spec, "semi", "a; b, c", "a;b, c"), 1.0)
    assert _score(spec, "items_f1", "", "") == 1.0 and _score(spec, "items_f1", "x", "") == 0.0


def test_items_f1_item_pattern():
    spec = _spec(["exact_match", {"metric": "items_f1", "options": {"item_pattern": r"#(\w+)"}}])
    # items are the pattern's group: {ml, nlp} vs {nlp, cv}: 1 common, P 1/2, R 1/2
    assert math.isclose(_score(spec, "items_f1", "tags: #ml and #nlp", "#nlp #cv"), 0.5)


def test_rouge_l_by_hand():
    spec = _spec(
        ["exact_match", "rouge_l", {"metric": "rouge_l", "name": "rouge_stem", "options": {"use_stemmer": True}}]
    )
    # LCS("the cat sat on the mat", "the cat is on the mat") = the cat on the mat = 5; P = R = 5/6
    assert math.isclose(_score(spec, "rouge_l", "the cat sat on the mat", "the cat is on the mat"), 5 / 6)
    # stemming: "running dogs" vs "run dog": 0 common without, 2 with
    assert _score(spec, "rouge_l", "running dogs", "run dog") == 0.0
    assert _score(spec, "rouge_stem", "running dogs", "run dog") == 1.0
    # several references: the best counts
    assert _score(spec, "rouge_l", "a b", "x y", "a b") == 1.0


def test_chrf_against_sacrebleu_and_bounds():
    from sacrebleu.metrics import CHRF

    spec = _spec(["exact_match", "chrf", {"metric": "chrf", "name": "chrf++", "options": {"word_order": 2}}])
    hyp, ref = "The quick brown fox", "The quick brown dog"
    assert math.isclose(_score(spec, "chrf", hyp, ref), CHRF().sentence_score(hyp, [ref]).score / 100)
    assert math.isclose(_score(spec, "chrf++", hyp, ref), CHRF(word_order=2).sentence_score(hyp, [ref]).score / 100)
    assert _score(spec, "chrf", ref, ref) == 1.0 and _score(spec, "chrf", "zzz", "abc") == 0.0
    assert 0.5 < _score(spec, "chrf", hyp, ref) < 1.0


def test_numeric_match_with_tolerance():
    spec = _spec(
        [
            "exact_match",
            "numeric_match",
            {"metric": "numeric_match", "name": "near", "options": {"abs_tol": 0.5}},
            {"metric": "numeric_match", "name": "pct", "options": {"rel_tol": 0.01}},
        ]
    )
    assert _score(spec, "numeric_match", "1,234.0", "1234") == 1.0
    assert _score(spec, "numeric_match", "$12", "12") == 1.0 and _score(spec, "numeric_match", "40%", "40") == 1.0
    assert _score(spec, "numeric_match", "12.4", "12") == 0.0 and _score(spec, "near", "12.4", "12") == 1.0
    assert _score(spec, "pct", "1009", "1000") == 1.0 and _score(spec, "pct", "1011", "1000") == 0.0
    assert _score(spec, "numeric_match", "about 12", "12") == 0.0  # strict: the whole output is one number
    assert read_number("1,23") is None and read_number("−3") == -3.0 and read_number("nan") is None


def test_lenient_scoring_beside_strict():
    spec = _spec(
        ["accuracy", {"metric": "accuracy", "extract": "first_label"}],
        kind="label",
        labels=["PlayMusic", "GetWeather", "Play"],
        target="accuracy",
    )
    assert list(scorers(spec)) == ["accuracy", "accuracy_lenient"]
    out = "The intent is GetWeather, not PlayMusic."
    assert (
        _score(spec, "accuracy", out, "GetWeather") == 0.0
        and _score(spec, "accuracy_lenient", out, "GetWeather") == 1.0
    )
    # whole words, the longest label at the same position
    assert first_label("playmusic now", ["Play", "PlayMusic"]) == "PlayMusic"
    assert first_label("play it", ["Play", "PlayMusic"]) == "Play"
    assert first_label("display", ["Play"]) is None


def test_lenient_json_number_and_regex():
    spec = _spec(
        ["json_field_f1", {"metric": "json_field_f1", "extract": "first_json"}], kind="json", target="json_field_f1"
    )
    out = 'Sure! Here is the JSON:\n```json\n{"city": "Boston", "zip": "02110"}\n```'
    gold = '{"zip": "02110", "city": "Boston"}'
    assert _score(spec, "json_field_f1", out, gold) == 0.0 and _score(spec, "json_field_f1_lenient", out, gold) == 1.0
    assert first_json("no json {here") is None and first_json("x [1, 2] y") == "[1, 2]"
    spec = _spec(
        [
            "exact_match",
            {"metric": "numeric_match", "extract": "first_number"},
            {"metric": "exact_match", "name": "answer", "extract": {"regex": r"Answer:\s*(\w+)"}},
        ]
    )
    assert _score(spec, "numeric_match_lenient", "It is about 42 km.", "42") == 1.0
    assert _score(spec, "answer", "Let me think. Answer: Paris", "paris") == 1.0
    assert _score(spec, "answer", "Paris", "paris") == 1.0  # nothing extracted: the output as it is


@pytest.mark.parametrize(
    "metrics, target, message",
    [
        (["exact_match", "rouge"], "exact_match", "metrics[1]: unknown metric 'rouge'; did you mean 'rouge_l'?"),
        (
            ["exact_match", {"metric": "items_f1", "options": {"sep": ";"}}],
            "exact_match",
            "metrics[1].options.sep: unknown option",
        ),
        (
            ["exact_match", {"metric": "items_f1", "options": {"item_pattern": "("}}],
            "exact_match",
            "metrics[1].options.item_pattern",
        ),
        (
            ["exact_match", {"metric": "token_f1", "options": {"x": 1}}],
            "exact_match",
            "metrics[1]: metric 'token_f1' takes no options",
        ),
        (["exact_match", {"metric": "exact_match"}], "exact_match", "the name 'exact_match' is used twice"),
        (
            ["exact_match", {"metric": "exact_match", "extract": "first_label"}],
            "exact_match",
            "first_label needs output.kind 'label'",
        ),
        (
            ["exact_match", {"metric": "exact_match", "extract": {"regex": "["}}],
            "exact_match",
            "not a regular expression",
        ),
        (["exact_match"], "rouge_l", "target.metric 'rouge_l' is not one of metrics"),
    ],
)
def test_bad_metric_entries_name_the_field(metrics, target, message):
    with pytest.raises(ValidationFailed) as err:
        _spec(metrics, target=target)
    assert any(message in line and line.startswith("task.yaml: ") for line in err.value.problems), err.value.problems


PLUGIN = '''
from ladder.metrics import Metric


def _length_ratio(prediction: str, target: str) -> float:
    """min(len) / max(len) of the two texts: a toy graded metric."""
    a, b = len(prediction.strip()), len(target.strip())
    return 1.0 if a == b == 0 else min(a, b) / max(a, b)


length_ratio = Metric("length_ratio", _length_ratio, binary=False)
'''


def test_metric_plugin_from_an_installed_package(tmp_path, make_task):
    """A package installed with pip (into a folder on PYTHONPATH) adds a metric through the entry-point group;
    a task names it, and `ladder assess` scores with it."""
    pkg = tmp_path / "ladder-length-ratio"
    (pkg / "ladder_length_ratio").mkdir(parents=True)
    (pkg / "ladder_length_ratio" / "__init__.py").write_text(PLUGIN)
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "ladder-length-ratio"\nversion = "0.1"\n'
        '[project.entry-points."ladder.metrics"]\nlength_ratio = "ladder_length_ratio:length_ratio"\n'
    )
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--target",
            str(site),
            str(pkg),
        ],
        check=True,
        capture_output=True,
    )
    assert list(site.glob("ladder_length_ratio-0.1.dist-info/entry_points.txt"))
    task = make_task()
    raw = yaml.safe_load(task.read_text())
    raw["metrics"] = ["accuracy", "length_ratio"]
    task.write_text(yaml.safe_dump(raw))
    env = {**__import__("os").environ, "PYTHONPATH": f"{site}:{ROOT}"}
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "ladder", "assess", str(task), "--backend", "scripted", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    record = json.loads((out / "run.json").read_text())
    examples = record["rungs"][0]["examples"]
    assert all(0.0 <= e["scores"]["length_ratio"] <= 1.0 for e in examples)
    by_hand = [
        min(len(e["output"].strip()), len(e["target"].strip()))
        / max(len(e["output"].strip()), len(e["target"].strip()), 1)
        for e in examples
    ]
    assert [e["scores"]["length_ratio"] for e in examples] == pytest.approx(by_hand)
    assert "length_ratio" in (out / "report.md").read_text()
    # without the package on the path, the record still loads and renders (its spec was checked when it ran) ...
    plain = {**env, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "ladder", "report", str(out), "--format", "md", "--out", str(tmp_path / "again.md")],
        capture_output=True,
        text=True,
        env=plain,
    )
    assert done.returncode == 0, done.stderr
    assert "length_ratio" in (tmp_path / "again.md").read_text()
    # ... and the same task is a one-line error naming the file and field
    done = subprocess.run(
        [sys.executable, "-m", "ladder", "assess", str(task), "--backend", "scripted", "--out", str(tmp_path / "run2")],
        capture_output=True,
        text=True,
        env=plain,
    )
    assert done.returncode == 2
    assert "metrics[1]: unknown metric 'length_ratio'" in done.stderr and "task.yaml" in done.stderr
    assert METRICS.get("exact_match").binary
