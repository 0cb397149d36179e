"""Golden report: a committed run record renders to exactly the committed report.md.

Regenerate both after an intended change: UPDATE_GOLDEN=1 python -m pytest tests/test_report_golden.py
"""

from __future__ import annotations

import os

from conftest import ROOT

from ladder.record import TrainingRecord, load_run
from ladder.report.markdown import render_markdown

GOLDEN = ROOT / "tests" / "golden" / "report"


def test_report_matches_golden(make_task, tmp_path):
    if os.environ.get("UPDATE_GOLDEN"):
        from ladder.backends.scripted import ScriptedBackend
        from ladder.run.assess import assess
        from ladder.spec import load_task

        backend = ScriptedBackend(responder=lambda p: "music" if "song" in p.rsplit("Text: ", 1)[-1] else "weather")
        run, out = assess(load_task(make_task()), backend=backend, out_dir=tmp_path / "run", exhaustive=True)
        run.run_id, run.created, run.task_path = "20260101-000000-golden", "2026-01-01T00:00:00+00:00", "task/task.yaml"
        run.packages = {"python": "3.11", "ladder": run.ladder_version}
        (GOLDEN / "run.json").write_text(run.model_dump_json(indent=1) + "\n")
        (GOLDEN / "report.md").write_text(render_markdown(run))
    run = load_run(GOLDEN / "run.json")
    assert render_markdown(run) == (GOLDEN / "report.md").read_text()


def test_training_section_shows_the_last_dev_evaluation():
    """A trained rung's row: its cost, and the last dev evaluation (the target metric too when it decided)."""
    run = load_run(GOLDEN / "run.json")
    rung = run.rungs[-1]
    training = {
        "steps": 8,
        "epochs": 1.0,
        "wall_s": 12.5,
        "tokens_seen": 900,
        "tokens_per_s": 72.0,
        "rss_start_mb": 1000.0,
        "rss_peak_mb": 1500.0,
        "best_step": 4,
        "artifact_bytes": 2**20,
        "dev_evals": [
            {"step": 4, "dev_loss": 0.5, "dev_metric": 0.75},
            {"step": 8, "dev_loss": 0.4, "dev_metric": 0.5},
        ],
    }
    base = {
        "answer_tokens": 300,
        "train_examples": 40,
        "artifact": "run/lora/adapter",
        "checkpoint_dir": "store/x",
        "artifact_sha256": "ab" * 32,
    }
    rung.training = TrainingRecord.model_validate({**training, **base})
    text = render_markdown(run)
    metric = run.target.metric
    assert "## Training" in text
    assert (
        f"| {rung.name} | 8 | 1.00 | 12.50 s | 900 | 72.0 | 1000 → 1500 MB | 4 | loss 0.4, {metric} 0.500 | 1.0 MB |"
        in text
    )
    rung.training = TrainingRecord.model_validate({**training, **base, "dev_evals": [{"step": 8, "dev_loss": 0.4}]})
    assert "| 4 | loss 0.4 | 1.0 MB |" in render_markdown(run)


def test_a_version_1_record_is_migrated_and_renders():
    """A record written before the policy and the cost model (schema 1, kept as it was written) still
    loads: comparisons become the list, decisions get their status, the spec the policy it ran under."""
    from ladder.record import SCHEMA_VERSION

    run = load_run(ROOT / "tests" / "golden" / "records" / "run-v1.json")
    assert run.schema_version == SCHEMA_VERSION
    fewshot = run.rungs[1]
    cmp = fewshot.splits["test"].comparison("prompt", "accuracy")
    assert cmp is not None and cmp.method == "mcnemar" and cmp.n == fewshot.splits["test"].n
    assert [r.decision.status for r in run.rungs] == ["inconclusive", "inconclusive"]
    assert run.spec.policy.confidence == "point" and run.rungs[0].cost is None
    text = render_markdown(run)
    assert "| fewshot |" in text and "dev interval" not in text and "dev mean is at or above it" in text


def test_a_newer_record_is_refused_in_one_line(tmp_path):
    import json

    import pytest

    from ladder.errors import LadderError

    raw = json.loads((GOLDEN / "run.json").read_text())
    raw["schema_version"] = 99
    (tmp_path / "run.json").write_text(json.dumps(raw))
    with pytest.raises(
        LadderError, match="schema_version 99 is not one this ladder reads .*a newer record needs a newer ladder"
    ):
        load_run(tmp_path)


def test_a_renamed_field_fails_loudly_instead_of_printing_a_placeholder(tmp_path):
    """The record's parts are typed: a field a report reads that is missing or renamed is a one-line error
    naming the record and the field, not a '?' in a stakeholder's report."""
    import json

    import pytest

    from ladder.errors import LadderError

    raw = json.loads((GOLDEN / "run.json").read_text())
    raw["model"]["weights_hash"] = raw["model"].pop("weights_sha256")
    (tmp_path / "run.json").write_text(json.dumps(raw))
    with pytest.raises(LadderError, match=r"run.json: model.weights_sha256: Field required"):
        load_run(tmp_path)
    raw = json.loads((GOLDEN / "run.json").read_text())
    raw["target"]["metrik"] = raw["target"].pop("metric")
    (tmp_path / "run.json").write_text(json.dumps(raw))
    with pytest.raises(LadderError, match=r"run.json: target.metric: Field required"):
        load_run(tmp_path)


def test_a_version_2_record_is_migrated_and_renders_in_both_formats():
    """Schema 2 (untyped spec, target, model and training dicts), kept as it was written."""
    from ladder.record import SCHEMA_VERSION
    from ladder.report import render

    run = load_run(ROOT / "tests" / "golden" / "records" / "run-v2.json")
    assert run.schema_version == SCHEMA_VERSION and run.model.backend == "scripted" and run.target.metric == "accuracy"
    assert run.spec.policy.confidence == "lower_bound" and run.inputs == {} and run.command is None
    page = render([run], "html")
    assert (
        "| fewshot |" in render([run], "md") and 'data-plot="scores"' in page and "0 won, 0 lost, 9 unchanged" in page
    )


def test_training_section_says_where_a_distill_and_a_preference_rung_learnt_from():
    """A distill rung's teacher (with prompt tokens per call before and after) and a preference rung's pairs
    (with the dev log-ratio the reference had and the trained policy reached), and the teacher's time in the
    rung's adaptation cost."""
    from ladder.decide.cost import rung_cost
    from ladder.spec import CostSpec

    run = load_run(GOLDEN / "run.json")
    teacher_rung, rung = run.rungs[0], run.rungs[-1]
    base = {
        "steps": 8,
        "epochs": 1.0,
        "wall_s": 100.0,
        "tokens_seen": 900,
        "tokens_per_s": 9.0,
        "rss_start_mb": 1000.0,
        "rss_peak_mb": 1500.0,
        "answer_tokens": 300,
        "train_examples": 40,
        "artifact": "run/x/adapter",
        "checkpoint_dir": "store/x",
        "artifact_sha256": "ab" * 32,
        "artifact_bytes": 2**20,
    }
    teacher = {
        "rung": teacher_rung.name,
        "inputs": 50,
        "unlabeled": 10,
        "kept": 45,
        "train_correct": 0.875,
        "seconds": 20.0,
        "prompt_tokens_per_call": 400.0,
    }
    rung.training = TrainingRecord.model_validate({**base, "data_s": 20.0, "teacher": teacher})
    text = render_markdown(run)
    before = teacher_rung.splits["dev"].prompt_tokens_per_call
    after = rung.splits["dev"].prompt_tokens_per_call
    assert (
        f"| {rung.name} | {teacher_rung.name} | 50 (10 unlabeled) | 45 | 0.88 | 20 s | {before:.0f} → {after:.0f} |"
        in text
    )
    assert rung_cost(rung.splits["dev"], rung.training, 0.0, CostSpec()).adaptation_s == 120.0
    pairs = {
        "source": teacher_rung.name,
        "train_pairs": 40,
        "dev_pairs": 6,
        "skipped": 2,
        "seconds": 5.0,
        "beta": 0.1,
        "sft_weight": 1.0,
        "init": None,
        "dev_reference_logratio": -1.5,
    }
    evals = [{"step": 8, "dev_loss": 0.4, "reward_accuracy": 0.83, "reward_margin": 0.25, "chosen_logratio": 1.0}]
    rung.training = TrainingRecord.model_validate(
        {**base, "objective": "preference", "pairs": pairs, "dev_evals": evals}
    )
    text = render_markdown(run)
    assert f"| {rung.name} | {teacher_rung.name} | — | 40 | 6 | 2 | 0.1 / 1 | -1.50 → 1.00 | 5 s |" in text
    assert "loss 0.4, reward accuracy 0.83, margin 0.250" in text
