"""A gate suite: several (task, rung, slice, margin, baseline) gates in one YAML file, each run as a CI
pipeline would: ``assess`` the rung on the slice, then ``gate`` it against its committed baseline.
Paths in the file are relative to it."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ladder.errors import LadderError, ValidationFailed, validation_problems
from ladder.gate import GateResult, gate, load_baseline


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GateSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    task: str = Field(description="task.yaml, relative to the suite file")
    rung: str
    baseline: str = Field(description="baseline file, relative to the suite file")
    limit: int | None = Field(default=None, ge=1, description="--limit the run uses (the baseline's slice)")
    metrics: list[str] | None = None
    margin: float = Field(default=0.0, ge=0, lt=1)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    backend: str = "transformers"
    repeats: int = Field(
        default=1, ge=1, description="evaluations of every example (the noise floor; see assess --repeats)"
    )


class GateSuite(_Strict):
    gates: list[GateSpec] = Field(min_length=1)


def load_suite(path: str | Path) -> tuple[GateSuite, Path]:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LadderError(f"{path}: cannot read gate suite ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise LadderError(f"{path}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    try:
        return GateSuite.model_validate(raw), path.resolve().parent
    except ValidationError as exc:
        raise ValidationFailed(validation_problems(exc, str(path))) from None


def run_suite(
    path: str | Path, out_root: Path, progress=None, on_inconclusive=None, model: str | None = None
) -> list[tuple[GateSpec, GateResult]]:
    """``model``: every gate's task on this base model instead of its own (``--model``: does a new base regress?)."""
    from ladder.run.assess import assess
    from ladder.spec import load_task

    suite, base = load_suite(path)
    results = []
    for spec in suite.gates:
        baseline_path = base / spec.baseline
        baseline = load_baseline(baseline_path)
        if progress:
            progress(f"[gate {spec.name}] assess {spec.task} --rungs {spec.rung} --limit {spec.limit}")
        run, _ = assess(
            load_task(base / spec.task).with_model(model),
            backend=spec.backend,
            rungs=[spec.rung],
            limit=spec.limit,
            out_dir=out_root / spec.name,
            progress=progress,
            exhaustive=True,
            repeats=spec.repeats,
        )
        results.append(
            (
                spec,
                gate(
                    run,
                    baseline,
                    spec.rung,
                    spec.metrics,
                    spec.margin,
                    spec.alpha,
                    source=str(out_root / spec.name),
                    baseline_source=str(baseline_path),
                    on_inconclusive=on_inconclusive,
                ),
            )
        )
    return results
