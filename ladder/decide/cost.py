"""Pure cost arithmetic: measured time and tokens -> money (or machine-hours) and break-even volumes.

Per rung: a one-time adaptation cost (training wall time, or building the candidate: demonstrations,
retrieval index) and a per-call cost, either from machine time (at ``price_per_hour``: the rung's prompt and
completion tokens per call times the per-token times the run probed once, plus its selection time per call, so
it does not depend on when the rung ran; its own wall time is kept beside it) or, for an API-served model, from
tokens (``price_per_1k_*_tokens``). At the expected
volume (``calls_per_month x months``) the total is adaptation + calls x per-call cost. The break-even
volume of a rung against a cheaper-to-build one is where its lower per-call cost has paid back its
higher one-time cost. Measured on dev, like every decision.
"""

from __future__ import annotations

from ladder.record import AssessmentRun, RungCost, RungResult, SplitResult, TokenTimes, TrainingRecord
from ladder.spec import CostSpec, TaskSpec

MACHINE_HOURS = "machine-hours"


def rung_cost(
    dev: SplitResult,
    training: TrainingRecord | None,
    build_s: float,
    spec: CostSpec,
    token_times: TokenTimes | None = None,
    batch_size: int = 1,
) -> RungCost:
    """``training``: the training record of a trained rung (its wall time and the time making its data are the
    adaptation time; a reused training still counts what it took); ``build_s``: building the candidate otherwise;
    ``token_times``: the run's probed per-token times (None: the rung's own wall time per call); ``batch_size``:
    the calls that share one computation of the prompts' common prefix (instruction, demonstrations). Label
    scoring's answer work is every label's tokens (each is scored), generation's the tokens it emitted."""
    # a trained rung: its training, plus making its data (a teacher's answers, the model's own mistakes)
    adaptation_s = training.wall_s + training.data_s if training is not None else build_s
    wall_per_call = (dev.wall_s + dev.selection_s) / dev.n if dev.n else 0.0
    if token_times is not None and dev.n:
        shared = min(dev.shared_prefix_tokens, dev.prompt_tokens_per_call)
        computed_prompt = dev.prompt_tokens_per_call - shared + shared / max(1, batch_size)
        seconds_per_call = (
            computed_prompt * token_times.prompt_s_per_token
            + (dev.scored_tokens_per_call or dev.completion_tokens_per_call) * token_times.completion_s_per_token
            + token_times.call_s / max(1, batch_size)
            + dev.selection_s / dev.n
        )
    else:
        seconds_per_call = wall_per_call
    hourly = spec.price_per_hour if spec.price_per_hour is not None else 1.0
    unit = spec.currency if spec.price_per_hour is not None else MACHINE_HOURS
    if spec.price_per_1k_prompt_tokens is not None and spec.price_per_1k_completion_tokens is not None:
        basis = "tokens"
        per_call = (
            dev.prompt_tokens_per_call * spec.price_per_1k_prompt_tokens
            + dev.completion_tokens_per_call * spec.price_per_1k_completion_tokens
        ) / 1000
    else:
        basis = "time"
        per_call = seconds_per_call / 3600 * hourly
    adaptation = adaptation_s / 3600 * hourly
    calls = spec.calls_per_month * spec.months
    return RungCost(
        adaptation_s=adaptation_s,
        prompt_tokens_per_call=dev.prompt_tokens_per_call,
        completion_tokens_per_call=dev.completion_tokens_per_call,
        seconds_per_call=seconds_per_call,
        wall_seconds_per_call=wall_per_call,
        noise=token_times.noise if token_times is not None else 0.0,
        examples_per_s=dev.examples_per_s,
        latency_p50_s=dev.latency_p50_s,
        latency_p95_s=dev.latency_p95_s,
        peak_memory_mb=training.rss_peak_mb if training is not None else None,
        artifact_bytes=training.artifact_bytes if training is not None else None,
        unit=unit,
        basis=basis,  # type: ignore[arg-type]
        adaptation_cost=adaptation,
        cost_per_1k_calls=per_call * 1000,
        calls=calls,
        total_cost=adaptation + calls * per_call,
    )


def break_even_calls(mine: RungCost, other: RungCost) -> float | None:
    """Calls after which ``mine`` (costlier to build, cheaper per call) costs less in total than
    ``other``; None when it never does (not cheaper per call) or from the first call (not costlier to build)."""
    extra = mine.adaptation_cost - other.adaptation_cost
    saving = (other.cost_per_1k_calls - mine.cost_per_1k_calls) / 1000
    if extra <= 0 or saving <= 0:
        return None
    return extra / saving


def with_break_even(cost: RungCost, earlier: list[RungResult]) -> RungCost:
    table = {r.name: break_even_calls(cost, r.cost) for r in earlier if r.cost is not None}
    return cost.model_copy(update={"break_even_calls": table})


def money(value: float, unit: str) -> str:
    if unit == MACHINE_HOURS:
        return f"{value:.3g} machine-h" if value < 100 else f"{value:,.0f} machine-h"
    return f"{value:,.2f} {unit}" if value >= 0.01 or value == 0 else f"{value:.2g} {unit}"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def cost_by_token_times(run: AssessmentRun, spec: TaskSpec) -> None:
    """Rungs measured before the probe ran (their outputs cached) get their cost per call from the same per-token
    times as the rest; a run whose every output was cached keeps the wall times measured when they were computed."""
    if run.token_times is None:
        return
    costed: list[RungResult] = []
    for i, result in enumerate(run.rungs):
        cost = rung_cost(
            result.splits["dev"],
            result.training,
            result.build_s,
            spec.cost,
            run.token_times,
            spec.generation.batch_size,
        )
        run.rungs[i] = result.model_copy(update={"cost": with_break_even(cost, costed)})
        costed.append(run.rungs[i])
