"""All console output of the CLI goes through here."""

from __future__ import annotations

import sys

from ladder.record import AssessmentRun


def info(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def out(message: str = "") -> None:
    print(message, flush=True)


def _cell(m) -> str:
    return f"{m.mean:.3f} [{m.low:.3f},{m.high:.3f}]"


def rung_table(run: AssessmentRun) -> str:
    from ladder.cost import money

    metric = run.target.metric
    header = ("rung", f"dev {metric}", f"test {metric}", "n dev/test", "invalid", "ms/ex", "tok in/out", "cost/1k calls",
              "dev status", "decision")
    rows = [header]
    for r in run.rungs:
        d, t = r.splits["dev"], r.splits["test"]
        rows.append(
            (
                r.name,
                _cell(d.metrics[metric]),
                _cell(t.metrics[metric]),
                f"{d.n}/{t.n}",
                f"{t.invalid_share:.0%}",
                f"{t.latency_s_per_example * 1000:.0f}" + (" (cached)" if t.cached else ""),
                f"{t.prompt_tokens_per_call:.0f}/{t.completion_tokens_per_call:.1f}",
                money(r.cost.cost_per_1k_calls, r.cost.unit) if r.cost else "-",
                r.decision.status,
                r.decision.action,
            )
        )
    for s in run.skipped:
        rows.append((s.name, "-", "-", "-", "-", "-", "-", "-", "-", "skipped"))
    notes = []
    for r in run.rungs:
        retrieval = r.splits["test"].retrieval
        if retrieval:
            notes.append(f"{r.name} retrieval (test): " + ", ".join(f"{k} {_cell(m)}" for k, m in retrieval.items()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + notes)


def summary(run: AssessmentRun, out_dir) -> None:
    out(rung_table(run))
    out()
    if run.recommendation is not None:
        out(f"recommendation: {run.recommendation.summary}")
        for reason in run.recommendation.reasons:
            out(f"  - {reason}")
    out(f"record: {out_dir}/run.json   report: {out_dir}/report.md")
