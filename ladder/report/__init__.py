"""Reports are rendered from saved run records only (``run.json``); nothing here imports model code.

One run: its report (``rows``). Several runs of one task: a comparison over time (``compare``). Either
document renders to Markdown (pull requests) or to one self-contained HTML file (stakeholders)."""

from __future__ import annotations

from pathlib import Path

from ladder.errors import LadderError
from ladder.fileio import atomic_write_text
from ladder.memo import Store
from ladder.record import AssessmentRun, load_run

FORMATS = ("md", "html")


def render(runs: list[AssessmentRun], fmt: str, sources: list[str] | None = None, figures: Store | None = None) -> str:
    """The report of one run, or the comparison of several, as Markdown (``md``) or HTML (``html``). With a
    ``figures`` store, a figure drawn before from the same numbers by the same plotting code is not drawn again."""
    if fmt not in FORMATS:
        raise LadderError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if len(runs) == 1:
        from ladder.report.build import build_report

        doc = build_report(runs[0])
    else:
        from ladder.report.compare import build_comparison

        doc = build_comparison(runs, sources or [r.run_id for r in runs])
    if fmt == "md":
        from ladder.report.markdown import render_document

        return render_document(doc)
    from ladder.report.html import render_html

    return render_html(doc, figures)


def write_report(run_dir: Path, formats: tuple[str, ...] = FORMATS, figures: Store | None = None) -> Path:
    """Render ``report.md`` and ``report.html`` beside ``run.json``, reading only the record on disk;
    returns the first one written."""
    run = load_run(run_dir / "run.json")
    paths = []
    for fmt in formats:
        path = run_dir / f"report.{fmt}"
        atomic_write_text(path, render([run], fmt, figures=figures))
        paths.append(path)
    return paths[0]
