"""Reports are rendered from the saved run record only (``run.json``); nothing here imports model code."""

from __future__ import annotations

from pathlib import Path

from ladder.record import load_run


def write_report(run_dir: Path) -> Path:
    """Render ``report.md`` beside ``run.json``, reading only the record on disk."""
    from ladder.report.markdown import render_markdown

    run = load_run(run_dir / "run.json")
    path = run_dir / "report.md"
    path.write_text(render_markdown(run), encoding="utf-8")
    return path
