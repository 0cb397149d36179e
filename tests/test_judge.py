"""The judge metric: a model grades answers by a rubric, checked against people's grades (calibration, PPI)."""

from __future__ import annotations

import hashlib
import json
import math
import re

import numpy as np
import pytest
from conftest import write_jsonl

from ladder.backends.scripted import ScriptedBackend, last_user_message
from ladder.errors import LadderError, ValidationFailed
from ladder.metrics import JudgeOptions, judge_messages, parse_verdict
from ladder.report import write_report
from ladder.run.assess import assess
from ladder.scoring.agreement import agreement, cohen_kappa, ppi_mean, spearman
from ladder.spec import load_task

CAPITALS = {
    "France": "Paris",
    "Spain": "Madrid",
    "Italy": "Rome",
    "Peru": "Lima",
    "Chad": "N'Djamena",
    "Fiji": "Suva",
    "Japan": "Tokyo",
    "Egypt": "Cairo",
    "Kenya": "Nairobi",
}
RUBRIC = "The answer names the capital city of the country asked about."


def _rows(prefix, countries):
    return [
        {"id": f"{prefix}-{i}", "text": f"What is the capital of {c}?", "label": CAPITALS[c]}
        for i, c in enumerate(countries)
    ]


def _judge_task(make_task, options=None, grades=None, **overrides):
    spec = {
        "output": {"kind": "text"},
        "metrics": [
            "token_f1",
            {
                "metric": "judge",
                "name": "correct",
                "options": {"rubric": RUBRIC, "scale": "pass_fail", **(options or {})},
            },
        ],
        "target": {"metric": "correct", "threshold": 0.9},
        "prompt": {"instruction": "Answer with the city.", "input_template": "{input}"},
        "rungs": [{"type": "prompt"}],
        "generation": {"max_new_tokens": 8},
        **overrides,
    }
    path = make_task(
        spec,
        train=_rows("train", ["France", "Spain"]),
        dev=_rows("dev", ["Italy", "Peru", "Kenya", "Fiji"]),
        test=_rows("test", ["Chad", "Japan", "Egypt"]),
    )
    if grades is not None:
        write_jsonl(path.parent / "grades.jsonl", grades)
        text = path.read_text().replace("  id_field: id\n", "  id_field: id\n  human_grades: grades.jsonl\n")
        path.write_text(text)
    return path


def _answerer(wrong=("Peru", "Chad")):
    """The candidate answers the capital, except for ``wrong`` countries; the judge passes an answer that is the
    capital of the country in its input (and says garbage first when asked to write a verdict about Fiji)."""

    def respond(prompt):
        text = last_user_message(prompt)
        if "Rubric:" in text:
            country = re.search(r"capital of (\w+)", text).group(1)
            answer = text.split("Answer to grade:\n", 1)[1].split("\n\n", 1)[0]
            verdict = "pass" if answer == CAPITALS[country] else "fail"
            if '{"grade"' in text:  # generate mode
                return "I think it passes" if country == "Fiji" else json.dumps({"grade": verdict})
            return verdict
        country = re.search(r"capital of (\w+)", text).group(1)
        return "Cusco" if country in wrong else CAPITALS[country]

    return ScriptedBackend(responder=respond)


def _p_agree(backend, other_verdict="fail"):
    """The probability the scripted judge puts on the verdict it says (-0.1 against the other's fixed value)."""
    completion = backend.formatter("auto").completion([{"role": "user", "content": "q"}], other_verdict)
    other = -2.0 - int(hashlib.sha256(completion.encode()).hexdigest()[:4], 16) / 65535.0
    return 1 / (1 + math.exp(other + 0.1))


HUMAN = [  # people's grades of answers to other questions: the judge agrees on all but the last
    {"text": "What is the capital of France?", "output": "Paris", "grade": "pass", "label": "Paris"},
    {"text": "What is the capital of Spain?", "output": "Paris", "grade": "fail", "label": "Madrid"},
    {"text": "What is the capital of Italy?", "output": "Rome", "grade": "pass", "label": "Rome"},
    {"text": "What is the capital of Peru?", "output": "Cusco", "grade": "fail", "label": "Lima"},
    {"text": "What is the capital of Fiji?", "output": "Suva", "grade": "pass", "label": "Suva"},
    {"text": "What is the capital of Chad?", "output": "Lima", "grade": "pass", "label": "N'Djamena"},
]


def test_a_judge_grades_every_answer_and_is_checked_against_people(make_task, tmp_path):
    task = load_task(_judge_task(make_task, grades=HUMAN))
    backend = _answerer()
    run, out = assess(task, backend=backend, out_dir=tmp_path / "run")
    prompt = run.rungs[0]
    dev = prompt.splits["dev"]
    # dev: Peru answered wrong, the rest right; the judge passes 3 of 4 (likelihood: P(pass) ~ 0.88 each)
    scores = {r.id: r.scores["correct"] for r in prompt.examples if r.split == "dev"}
    p_right = _p_agree(backend)
    assert scores["dev-1"] < 0.2 and all(scores[i] > 0.8 for i in ("dev-0", "dev-2", "dev-3"))
    assert scores["dev-0"] == pytest.approx(p_right, abs=1e-6)
    assert dev.metrics["correct"].mean == pytest.approx(np.mean(list(scores.values())))
    # calibration: 6 people's grades, the judge disagrees on the last (Lima for Chad, which people passed)
    summary = run.judges["correct"]
    agree = summary.calibration
    assert summary.scale == "pass_fail" and summary.mode == "scores" and summary.judge.startswith("scripted")
    assert agree.n == 6 and agree.accuracy.mean == pytest.approx(5 / 6) and agree.accuracy.method == "wilson"
    assert agree.kappa.mean == pytest.approx(cohen_kappa([1, 0, 1, 0, 1, 0], [1, 0, 1, 0, 1, 1]))
    assert agree.human_mean == pytest.approx(4 / 6)
    # the judged mean on the human scale: PPI, and the decision reads it
    calibrated = dev.calibrated["correct"]
    p_fail = _p_agree(backend, "pass")  # P(fail) where the judge says fail: P(pass) is 1 - it
    judge_cal = [p_right, 1 - p_fail, p_right, 1 - p_fail, p_right, 1 - p_fail]
    expected = ppi_mean(list(scores.values()), judge_cal, [1, 0, 1, 0, 1, 1])
    assert calibrated.method == "ppi" and calibrated.mean == pytest.approx(expected.mean, abs=1e-9)
    assert (calibrated.low, calibrated.high) == pytest.approx((expected.low, expected.high))
    assert dev.judge_invalid == {"correct": 0}
    # a second run judges nothing again: verdicts come from the result cache
    calls = dict(backend.calls)
    again, _ = assess(task, backend=backend, out_dir=tmp_path / "again")
    assert backend.calls == calls and again.judges == run.judges
    assert again.rungs[0].splits["dev"].calibrated == dev.calibrated
    report = write_report(out)
    text = report.read_text() if hasattr(report, "read_text") else (out / "report.md").read_text()
    assert "The judge" in text and "Cohen's κ" in text and "test calibrated" in text


def test_a_written_verdict_is_parsed_strictly_and_an_unreadable_one_is_counted(make_task, tmp_path):
    task = load_task(_judge_task(make_task, options={"mode": "generate", "retries": 1}))
    run, _ = assess(task, backend=_answerer(), out_dir=tmp_path / "run")
    dev = run.rungs[0].splits["dev"]
    assert dev.judge_invalid == {"correct": 1}  # Fiji's verdict stayed out of form: graded by likelihood instead
    record = next(r for r in run.rungs[0].examples if r.id == "dev-3")
    assert record.judge_invalid == {"correct": 1} and 0.0 < record.scores["correct"] < 1.0  # never a silent 0
    assert {r.id: r.scores["correct"] for r in run.rungs[0].examples if r.split == "dev" and r.id != "dev-3"} == {
        "dev-0": 1.0,
        "dev-1": 0.0,
        "dev-2": 1.0,
    }
    assert run.judges["correct"].calibration is None  # no human grades: the report says the judge is unchecked


def test_parse_verdict_accepts_only_the_asked_form():
    options = JudgeOptions(rubric="r", mode="generate")
    assert parse_verdict('{"grade": 4}', options) == "4"
    assert parse_verdict(' ```json\n{"grade": "5"}\n``` ', options) == "5"
    for bad in ('{"grade": 6}', '{"grade": 4, "why": "x"}', "4", 'Grade: {"grade": 4}', '{"grade": true}', "{"):
        assert parse_verdict(bad, options) is None, bad
    pf = JudgeOptions(rubric="r", scale="pass_fail", mode="generate")
    assert parse_verdict('{"grade": "PASS"}', pf) == "pass" and parse_verdict('{"grade": 1}', pf) is None
    messages = judge_messages(options, "be right", "q?", "a", None)
    assert "Reference answer" not in messages[1]["content"] and "1, 2, 3, 4, 5" in messages[1]["content"]
    crit = JudgeOptions(rubric="r", criteria=["polite", "correct"])
    assert crit.scale == "pass_fail" and len(crit.questions) == 2 and crit.unit(4) == 4  # pass_fail units are 0/1


def test_the_judge_metric_cannot_score_a_string_alone():
    from ladder.metrics import METRICS

    with pytest.raises(LadderError, match="graded by a judge model in the eval step"):
        METRICS.get("judge").score("Paris", ("Paris",), JudgeOptions(rubric="r"))


def test_agreement_statistics_match_their_definitions():
    pytest.importorskip("scipy")
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(0)
    human = rng.integers(1, 6, size=60).astype(float)
    judge = np.clip(human + rng.integers(-1, 2, size=60), 1, 5)
    assert cohen_kappa(judge, human) == pytest.approx(cohen_kappa_score(judge, human))
    scores = judge + rng.normal(0, 0.3, size=60)
    assert spearman(scores, human) == pytest.approx(spearmanr(scores, human).statistic)
    result = agreement(
        list((judge - 1) / 4), list((scores - 1) / 4), list((human - 1) / 4), list((human - 1) / 4), [1] * 60
    )
    assert result.accuracy.mean == pytest.approx(float((judge == human).mean()))
    assert result.kappa.low <= result.kappa.mean <= result.kappa.high and result.spearman.n == 60
    assert math.isnan(result.judge_length_spearman)  # constant lengths: no rank correlation to speak of
    # PPI: judged mean + mean(human - judge on the calibration set), variance from both
    f, cj, ch = [0.8, 0.6, 0.9, 0.7], [0.9, 0.2, 0.8], [1.0, 0.0, 1.0]
    est = ppi_mean(f, cj, ch)
    r = np.subtract(ch, cj)
    half = 1.959963984540054 * math.sqrt(np.var(f, ddof=1) / 4 + np.var(r, ddof=1) / 3)
    assert est.mean == pytest.approx(np.mean(f) + r.mean()) and est.high == pytest.approx(min(1, est.mean + half))


@pytest.mark.parametrize(
    "grades, options, problem",
    [
        ([{"text": "q", "output": "a", "grade": "maybe"}], {}, "grades.jsonl:1: grade 'maybe' is not pass or fail"),
        (
            [{"text": "q", "output": "a", "grade": 7}],
            {"scale": [1, 5]},
            "grades.jsonl:1: grade '7' is not a number in [1, 5]",
        ),
        ([{"text": "q", "grade": "pass"}], {}, "grades.jsonl:1: missing field 'output'"),
        (
            [{"text": "q", "output": "a", "grade": "pass", "metric": "other"}],
            {},
            "metric 'other' is not a judge metric",
        ),
    ],
)
def test_bad_human_grades_are_named_by_file_and_line_before_any_model_runs(
    make_task, tmp_path, grades, options, problem
):
    task = load_task(_judge_task(make_task, options=options, grades=grades))
    backend = _answerer()
    with pytest.raises(ValidationFailed) as caught:
        assess(task, backend=backend, out_dir=tmp_path / "run")
    assert any(problem in p for p in caught.value.problems), caught.value.problems
    assert backend.calls == {"score": 0, "generate": 0}


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {
                "metrics": [{"metric": "judge", "options": {"rubric": "r"}, "extract": "first_number"}],
                "target": {"metric": "judge", "threshold": 0.5},
            },
            "a judge reads the whole answer",
        ),
        ({"metrics": [{"metric": "judge", "options": {}}], "target": {"metric": "judge", "threshold": 0.5}}, "rubric"),
        (
            {
                "metrics": [{"metric": "judge", "options": {"rubric": "r", "base_url": "http://x"}}],
                "target": {"metric": "judge", "threshold": 0.5},
            },
            "name the model the endpoint serves",
        ),
        ({"rungs": [{"type": "prompt"}, {"type": "distill"}]}, "a distill rung keeps the teacher's right answers"),
        ({"rungs": [{"type": "prompt"}, {"type": "lora", "train": {"early_stopping": "dev_metric"}}]}, "use dev_loss"),
        ({"policy": {"sequential": True}}, "policy.sequential tests per-example scores"),
    ],
)
def test_a_judge_target_refuses_what_cannot_grade_by_it(make_task, overrides, message):
    path = _judge_task(make_task, **overrides)
    with pytest.raises(LadderError, match=re.escape(message)):
        load_task(path)


@pytest.mark.model
@pytest.mark.parametrize("mode", ["scores", "generate"])
def test_the_bundled_model_judges_and_its_calibration_says_how_weak_it_is(make_task, tmp_path, mode):
    """SmolLM2-135M as its own judge (transformers), on 3 dev + 3 test answers and 6 people's grades: every
    verdict is a number in [0, 1], the agreement is measured (whatever it is: the point is that it is known),
    and a second run reads every verdict from the cache."""
    options = {"scale": [1, 5], "mode": mode, "max_new_tokens": 12}
    grades = [dict(row, grade=5 if row["grade"] == "pass" else 1) for row in HUMAN]
    task = load_task(_judge_task(make_task, options=options, grades=grades, serving={"backend": "transformers"}))
    run, out = assess(task, limit=3, out_dir=tmp_path / "run")
    summary = run.judges["correct"]
    assert summary.judge.startswith("SmolLM2") or "smollm2" in summary.judge.lower()
    agree = summary.calibration
    assert agree.n == 6 and 0 <= agree.accuracy.mean <= 1 and -1 <= agree.kappa.mean <= 1
    dev = run.rungs[0].splits["dev"]
    scores = [r.scores["correct"] for r in run.rungs[0].examples]
    assert len(scores) == 6 and all(0.0 <= s <= 1.0 for s in scores)
    assert dev.calibrated["correct"].method == "ppi" and dev.judge_invalid["correct"] >= 0
    again, _ = assess(task, limit=3, out_dir=tmp_path / "again")
    assert again.judges == run.judges
    assert [r.scores for r in again.rungs[0].examples] == [r.scores for r in run.rungs[0].examples]


def _open_ended(make_task, **overrides):
    rows = {
        s: [{"id": r["id"], "text": r["text"]} for r in _rows(s, c)]
        for s, c in (("train", ["France", "Spain"]), ("dev", ["Italy", "Peru", "Kenya"]), ("test", ["Chad", "Japan"]))
    }
    spec = {
        "data": {
            "train": "train.jsonl",
            "dev": "dev.jsonl",
            "test": "test.jsonl",
            "input_field": "text",
            "target_field": None,
            "id_field": "id",
        },
        "output": {"kind": "text"},
        "metrics": [{"metric": "judge", "name": "correct", "options": {"rubric": RUBRIC, "scale": "pass_fail"}}],
        "target": {"metric": "correct", "threshold": 0.5},
        "prompt": {"instruction": "Answer with the city.", "input_template": "{input}"},
        "rungs": [{"type": "prompt"}],
        **overrides,
    }
    return make_task(spec, train=rows["train"], dev=rows["dev"], test=rows["test"])


def test_an_open_ended_task_has_no_references_and_is_graded_by_its_judge(make_task, tmp_path):
    task = load_task(_open_ended(make_task))
    run, _ = assess(task, backend=_answerer(), out_dir=tmp_path / "run")
    records = run.rungs[0].examples
    assert all(r.target == "" for r in records)  # no reference: the judge graded the answer alone
    assert {r.id: r.scores["correct"] > 0.5 for r in records if r.split == "dev"} == {
        "dev-0": True,
        "dev-1": False,  # Peru answered Cusco
        "dev-2": True,
    }


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"rungs": [{"type": "prompt"}, {"type": "fewshot", "k": 1}]},
            "rung 'fewshot': it learns from reference answers",
        ),
        ({"rungs": [{"type": "prompt"}, {"type": "lora"}]}, "rung 'lora': it learns from reference answers"),
        ({"rungs": [{"type": "prompt"}, {"type": "preference"}]}, "pairs_from: judge"),
        (
            {"metrics": ["token_f1", {"metric": "judge", "name": "correct", "options": {"rubric": "r"}}]},
            "'token_f1' compares with a reference",
        ),
        ({"output": {"kind": "label", "labels": ["a", "b"]}}, "needs output.kind text"),
    ],
)
def test_an_open_ended_task_refuses_what_needs_references(make_task, overrides, message):
    with pytest.raises(LadderError, match=re.escape(message)):
        load_task(_open_ended(make_task, **overrides))


def test_pairs_from_judge_needs_a_judge_metric(make_task):
    rungs = [{"type": "prompt"}, {"type": "preference", "pairs_from": "judge"}]
    with pytest.raises(LadderError, match="pairs_from judge needs a judge metric"):
        load_task(make_task({"rungs": rungs}))
    metrics = ["accuracy", {"metric": "judge", "name": "j", "options": {"rubric": "r"}}]
    spec = load_task(make_task({"rungs": rungs, "metrics": metrics}, folder="other")).spec
    assert spec.rungs[1].judge == "j" and spec.rungs[1].negatives_from is None


def test_a_gate_compares_judged_scores_only_under_the_same_judge_and_rubric(make_task, tmp_path):
    from ladder.gate import gate, make_baseline

    task = load_task(_judge_task(make_task, grades=HUMAN))
    run, _ = assess(task, backend=_answerer(), out_dir=tmp_path / "run")
    baseline = make_baseline(run, "prompt", "test")
    assert set(baseline.judges) == {"correct"} and baseline.judges["correct"].startswith("scripted")
    assert gate(run, baseline).checks[0].verdict == "pass"  # the same run against itself
    reworded = load_task(_judge_task(make_task, options={"rubric": "The answer is right."}))
    other, _ = assess(reworded, backend=_answerer(), out_dir=tmp_path / "other")
    with pytest.raises(LadderError, match="judged scores compare only under the same judge and rubric"):
        gate(other, baseline)
