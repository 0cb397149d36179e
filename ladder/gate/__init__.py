"""The regression gate: a run record against a committed baseline, on the same examples, answered pass |
regression | inconclusive (``verdict``), from baseline files (``baseline``), rendered for people and CI
(``render``). Pure: no model code."""

from ladder.gate.baseline import Baseline, load_baseline, make_baseline, save_baseline
from ladder.gate.render import (
    check_line,
    gate_document,
    render_gate,
    render_gate_markdown,
    render_github_annotations,
    render_junit,
)
from ladder.gate.verdict import (
    INCONCLUSIVE_EXIT,
    VISIBLE_DROP,
    GateCheck,
    GateResult,
    gate,
    verdict_of,
)

__all__ = [
    "INCONCLUSIVE_EXIT",
    "VISIBLE_DROP",
    "Baseline",
    "GateCheck",
    "GateResult",
    "check_line",
    "gate",
    "gate_document",
    "load_baseline",
    "make_baseline",
    "render_gate",
    "render_gate_markdown",
    "render_github_annotations",
    "render_junit",
    "save_baseline",
    "verdict_of",
]
