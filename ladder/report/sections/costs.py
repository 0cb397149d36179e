"""What each rung costs: per call, to adapt, and when a costlier rung pays back."""

from __future__ import annotations

from ladder.decide.cost import duration, money
from ladder.record import AssessmentRun
from ladder.report.document import (
    Figure,
    Paragraph,
    Section,
    Table,
)
from ladder.report.sections.cells import chosen_rung, interval, seconds, why_chosen


def what_it_costs(run: AssessmentRun) -> Section:
    section = Section("cost", "What each rung costs (dev split)")
    costed = [r for r in run.rungs if r.cost is not None]
    if not costed:
        return section
    first = costed[0].cost
    assert first is not None
    unit, calls, basis = first.unit, first.calls, first.basis
    rows = []
    for r in costed:
        c = r.cost
        assert c is not None
        even = ", ".join(f"{k}: {v:,.0f} calls" for k, v in c.break_even_calls.items() if v is not None) or "—"
        memory = f"{c.peak_memory_mb:.0f} MB" if c.peak_memory_mb else "—"
        artifact = f"{c.artifact_bytes / 2**20:.1f} MB" if c.artifact_bytes else "—"
        probed = (
            [f"{seconds(c.seconds_per_call)} ({seconds(c.wall_seconds_per_call)})"]
            if run.token_times is not None and c.wall_seconds_per_call is not None
            else []
        )
        rows.append(
            [
                r.name,
                duration(c.adaptation_s),
                money(c.adaptation_cost, c.unit),
                money(c.cost_per_1k_calls, c.unit),
                money(c.total_cost, c.unit),
                *probed,
                f"{seconds(c.latency_p50_s)} / {seconds(c.latency_p95_s)}",
                f"{c.examples_per_s:.2f}",
                memory,
                artifact,
                even,
            ]
        )
    chosen = chosen_rung(run)
    section.blocks.append(
        Table(
            [
                "rung",
                "adaptation",
                "adaptation cost",
                "per 1k calls",
                f"total at {calls:,.0f} calls",
                *(["machine time per call (own wall)"] if run.token_times is not None else []),
                "latency p50 / p95",
                "calls/s",
                "peak memory",
                "artifact",
                "break-even vs",
            ],
            rows,
            frozenset(i for i, r in enumerate(costed) if r.name == chosen),
        )
    )
    metric = run.target.metric
    section.blocks.append(
        Figure(
            "quality_cost",
            {
                "metric": metric,
                "threshold": run.target.threshold,
                "unit": unit,
                "chosen": chosen,
                "rungs": [r.name for r in costed],
                # 3 significant digits (as the table prints them): a re-run whose selection times moved in the 6th
                # digit draws the same figure (and finds it drawn: ``plots.drawn``)
                "cost": [float(f"{r.cost.cost_per_1k_calls:.3g}") for r in costed if r.cost is not None],
                "dev": [interval(r.splits["dev"].deciding(metric)) for r in costed],
            },
            f"Dev {metric} (95% interval) against the cost per 1k calls ({unit}); "
            + (f"{chosen} is highlighted ({why_chosen(run)}). " if chosen else "")
            + "The numbers are the table above and the summary table.",
        )
    )
    made = [
        what
        for kind, what in (
            ("distill", "a teacher's answers"),
            ("preference", "the model's own wrong answers"),
            ("lora", "the adapter it starts from"),
        )
        if any(r.type == kind and r.training is not None and r.training.data_s for r in run.rungs)
    ]
    adaptation = (
        f"Adaptation is training wall time plus making the training data ({', '.join(made)}) where a rung needs "
        "it, or building the candidate; "
        if made
        else "Adaptation is training wall time (or building the candidate); "
    )
    times = run.token_times
    probe = (
        ""
        if times is None or basis == "tokens"
        else f"Machine time per call is the rung's prompt and completion tokens per call times per-token times probed "
        f"once in this run through the same backend ({times.prompt_s_per_token * 1e3:.3g} ms per prompt token, "
        f"{times.completion_s_per_token * 1e3:.3g} ms per completion token; {times.repeats} repeats, noise "
        f"±{times.noise:.0%}), so it does not depend on when a rung ran; its own wall time is in brackets. Costs "
        f"closer than {max(times.noise, 0.1):.0%} are a tie, kept by the lower rung. "
    )
    section.blocks.append(
        Paragraph(
            (
                "Per-call cost from token prices. "
                if basis == "tokens"
                else "Per-call cost from batched machine time per call"
                + (" (no prices given: machine-hours). " if unit == "machine-hours" else ". ")
            )
            + probe
            + adaptation
            + "the total adds the expected calls "
            "(cost.calls_per_month x cost.months); break-even is the volume at which a rung's lower per-call cost "
            "pays back its higher one-time cost. Latency per call is the wall time of the batch that answered it."
        )
    )
    return section


def cost_per_rung(run: AssessmentRun) -> Section:
    rows = []
    for r in run.rungs:
        t = r.splits["test"]
        wall = sum(s.wall_s for s in r.splits.values())
        cached = ", ".join(k for k, s in r.splits.items() if s.cached) or "no"
        rows.append(
            [
                r.name,
                f"{t.prompt_tokens_per_call:.1f}",
                f"{t.completion_tokens_per_call:.1f}",
                seconds(t.latency_s_per_example),
                f"{t.examples_per_s:.2f}",
                seconds(r.build_s),
                seconds(wall),
                cached,
            ]
        )
    return Section(
        "tokens",
        "Cost per rung (test split)",
        [
            Table(
                [
                    "rung",
                    "prompt tokens/call",
                    "completion tokens/call",
                    "latency/example",
                    "examples/s",
                    "build",
                    "eval wall (dev+test)",
                    "cached",
                ],
                rows,
            ),
            Paragraph(
                "Prompt tokens count the whole prompt, shared prefix included, as a serving bill would; completion tokens "
                "are the answer as the model would emit it, end-of-turn included. Latency is batched wall time divided by "
                "examples. Cached splits show the wall time measured when their outputs were computed."
            ),
        ],
    )
