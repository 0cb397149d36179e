"""Golden report: a committed run record renders to exactly the committed report.md.

Regenerate both after an intended change: UPDATE_GOLDEN=1 python -m pytest tests/test_report_golden.py
"""

from __future__ import annotations

import os

from ladder.record import load_run
from ladder.report.markdown import render_markdown

from conftest import ROOT

GOLDEN = ROOT / "tests" / "golden" / "report"


def test_report_matches_golden(make_task, tmp_path):
    if os.environ.get("UPDATE_GOLDEN"):
        from ladder.assess import assess
        from ladder.backends.scripted import ScriptedBackend
        from ladder.spec import load_task

        backend = ScriptedBackend(responder=lambda p: "music" if "song" in p.rsplit("Text: ", 1)[-1] else "weather")
        run, out = assess(load_task(make_task()), backend=backend, out_dir=tmp_path / "run")
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
    training = {"steps": 8, "epochs": 1.0, "wall_s": 12.5, "tokens_seen": 900, "tokens_per_s": 72.0,
                "rss_start_mb": 1000.0, "rss_peak_mb": 1500.0, "best_step": 4, "artifact_bytes": 2**20,
                "dev_evals": [{"step": 4, "dev_loss": 0.5, "dev_metric": 0.75}, {"step": 8, "dev_loss": 0.4, "dev_metric": 0.5}]}
    rung.training = training
    text = render_markdown(run)
    metric = run.target["metric"]
    assert "## Training" in text
    assert f"| {rung.name} | 8 | 1.00 | 12.50 s | 900 | 72.0 | 1000 → 1500 MB | 4 | loss 0.4, {metric} 0.500 | 1.0 MB |" in text
    rung.training = {**training, "dev_evals": [{"step": 8, "dev_loss": 0.4}]}
    assert "| 4 | loss 0.4 | 1.0 MB |" in render_markdown(run)
