"""One assessment: every rung's result, the recommendation, the diagnosis and the data checks."""

from __future__ import annotations

from typing import Any, Literal

from ladder.data.report import DataReport
from ladder.record.parts import (
    Decision,
    ExampleRecord,
    JudgeSummary,
    RungCost,
    SplitResult,
    TokenTimes,
)
from ladder.record.training import AdapterCertificate, ModelIdentity, TrainingRecord
from ladder.spec import Strict, TargetSpec, TaskSpec

SCHEMA_VERSION = 3  # changes whenever a field changes meaning (record/store.py migrates older records)


class RungResult(Strict):
    name: str
    type: str
    settings: dict[str, Any]
    demo_ids: list[str]
    build_s: float
    splits: dict[str, SplitResult]  # "dev", "test"
    decision: Decision
    examples: list[ExampleRecord]
    training: TrainingRecord | None = None  # lora/full rungs
    cost: RungCost | None = None
    certificate: AdapterCertificate | None = None  # trained rungs: what the serving backend showed of the artifact

    def certified(self) -> bool:
        """Not a trained rung, or one whose artifact passed its certificate (a record without one fails closed)."""
        if self.training is None:
            return True
        return self.certificate is not None and self.certificate.passed


class SkippedRung(Strict):
    name: str
    type: str
    reason: str


class Recommendation(Strict):
    rung: str | None  # the cheapest rung meeting the target; None when none does
    met: bool
    best_rung: str | None  # best measured on dev (when none meets the target)
    next_rung: str | None  # what to try next when none meets it
    summary: str
    reasons: list[str] = []  # the evidence, one sentence each, for a stakeholder
    holm_p: dict[str, float] = {}  # "candidate vs baseline" -> Holm-adjusted p (dev, target metric)


PointsTo = Literal["behaviour", "knowledge", "neither"]
GapKind = Literal["none", "behaviour", "knowledge", "mixed", "unclear"]


class Evidence(Strict):
    """One signal of what kind of gap is left after the prompt-side rungs."""

    signal: str  # invalid_outputs, lenient_gap, fewshot_gain, rag_gain, recall_follows, unknown_share
    points_to: PointsTo
    value: float | None = None
    text: str


class Diagnosis(Strict):
    """What kind of gap remains after prompt, few-shot and retrieval, with its evidence: behaviour or format
    (fine-tuning is likely to help) or missing knowledge (retrieval, not fine-tuning)."""

    kind: GapKind
    best_rung: str  # the best prompt-side rung on dev
    gap: float  # target - its dev mean (negative: above the target)
    evidence: list[Evidence] = []
    advice: str


class Resolution(Strict):
    """``ladder resolve``: an inconclusive rung's dev decision, walked example by example with an anytime-valid
    confidence sequence (scoring.sequential) over the dev examples the run measured and then further ones (beyond
    its --limit, then data.reserve), stopped as soon as it decides."""

    rung: str
    metric: str
    threshold: float
    verdict: Literal["meets", "gap", "undecided"]
    n: int  # examples the sequence used (the run's own first)
    measured: int  # of which the run had measured
    low: float  # the confidence sequence when it stopped
    high: float
    alpha: float
    scores: dict[str, float] = {}  # the further examples' scores (id -> target metric), in the order evaluated
    sources: dict[str, int] = {}  # where the further examples came from: "dev beyond --limit", "data.reserve"
    created: str


class AssessmentRun(Strict):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    created: str
    status: Literal["running", "complete", "failed", "interrupted"]
    error: str | None = None
    ladder_version: str
    task_name: str
    task_path: str
    spec: TaskSpec  # the resolved spec, defaults filled in
    data_hashes: dict[str, str]
    data_sizes: dict[str, int]  # examples per split (before --limit)
    limit: int | None
    model: ModelIdentity
    packages: dict[str, str]
    seed: int
    target: TargetSpec
    exhaustive: bool = False  # every configured rung was run, whatever the decisions
    repeats: int = 1  # each rung evaluated this many times, the cache bypassed after the first (assess --repeats)
    command: str | None = None  # the command line that made it (reproducibility manifest)
    inputs: dict[str, dict[str, str]] = {}  # split -> example id -> input text (reports show won/lost examples)
    warnings: list[str] = []
    token_times: TokenTimes | None = None  # the per-token times every rung's per-call cost is computed from
    judges: dict[str, JudgeSummary] = {}  # judge metrics: the judge, and its agreement with human grades
    rungs: list[RungResult] = []
    skipped: list[SkippedRung] = []
    recommendation: Recommendation | None = None
    data_checks: DataReport | None = None
    diagnosis: Diagnosis | None = None
    resolutions: list[Resolution] = []  # ladder resolve, newest last

    def rung(self, name: str) -> RungResult | None:
        return next((r for r in self.rungs if r.name == name), None)
