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
