"""The run record (``run.json``): everything a report or a gate needs, and nothing else is read.

Typed at every seam (pydantic, ``extra="forbid"``): the parts of a rung's result (``parts``), what a trained
rung records (``training``), the assessment (``run``), and saving, loading and migrating it (``store``).
"""

from ladder.data.report import DataCheck, DataFinding, DataReport
from ladder.record.parts import (
    Decision,
    Estimate,
    ExampleRecord,
    JudgeAgreement,
    JudgeSummary,
    JudgeVerdict,
    PairedComparison,
    RungCost,
    SplitResult,
    TokenTimes,
)
from ladder.record.run import (
    SCHEMA_VERSION,
    AssessmentRun,
    Diagnosis,
    Evidence,
    Recommendation,
    Resolution,
    RungResult,
    SkippedRung,
)
from ladder.record.store import MIGRATIONS, load_run, migrate, save_run
from ladder.record.training import (
    AdapterCertificate,
    CertificateCheck,
    CurvePoint,
    DevEvaluation,
    JudgedPair,
    ModelIdentity,
    PairsRecord,
    TeacherRecord,
    TrainingOutcome,
    TrainingRecord,
)

__all__ = [
    "JudgedPair",
    "JudgeVerdict",
    "JudgeAgreement",
    "JudgeSummary",
    "AdapterCertificate",
    "AssessmentRun",
    "CertificateCheck",
    "CurvePoint",
    "DataCheck",
    "DataFinding",
    "DataReport",
    "Decision",
    "DevEvaluation",
    "Diagnosis",
    "Estimate",
    "Evidence",
    "ExampleRecord",
    "MIGRATIONS",
    "ModelIdentity",
    "PairedComparison",
    "PairsRecord",
    "Recommendation",
    "Resolution",
    "RungCost",
    "RungResult",
    "SCHEMA_VERSION",
    "SkippedRung",
    "SplitResult",
    "TeacherRecord",
    "TokenTimes",
    "TrainingOutcome",
    "TrainingRecord",
    "load_run",
    "migrate",
    "save_run",
]
