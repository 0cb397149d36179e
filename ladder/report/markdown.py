"""Markdown report (for pull requests and stakeholders), rendered from a run record alone."""

from __future__ import annotations

from ladder.cost import duration, money
from ladder.record import AssessmentRun, DevEvaluation, RungResult
from ladder.scoring.stats import Estimate


def ci(m: Estimate) -> str:
    return f"{m.mean:.3f} [{m.low:.3f}, {m.high:.3f}]"


def _p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3g}"


def delta(result: RungResult, previous: RungResult | None, split: str, metric: str) -> str:
    cmp = result.splits[split].comparison(previous.name, metric) if previous is not None else None
    if cmp is None:
        return "—"
    return f"{cmp.delta:+.3f} [{cmp.low:+.3f}, {cmp.high:+.3f}], {_p(cmp.p_value)}"


def _seconds(value: float) -> str:
    if value < 0.01:
        return f"{value * 1000:.2f} ms"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _dev_eval(evaluation: DevEvaluation | None, metric: str) -> str:
    """The last dev evaluation of a training: its loss, and the target metric when it decided."""
    if evaluation is None:
        return "—"
    text = f"loss {evaluation.dev_loss}"
    return text + (f", {metric} {evaluation.dev_metric:.3f}" if evaluation.dev_metric is not None else "")


def render_markdown(run: AssessmentRun) -> str:
    metric = run.target.metric
    threshold = run.target.threshold
    lines = [f"# ladder report: {run.task_name}", ""]
    if run.status != "complete":
        lines += [f"> **Run {run.status}**" + (f": {run.error}" if run.error else "") + " — results below are partial.", ""]
    if run.recommendation is not None:
        lines += [f"**Recommendation:** {run.recommendation.summary}.", ""]
        lines += [f"- {reason}" for reason in run.recommendation.reasons]
        if run.recommendation.reasons:
            lines.append("")
    policy = run.spec.policy
    lines += [
        f"Target: {metric} ≥ {threshold:.3f}, decided on the dev split; test is held out and reported beside it. "
        "Intervals are 95% (Wilson for yes/no metrics, bootstrap otherwise); Δ is a paired comparison with the "
        "rung before (same examples; exact McNemar p for yes/no metrics, paired bootstrap otherwise). "
        f"A rung meets the target when its dev {'interval' if policy.confidence == 'lower_bound' else 'mean'} "
        "is at or above it, shows a gap when its whole interval is below it, and is inconclusive otherwise"
        + (" (every rung was run: --exhaustive)." if run.exhaustive else "."),
        "",
        f"| rung | dev {metric} | test {metric} | Δ test vs previous | invalid outputs (test) | dev status | decision |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(run.rungs):
        previous = run.rungs[i - 1] if i else None
        lines.append(
            f"| {r.name} | {ci(r.splits['dev'].metrics[metric])} | {ci(r.splits['test'].metrics[metric])} "
            f"| {delta(r, previous, 'test', metric)} | {r.splits['test'].invalid_share:.1%} | {r.decision.status} | {r.decision.action} |"
        )
    for s in run.skipped:
        lines.append(f"| {s.name} | — | — | — | — | — | skipped: {s.reason} |")
    kind = run.spec.output.kind
    if kind != "text":
        form = "one of the labels" if kind == "label" else "JSON of the target's kind (object or array)"
        lines += ["", f"An invalid output is an answer that is not {form}: a rung can fail at the format as well as at the task."]
    holm = run.recommendation.holm_p if run.recommendation is not None else {}
    pairs = [(r, c) for r in run.rungs for c in r.splits["dev"].comparisons if c.metric == metric]
    if pairs:
        lines += ["", f"## Paired comparisons on dev ({metric})", ""]
        lines += ["| rung | vs | Δ | 95% interval | wins / losses | p | Holm p | test |", "|---|---|---|---|---|---|---|---|"]
        for r, c in pairs:
            adjusted = holm.get(f"{r.name} vs {c.baseline}")
            lines.append(
                f"| {r.name} | {c.baseline} | {c.delta:+.3f} | [{c.low:+.3f}, {c.high:+.3f}] | {c.wins} / {c.losses} "
                f"| {_p(c.p_value)} | {_p(adjusted) if adjusted is not None else '—'} | {c.method} |"
            )
        lines += ["", f"A costlier rung counts as better only when its Holm-adjusted p is below {policy.alpha}; a cheaper "
                  f"rung may be recommended when it meets the target and its Δ to the best rung stays above "
                  f"-{policy.non_inferiority_margin} (95% interval)."]
    costed = [r for r in run.rungs if r.cost is not None]
    if costed:
        unit = costed[0].cost.unit  # type: ignore[union-attr]
        calls = costed[0].cost.calls  # type: ignore[union-attr]
        lines += ["", "## What each rung costs (dev split)", ""]
        lines += ["| rung | adaptation | adaptation cost | per 1k calls | " + f"total at {calls:,.0f} calls | latency p50 / p95 "
                  "| calls/s | peak memory | artifact | break-even vs |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in costed:
            c = r.cost
            assert c is not None
            even = ", ".join(f"{k}: {v:,.0f} calls" for k, v in c.break_even_calls.items() if v is not None) or "—"
            memory = f"{c.peak_memory_mb:.0f} MB" if c.peak_memory_mb else "—"
            artifact = f"{c.artifact_bytes / 2**20:.1f} MB" if c.artifact_bytes else "—"
            lines.append(
                f"| {r.name} | {duration(c.adaptation_s)} | {money(c.adaptation_cost, c.unit)} | {money(c.cost_per_1k_calls, c.unit)} "
                f"| {money(c.total_cost, c.unit)} | {_seconds(c.latency_p50_s)} / {_seconds(c.latency_p95_s)} "
                f"| {c.examples_per_s:.2f} | {memory} | {artifact} | {even} |"
            )
        basis = costed[0].cost.basis  # type: ignore[union-attr]
        lines += ["", ("Per-call cost from token prices. " if basis == "tokens" else
                       "Per-call cost from batched machine time per call" + (" (no prices given: machine-hours). " if unit == "machine-hours" else ". "))
                  + "Adaptation is training wall time (or building the candidate); the total adds the expected calls "
                  "(cost.calls_per_month x cost.months); break-even is the volume at which a rung's lower per-call cost "
                  "pays back its higher one-time cost. Latency per call is the wall time of the batch that answered it."]
    lines += ["", "## Cost per rung (test split)", ""]
    lines += [
        "| rung | prompt tokens/call | completion tokens/call | latency/example | examples/s | build | eval wall (dev+test) | cached |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in run.rungs:
        t = r.splits["test"]
        wall = sum(s.wall_s for s in r.splits.values())
        cached = ", ".join(k for k, s in r.splits.items() if s.cached) or "no"
        lines.append(
            f"| {r.name} | {t.prompt_tokens_per_call:.1f} | {t.completion_tokens_per_call:.1f} | "
            f"{_seconds(t.latency_s_per_example)} | {t.examples_per_s:.2f} | {_seconds(r.build_s)} | {_seconds(wall)} | {cached} |"
        )
    lines += [
        "",
        "Prompt tokens count the whole prompt, shared prefix included, as a serving bill would; completion tokens "
        "are the answer as the model would emit it, end-of-turn included. Latency is batched wall time divided by "
        "examples. Cached splits show the wall time measured when their outputs were computed.",
    ]
    trained = [r for r in run.rungs if r.training]
    if trained:
        lines += ["", "## Training", ""]
        lines += ["| rung | steps | epochs | wall | real tokens | tokens/s | memory (start → peak) | best step | last dev evaluation | artifact |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in trained:
            t = r.training
            assert t is not None
            lines.append(
                f"| {r.name} | {t.steps} | {t.epochs:.2f} | {_seconds(t.wall_s)} "
                f"| {t.tokens_seen} | {t.tokens_per_s:.1f} "
                f"| {t.rss_start_mb:.0f} → {t.rss_peak_mb:.0f} MB | {t.best_step} "
                f"| {_dev_eval(t.dev_evals[-1] if t.dev_evals else None, metric)} | {t.artifact_bytes / 2**20:.1f} MB |"
            )
        lines += ["", "Real tokens exclude padding; tokens/s includes the dev evaluations; memory is the "
                  "process's resident set, sampled during training."]
    retrieval_rungs = [r for r in run.rungs if r.splits["test"].retrieval]
    if retrieval_rungs:
        lines += ["", "## Retrieval (against the data's gold document)", ""]
        lines += ["| rung | split | " + " | ".join(retrieval_rungs[0].splits["test"].retrieval) + " | retrieval time/example |",
                  "|---" * (len(retrieval_rungs[0].splits["test"].retrieval) + 3) + "|"]
        for r in retrieval_rungs:
            for split, result in r.splits.items():
                cells = " | ".join(ci(m) for m in result.retrieval.values())
                lines.append(f"| {r.name} | {split} | {cells} | {_seconds(result.selection_s / max(1, result.n))} |")
        settings = ", ".join(f"{k}={v}" for k, v in retrieval_rungs[0].settings.items())
        lines += ["", f"Settings of {retrieval_rungs[0].name}: {settings}."]
    if len(run.spec.metrics) > 1:
        lines += ["", "## All metrics (test)", ""]
        metrics = run.spec.metrics
        lines += ["| rung | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
        for r in run.rungs:
            lines.append(f"| {r.name} | " + " | ".join(ci(r.splits["test"].metrics[m]) for m in metrics) + " |")
    lines += ["", "## Decisions", ""]
    for i, r in enumerate(run.rungs, 1):
        lines.append(f"{i}. **{r.name}** — {r.decision.status}, {r.decision.action}: {r.decision.reason}.")
    lines += ["", "## Setup", ""]
    model = run.model
    lines += [
        f"- model: `{model.name}` (weights sha256 `{model.weights_sha256[:12]}`, "
        f"tokenizer sha256 `{model.tokenizer_sha256[:12]}`), backend {model.backend}, "
        f"{model.dtype or 'server-side dtype'} on {model.device or model.base_url or '?'}",
        "- data: " + ", ".join(f"{s} {n} (sha256 `{run.data_hashes.get(s, '?')[:12]}`)" for s, n in run.data_sizes.items())
        + (f"; evaluated on the first {run.limit} of dev and test (--limit)" if run.limit else ""),
        f"- run `{run.run_id}`, {run.created}, ladder {run.ladder_version}, seed {run.seed}",
        "- packages: " + ", ".join(f"{k} {v}" for k, v in sorted(run.packages.items())),
    ]
    for r in run.rungs:
        if r.demo_ids:
            lines.append(f"- {r.name} demonstrations: " + ", ".join(f"`{d}`" for d in r.demo_ids))
    return "\n".join(lines) + "\n"
