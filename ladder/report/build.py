"""A run record's report, built once as a ``Document``: every number a report shows is formatted here,
and both renderers (``markdown``, ``html``) only lay it out."""

from __future__ import annotations

from ladder.record import AssessmentRun
from ladder.report.document import (
    Document,
)
from ladder.report.sections.costs import cost_per_rung, what_it_costs
from ladder.report.sections.examples import confusion, per_label, won_and_lost
from ladder.report.sections.judge import judges
from ladder.report.sections.results import (
    all_metrics,
    decisions,
    diagnosis,
    opening,
    paired,
    repeats,
)
from ladder.report.sections.setup import data, manifest, retrieval, setup
from ladder.report.sections.training import training, training_curves


def build_report(run: AssessmentRun) -> Document:
    metric = run.target.metric
    sections = [
        opening(run),
        judges(run),
        paired(run),
        repeats(run),
        diagnosis(run),
        what_it_costs(run),
        cost_per_rung(run),
        per_label(run),
        confusion(run),
        won_and_lost(run),
        training(run),
        training_curves(run),
        retrieval(run),
        all_metrics(run),
        data(run),
        decisions(run),
        setup(run),
        manifest(run),
    ]
    footer = (
        f"Rendered by ladder from the run record {run.run_id} ({run.created}, ladder {run.ladder_version}); "
        f"target {metric} ≥ {run.target.threshold:.3f}."
    )
    return Document(f"ladder report: {run.task_name}", [s for s in sections if s.blocks], footer)
