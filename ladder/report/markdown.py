"""Markdown report (for pull requests and stakeholders), rendered from a run record alone."""

from __future__ import annotations

from ladder.record import AssessmentRun, MetricSummary, RungResult


def ci(m: MetricSummary) -> str:
    return f"{m.mean:.3f} [{m.low:.3f}, {m.high:.3f}]"


def delta(result: RungResult, split: str, metric: str) -> str:
    cmp = result.splits[split].comparisons.get(metric)
    if cmp is None:
        return "—"
    p = "p<0.001" if cmp.p_value < 0.001 else f"p={cmp.p_value:.3g}"
    return f"{cmp.delta:+.3f} [{cmp.low:+.3f}, {cmp.high:+.3f}], {p}"


def _seconds(value: float) -> str:
    if value < 0.01:
        return f"{value * 1000:.2f} ms"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _dev_eval(evaluation: dict, metric: str | None) -> str:
    """The last dev evaluation of a training: its loss, and the target metric when it decided."""
    if "dev_loss" not in evaluation:
        return "—"
    text = f"loss {evaluation['dev_loss']}"
    return text + (f", {metric} {evaluation['dev_metric']:.3f}" if "dev_metric" in evaluation else "")


def render_markdown(run: AssessmentRun) -> str:
    metric = run.target["metric"]
    threshold = run.target["threshold"]
    lines = [f"# ladder report: {run.task_name}", ""]
    if run.status != "complete":
        lines += [f"> **Run {run.status}**" + (f": {run.error}" if run.error else "") + " — results below are partial.", ""]
    if run.recommendation is not None:
        lines += [f"**Recommendation:** {run.recommendation.summary}.", ""]
    lines += [
        f"Target: {metric} ≥ {threshold:.3f}, decided on the dev split; test is held out and reported beside it. "
        "Intervals are 95% (Wilson for yes/no metrics, bootstrap otherwise); Δ is a paired comparison with the "
        "rung before (same examples; exact McNemar p for yes/no metrics, paired bootstrap otherwise).",
        "",
        f"| rung | dev {metric} | test {metric} | Δ test vs previous | decision |",
        "|---|---|---|---|---|",
    ]
    for r in run.rungs:
        lines.append(
            f"| {r.name} | {ci(r.splits['dev'].metrics[metric])} | {ci(r.splits['test'].metrics[metric])} "
            f"| {delta(r, 'test', metric)} | {r.decision.action} |"
        )
    for s in run.skipped:
        lines.append(f"| {s.name} | — | — | — | skipped: {s.reason} |")
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
            t = r.training or {}
            dev = t.get("dev_evals") or [{}]
            lines.append(
                f"| {r.name} | {t.get('steps')} | {t.get('epochs', 0):.2f} | {_seconds(t.get('wall_s', 0.0))} "
                f"| {t.get('tokens_seen')} | {t.get('tokens_per_s', 0.0):.1f} "
                f"| {t.get('rss_start_mb', 0):.0f} → {t.get('rss_peak_mb', 0):.0f} MB | {t.get('best_step')} "
                f"| {_dev_eval(dev[-1], run.target.get('metric'))} | {t.get('artifact_bytes', 0) / 2**20:.1f} MB |"
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
    if len(run.spec.get("metrics", [])) > 1:
        lines += ["", "## All metrics (test)", ""]
        metrics = run.spec["metrics"]
        lines += ["| rung | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
        for r in run.rungs:
            lines.append(f"| {r.name} | " + " | ".join(ci(r.splits["test"].metrics[m]) for m in metrics) + " |")
    lines += ["", "## Decisions", ""]
    for i, r in enumerate(run.rungs, 1):
        lines.append(f"{i}. **{r.name}** — {r.decision.action}: {r.decision.reason}.")
    lines += ["", "## Setup", ""]
    model = run.model
    lines += [
        f"- model: `{model.get('name', '?')}` (weights sha256 `{str(model.get('weights_sha256', '?'))[:12]}`, "
        f"tokenizer sha256 `{str(model.get('tokenizer_sha256', '?'))[:12]}`), backend {model.get('backend', '?')}, "
        f"{model.get('dtype', '?')} on {model.get('device', '?')}",
        "- data: " + ", ".join(f"{s} {n} (sha256 `{run.data_hashes.get(s, '?')[:12]}`)" for s, n in run.data_sizes.items())
        + (f"; evaluated on the first {run.limit} of dev and test (--limit)" if run.limit else ""),
        f"- run `{run.run_id}`, {run.created}, ladder {run.ladder_version}, seed {run.seed}",
        "- packages: " + ", ".join(f"{k} {v}" for k, v in sorted(run.packages.items())),
    ]
    for r in run.rungs:
        if r.demo_ids:
            lines.append(f"- {r.name} demonstrations: " + ", ".join(f"`{d}`" for d in r.demo_ids))
    return "\n".join(lines) + "\n"
