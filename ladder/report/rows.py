"""A run record's report, built once as a ``Document``: every number a report shows is formatted here,
and both renderers (``markdown``, ``html``) only lay it out."""

from __future__ import annotations

from ladder.decide.cost import duration, money
from ladder.decide.diagnosis import gap_kind
from ladder.record import AssessmentRun, DevEvaluation, ExampleRecord, RungResult
from ladder.report.document import (
    Document,
    Figure,
    Items,
    Notice,
    Paragraph,
    Section,
    Table,
)
from ladder.scoring.stats import Estimate, PairedComparison

EXAMPLES_SHOWN = 3  # won and lost examples shown per adjacent pair of rungs
CELL_CHARS = 240  # an input or output longer than this is cut in the examples table


def ci(m: Estimate) -> str:
    return f"{m.mean:.3f} [{m.low:.3f}, {m.high:.3f}]"


def p_text(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3g}"


def delta_ci(cmp: PairedComparison) -> str:
    return f"{cmp.delta:+.3f} [{cmp.low:+.3f}, {cmp.high:+.3f}]"


def delta(result: RungResult, previous: RungResult | None, split: str, metric: str) -> str:
    cmp = result.splits[split].comparison(previous.name, metric) if previous is not None else None
    if cmp is None:
        return "—"
    return f"{delta_ci(cmp)}, {p_text(cmp.p_value)}"


def seconds(value: float) -> str:
    if value < 0.01:
        return f"{value * 1000:.2f} ms"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _dev_eval(evaluation: DevEvaluation | None, metric: str) -> str:
    """The last dev evaluation of a training: its loss, and the target metric when it decided."""
    if evaluation is None:
        return "—"
    text = f"loss {evaluation.dev_loss}"
    if evaluation.reward_accuracy is not None:
        text += f", reward accuracy {evaluation.reward_accuracy:.2f}, margin {evaluation.reward_margin:.3f}"
    return text + (f", {metric} {evaluation.dev_metric:.3f}" if evaluation.dev_metric is not None else "")


def _cut(text: str, limit: int = CELL_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def chosen_rung(run: AssessmentRun) -> str | None:
    """The rung a report highlights: the recommended one, else the best measured."""
    rec = run.recommendation
    return (rec.rung or rec.best_rung) if rec is not None else None


def _why_chosen(run: AssessmentRun) -> str:
    return "recommended" if run.recommendation and run.recommendation.rung else "best measured"


def build_report(run: AssessmentRun) -> Document:
    metric = run.target.metric
    sections = [
        _opening(run),
        _paired(run),
        _repeats(run),
        _diagnosis(run),
        _what_it_costs(run),
        _cost_per_rung(run),
        _per_label(run),
        _confusion(run),
        _won_and_lost(run),
        _training(run),
        _training_curves(run),
        _retrieval(run),
        _all_metrics(run),
        _data(run),
        _decisions(run),
        _setup(run),
        _manifest(run),
    ]
    footer = (f"Rendered by ladder from the run record {run.run_id} ({run.created}, ladder {run.ladder_version}); "
              f"target {metric} ≥ {run.target.threshold:.3f}.")
    return Document(f"ladder report: {run.task_name}", [s for s in sections if s.blocks], footer)


def _opening(run: AssessmentRun) -> Section:
    metric, threshold, policy = run.target.metric, run.target.threshold, run.spec.policy
    blocks: list = []
    if run.status != "complete":
        blocks.append(Notice(f"**Run {run.status}**" + (f": {run.error}" if run.error else "") + " — results below are partial."))
    if run.recommendation is not None:
        blocks.append(Paragraph(f"**Recommendation:** {run.recommendation.summary}."))
        if run.recommendation.reasons:
            blocks.append(Items(list(run.recommendation.reasons)))
    blocks.append(Paragraph(
        f"Target: {metric} ≥ {threshold:.3f}, decided on the dev split; test is held out and reported beside it. "
        "Intervals are 95% (Wilson for yes/no metrics, bootstrap otherwise); Δ is a paired comparison with the "
        "rung before (same examples; exact McNemar p for yes/no metrics, paired bootstrap otherwise). "
        f"A rung meets the target when its dev {'interval' if policy.confidence == 'lower_bound' else 'mean'} "
        "is at or above it, shows a gap when its whole interval is below it, and is inconclusive otherwise"
        + (" (every rung was run: --exhaustive)." if run.exhaustive else ".")
    ))
    rows = []
    for i, r in enumerate(run.rungs):
        previous = run.rungs[i - 1] if i else None
        rows.append([r.name, ci(r.splits["dev"].metrics[metric]), ci(r.splits["test"].metrics[metric]),
                     delta(r, previous, "test", metric), f"{r.splits['test'].invalid_share:.1%}", r.decision.status,
                     r.decision.action])
    for s in run.skipped:
        rows.append([s.name, "—", "—", "—", "—", "—", f"skipped: {s.reason}"])
    chosen = chosen_rung(run)
    blocks.append(Table(
        ["rung", f"dev {metric}", f"test {metric}", "Δ test vs previous", "invalid outputs (test)", "dev status", "decision"],
        rows, frozenset(i for i, r in enumerate(run.rungs) if r.name == chosen),
    ))
    if run.rungs:
        blocks.append(Figure("scores", {
            "metric": metric, "threshold": threshold,
            "rungs": [r.name for r in run.rungs],
            "dev": [interval(r.splits["dev"].metrics[metric]) for r in run.rungs],
            "test": [interval(r.splits["test"].metrics[metric]) for r in run.rungs],
        }, f"{metric} per rung, dev and test, with 95% intervals; the dashed line is the target {threshold:.3f}. "
           "The numbers are the table above."))
    kind = run.spec.output.kind
    if kind != "text":
        form = "one of the labels" if kind == "label" else "JSON of the target's kind (object or array)"
        blocks.append(Paragraph(f"An invalid output is an answer that is not {form}: a rung can fail at the format as well as at the task."))
    return Section("summary", "", blocks)


def interval(m: Estimate) -> list[float]:
    return [m.mean, m.low, m.high]


def _paired(run: AssessmentRun) -> Section:
    metric, policy = run.target.metric, run.spec.policy
    holm = run.recommendation.holm_p if run.recommendation is not None else {}
    pairs = [(r, c) for r in run.rungs for c in r.splits["dev"].comparisons if c.metric == metric]
    section = Section("paired", f"Paired comparisons on dev ({metric})")
    if not pairs:
        return section
    rows = []
    for r, c in pairs:
        adjusted = holm.get(f"{r.name} vs {c.baseline}")
        rows.append([r.name, c.baseline, f"{c.delta:+.3f}", f"[{c.low:+.3f}, {c.high:+.3f}]", f"{c.wins} / {c.losses}",
                     p_text(c.p_value), p_text(adjusted) if adjusted is not None else "—", c.method])
    section.blocks += [
        Table(["rung", "vs", "Δ", "95% interval", "wins / losses", "p", "Holm p", "test"], rows),
        Paragraph(f"A costlier rung counts as better only when its Holm-adjusted p is below {policy.alpha}. Among the "
                  "rungs that meet the target the recommendation is " + (
                      "the cheapest (`policy.prefer: cost`)." if policy.prefer == "cost" else
                      "the cheapest, or a costlier one that is significantly better (`policy.prefer: quality`).")),
    ]
    return section


def _repeats(run: AssessmentRun) -> Section:
    """``assess --repeats K``: how often an example's score changed between independent evaluations of one rung."""
    section = Section("repeats", f"The noise floor ({run.repeats} evaluations of every example)")
    if run.repeats < 2:
        return section
    metric = run.target.metric
    rows = [[r.name, *(f"{r.splits[s].flaky.get(metric, 0.0):.1%} of {r.splits[s].n}" for s in ("dev", "test"))]
            for r in run.rungs]
    section.blocks += [
        Table(["rung", f"dev: examples whose {metric} changed", f"test: examples whose {metric} changed"], rows),
        Paragraph(f"Each rung was evaluated {run.repeats} times, the result cache bypassed after the first, with other "
                  "batches (a shuffled order: other padding and batch-mates) and, when sampling, other seeds. An "
                  "example's score is its mean over the repeats, and every interval and paired test resamples examples, "
                  "not repeats."),
    ]
    return section


def _diagnosis(run: AssessmentRun) -> Section:
    section = Section("diagnosis", "What kind of gap is left")
    d = run.diagnosis
    if d is None or d.kind == "none":
        return section
    names = {"invalid_outputs": "outputs not of the declared form", "lenient_gap": "lenient vs strict score",
             "fewshot_gain": "few-shot gain", "rag_gain": "retrieval gain", "recall_follows": "answers follow retrieval",
             "unknown_share": "wrong whatever the demonstrations"}
    section.blocks += [
        Paragraph(f"After the prompt-side rungs the best is **{d.best_rung}**, " + (
            f"{d.gap:.3f} below the target on dev. " if d.gap > 0 else
            f"{-d.gap:.3f} above the target on its dev mean but not conclusively (its interval reaches below). ") +
                  f"The gap {gap_kind(d.kind, bold=True)}: {d.advice}."),
        Table(["signal", "points to", "evidence"], [[names.get(e.signal, e.signal), e.points_to, e.text] for e in d.evidence]),
    ]
    return section


def _what_it_costs(run: AssessmentRun) -> Section:
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
        probed = ([f"{seconds(c.seconds_per_call)} ({seconds(c.wall_seconds_per_call)})"]
                  if run.token_times is not None and c.wall_seconds_per_call is not None else [])
        rows.append([r.name, duration(c.adaptation_s), money(c.adaptation_cost, c.unit), money(c.cost_per_1k_calls, c.unit),
                     money(c.total_cost, c.unit), *probed, f"{seconds(c.latency_p50_s)} / {seconds(c.latency_p95_s)}",
                     f"{c.examples_per_s:.2f}", memory, artifact, even])
    chosen = chosen_rung(run)
    section.blocks.append(Table(
        ["rung", "adaptation", "adaptation cost", "per 1k calls", f"total at {calls:,.0f} calls",
         *(["machine time per call (own wall)"] if run.token_times is not None else []), "latency p50 / p95",
         "calls/s", "peak memory", "artifact", "break-even vs"],
        rows, frozenset(i for i, r in enumerate(costed) if r.name == chosen),
    ))
    metric = run.target.metric
    section.blocks.append(Figure("quality_cost", {
        "metric": metric, "threshold": run.target.threshold, "unit": unit, "chosen": chosen,
        "rungs": [r.name for r in costed],
        "cost": [r.cost.cost_per_1k_calls for r in costed if r.cost is not None],
        "dev": [interval(r.splits["dev"].metrics[metric]) for r in costed],
    }, f"Dev {metric} (95% interval) against the cost per 1k calls ({unit}); "
       + (f"{chosen} is highlighted ({_why_chosen(run)}). "
          if chosen else "") + "The numbers are the table above and the summary table."))
    adaptation = ("Adaptation is training wall time plus making the training data (a teacher's answers, the model's "
                  "own wrong answers) where a rung needs it, or building the candidate; "
                  if any(r.training is not None and r.training.data_s for r in run.rungs) else
                  "Adaptation is training wall time (or building the candidate); ")
    times = run.token_times
    probe = ("" if times is None or basis == "tokens" else
             f"Machine time per call is the rung's prompt and completion tokens per call times per-token times probed "
             f"once in this run through the same backend ({times.prompt_s_per_token * 1e3:.3g} ms per prompt token, "
             f"{times.completion_s_per_token * 1e3:.3g} ms per completion token; {times.repeats} repeats, noise "
             f"±{times.noise:.0%}), so it does not depend on when a rung ran; its own wall time is in brackets. Costs "
             f"closer than {max(times.noise, 0.1):.0%} are a tie, kept by the lower rung. ")
    section.blocks.append(Paragraph(
        ("Per-call cost from token prices. " if basis == "tokens" else
         "Per-call cost from batched machine time per call" + (" (no prices given: machine-hours). " if unit == "machine-hours" else ". "))
        + probe
        + adaptation + "the total adds the expected calls "
        "(cost.calls_per_month x cost.months); break-even is the volume at which a rung's lower per-call cost "
        "pays back its higher one-time cost. Latency per call is the wall time of the batch that answered it."
    ))
    return section


def _cost_per_rung(run: AssessmentRun) -> Section:
    rows = []
    for r in run.rungs:
        t = r.splits["test"]
        wall = sum(s.wall_s for s in r.splits.values())
        cached = ", ".join(k for k, s in r.splits.items() if s.cached) or "no"
        rows.append([r.name, f"{t.prompt_tokens_per_call:.1f}", f"{t.completion_tokens_per_call:.1f}",
                     seconds(t.latency_s_per_example), f"{t.examples_per_s:.2f}", seconds(r.build_s), seconds(wall), cached])
    return Section("tokens", "Cost per rung (test split)", [
        Table(["rung", "prompt tokens/call", "completion tokens/call", "latency/example", "examples/s", "build",
               "eval wall (dev+test)", "cached"], rows),
        Paragraph("Prompt tokens count the whole prompt, shared prefix included, as a serving bill would; completion tokens "
                  "are the answer as the model would emit it, end-of-turn included. Latency is batched wall time divided by "
                  "examples. Cached splits show the wall time measured when their outputs were computed."),
    ])


def _test_records(rung: RungResult) -> list[ExampleRecord]:
    return [e for e in rung.examples if e.split == "test"]


def _per_label(run: AssessmentRun) -> Section:
    section = Section("labels", "Per label (test)")
    labels = run.spec.output.labels
    if run.spec.output.kind != "label" or not labels or not run.rungs:
        return section
    header = ["label", "n"] + [f"{r.name} recall" for r in run.rungs] + [f"{r.name} precision" for r in run.rungs]
    tested = [_test_records(r) for r in run.rungs]
    rows = []
    for label in labels:
        row = [label, str(sum(1 for e in tested[0] if e.target == label))]
        recalls, precisions = [], []
        for records in tested:
            gold = [e for e in records if e.target == label]
            said = [e for e in records if e.output == label]
            hit = sum(1 for e in gold if e.output == label)
            recalls.append(f"{hit / len(gold):.2f} ({hit}/{len(gold)})" if gold else "—")
            right = sum(1 for e in said if e.target == label)
            precisions.append(f"{right / len(said):.2f} ({right}/{len(said)})" if said else "—")
        rows.append(row + recalls + precisions)
    section.blocks += [
        Table(header, rows),
        Paragraph("Recall: the share of a label's test examples answered with that label; precision: the share of "
                  "answers of that label that were right (counts in brackets)."),
    ]
    return section


def _confusion(run: AssessmentRun) -> Section:
    section = Section("confusion", "Confusion matrix (test)", in_markdown=False)
    labels = run.spec.output.labels
    name = chosen_rung(run)
    rung = run.rung(name) if name else None
    if run.spec.output.kind != "label" or not labels or rung is None:
        return section
    records = _test_records(rung)
    columns = list(labels) + ["(invalid)"]
    counts = [[sum(1 for e in records if e.target == gold and (e.output if e.output in labels else "(invalid)") == said)
               for said in columns] for gold in labels]
    keep = [j for j, _ in enumerate(columns) if j < len(labels) or any(row[j] for row in counts)]
    columns = [columns[j] for j in keep]
    counts = [[row[j] for j in keep] for row in counts]
    section.blocks += [
        Paragraph(f"Rung **{rung.name}** ({_why_chosen(run)}): "
                  "rows are the target label, columns the answer."),
        Table(["target \\ answer"] + columns, [[gold] + [str(c) for c in row] for gold, row in zip(labels, counts)]),
        Figure("confusion", {"rung": rung.name, "labels": list(labels), "columns": columns, "counts": counts},
               f"Confusion matrix of {rung.name} on test: the counts of the table above."),
    ]
    return section


def _won_and_lost(run: AssessmentRun) -> Section:
    section = Section("examples", "Examples won and lost between adjacent rungs (test)", in_markdown=False)
    metric = run.target.metric
    inputs = run.inputs.get("test", {})
    for previous, current in zip(run.rungs, run.rungs[1:]):
        before = {e.id: e for e in _test_records(previous)}
        after = [e for e in _test_records(current) if e.id in before]
        change = {e.id: e.scores[metric] - before[e.id].scores[metric] for e in after}
        won = sorted((e for e in after if change[e.id] > 0), key=lambda e: -change[e.id])  # biggest changes first
        lost = sorted((e for e in after if change[e.id] < 0), key=lambda e: change[e.id])
        section.blocks.append(Paragraph(
            f"**{current.name}** vs **{previous.name}**: {len(won)} won, {len(lost)} lost, "
            f"{len(after) - len(won) - len(lost)} unchanged of {len(after)} ({metric}; the {EXAMPLES_SHOWN} biggest "
            "changes each way shown, in data order among equals)."
        ))
        rows = []
        for verdict, chosen in (("won", won[:EXAMPLES_SHOWN]), ("lost", lost[:EXAMPLES_SHOWN])):
            for e in chosen:
                rows.append([verdict, e.id, _cut(inputs.get(e.id, "(input not recorded)")), _cut(before[e.id].output),
                             _cut(e.output), _cut(e.target)])
        if rows:
            section.blocks.append(Table(["", "id", "input", previous.name, current.name, "target"], rows))
    return section


def _training(run: AssessmentRun) -> Section:
    section = Section("training", "Training")
    trained = [r for r in run.rungs if r.training is not None]
    if not trained:
        return section
    metric = run.target.metric
    rows = []
    for r in trained:
        t = r.training
        assert t is not None
        rows.append([r.name, str(t.steps), f"{t.epochs:.2f}", seconds(t.wall_s), str(t.tokens_seen), f"{t.tokens_per_s:.1f}",
                     f"{t.rss_start_mb:.0f} → {t.rss_peak_mb:.0f} MB", str(t.best_step),
                     _dev_eval(t.dev_evals[-1] if t.dev_evals else None, metric), f"{t.artifact_bytes / 2**20:.1f} MB"])
    section.blocks += [
        Table(["rung", "steps", "epochs", "wall", "real tokens", "tokens/s", "memory (start → peak)", "best step",
               "last dev evaluation", "artifact"], rows),
        Paragraph("Real tokens exclude padding; tokens/s includes the dev evaluations; memory is the "
                  "process's resident set, sampled during training."),
    ]
    section.blocks += _learnt_from(run, trained)
    section.blocks += _certificates(trained)
    return section


def _certificates(trained: list[RungResult]) -> list:
    """Each trained rung's adapter certificate: what the serving backend showed of its artifact (fail closed)."""
    certified = [r for r in trained if r.certificate is not None]
    if not certified:
        return []
    rows = []
    for r in certified:
        cert = r.certificate
        assert cert is not None
        for c in cert.checks:
            verdict = "n/a" if c.passed is None else "pass" if c.passed else "**FAIL**"
            rows.append([r.name, cert.backend, c.name, verdict, c.detail])
    failed = [r.name for r in certified if not r.certified()]
    return [Table(["rung", "served by", "check", "verdict", "what it showed"], rows),
            Paragraph("Adapter certificate, on a probe of dev inputs through the backend that served the rung: the "
                      "artifact must change what is served, match the transformers/PEFT reference (vllm, openai) and be "
                      "served with the prompt format it trained with. "
                      + (f"Not recommended, and refused by `ladder gate`: {', '.join(failed)}." if failed else
                         "Every trained rung passed."))]


def _learnt_from(run: AssessmentRun, trained: list[RungResult]) -> list:
    """Where a distill rung's answers and a preference rung's pairs came from, and what making them cost."""
    blocks: list = []
    by_name = {r.name: r for r in run.rungs}
    rows = []
    for r in trained:
        teacher = r.training.teacher if r.training else None
        if teacher is None:
            continue
        measured = by_name.get(teacher.rung)
        before = measured.splits["dev"].prompt_tokens_per_call if measured else teacher.prompt_tokens_per_call
        after = r.splits["dev"].prompt_tokens_per_call
        source = teacher.rung + (f" on {teacher.model}" if teacher.model else "") + (f" at {teacher.url}" if teacher.url else "")
        correct = f"{teacher.train_correct:.2f}" if teacher.train_correct is not None else "—"
        rows.append([r.name, source, f"{teacher.inputs} ({teacher.unlabeled} unlabeled)", str(teacher.kept), correct,
                     duration(teacher.seconds), f"{before:.0f} → {after:.0f}"])
    if rows:
        blocks += [
            Table(["rung", "teacher", "inputs answered", "answers learnt", "teacher correct on train", "teacher time",
                   "prompt tokens per call (teacher → student)"], rows),
            Paragraph("A distill rung learns its teacher's answers on the zero-shot prompt; the teacher's time is part "
                      "of its adaptation cost, and the break-even volume against the teacher is in the cost table."),
        ]
    rows = []
    for r in trained:
        pairs = r.training.pairs if r.training else None
        if pairs is None:
            continue
        last = r.training.dev_evals[-1] if r.training.dev_evals else None
        ratio = (f"{pairs.dev_reference_logratio:.2f} → {last.chosen_logratio:.2f}"
                 if pairs.dev_reference_logratio is not None and last is not None and last.chosen_logratio is not None else "—")
        rows.append([r.name, pairs.source, pairs.init or "—", str(pairs.train_pairs), str(pairs.dev_pairs),
                     str(pairs.skipped), f"{pairs.beta:g} / {pairs.sft_weight:g}", ratio, duration(pairs.seconds)])
    if rows:
        blocks += [
            Table(["rung", "rejected answers from", "started from", "train pairs", "dev pairs", "without a wrong answer",
                   "beta / sft weight", "dev log p(chosen) − log p(rejected), reference → trained", "making pairs"], rows),
            Paragraph("Reward accuracy and margins on dev pairs show the preference was learnt, not that the task "
                      "improved: the task metric above decides."),
        ]
    return blocks


def _training_curves(run: AssessmentRun) -> Section:
    section = Section("curves", "Training curves", in_markdown=False)
    metric = run.target.metric
    for r in run.rungs:
        t = r.training
        if t is None:
            continue
        loss_at = {p.step: p.loss for p in t.curve}
        losses = [p.loss for p in t.curve]
        summary = (f"Training loss over {len(losses)} steps: first {losses[0]:.4f}, last {losses[-1]:.4f}, "
                   f"lowest {min(losses):.4f}." if losses else "No training step recorded.")
        section.blocks.append(Figure("training", {
            "rung": r.name, "metric": metric, "best_step": t.best_step,
            "steps": [p.step for p in t.curve], "loss": losses,
            "dev_steps": [e.step for e in t.dev_evals], "dev_loss": [e.dev_loss for e in t.dev_evals],
            "dev_metric": [e.dev_metric for e in t.dev_evals],
        }, f"{r.name}: training loss per step, dev loss (and dev {metric} where it chose the checkpoint) at each "
           f"evaluation; the kept checkpoint is step {t.best_step}. {summary} The dev evaluations are the table below."))
        if t.dev_evals:
            section.blocks.append(Table(
                ["step", "train loss", "dev loss", f"dev {metric}"],
                [[str(e.step), f"{loss_at[e.step]:.4f}" if e.step in loss_at else "—", f"{e.dev_loss:.4f}",
                  f"{e.dev_metric:.3f}" if e.dev_metric is not None else "—"] for e in t.dev_evals],
                frozenset(i for i, e in enumerate(t.dev_evals) if e.step == t.best_step),
            ))
    return section


def _retrieval(run: AssessmentRun) -> Section:
    section = Section("retrieval", "Retrieval (against the data's gold document)")
    retrieval_rungs = [r for r in run.rungs if r.splits["test"].retrieval]
    if not retrieval_rungs:
        return section
    names = list(retrieval_rungs[0].splits["test"].retrieval)
    rows = []
    for r in retrieval_rungs:
        for split, result in r.splits.items():
            rows.append([r.name, split, *(ci(m) for m in result.retrieval.values()),
                         seconds(result.selection_s / max(1, result.n))])
    settings = ", ".join(f"{k}={v}" for k, v in retrieval_rungs[0].settings.items())
    section.blocks += [
        Table(["rung", "split", *names, "retrieval time/example"], rows),
        Paragraph(f"Settings of {retrieval_rungs[0].name}: {settings}."),
    ]
    return section


def _all_metrics(run: AssessmentRun) -> Section:
    section = Section("metrics", "All metrics (test)")
    metrics = run.spec.metric_names
    if len(metrics) > 1:
        section.blocks.append(Table(["rung", *metrics],
                                    [[r.name, *(ci(r.splits["test"].metrics[m]) for m in metrics)] for r in run.rungs]))
    return section


def _data(run: AssessmentRun) -> Section:
    section = Section("data", "Data checks")
    report = run.data_checks
    if report is None:
        return section
    marks = {"ok": "ok", "info": "note", "warning": "warning", "error": "failed"}
    section.blocks.append(Table(["check", "result", "found", "what it says"], [
        [c.title, marks[c.severity] + (f" (allowed by {c.allowed_by})" if c.allowed_by else ""), str(c.count), c.summary]
        for c in report.checks
    ]))
    for check in report.checks:
        if check.severity in ("warning", "error") and check.findings:
            shown = check.findings[:5]
            more = f" (the first {len(shown)} of {check.count}; `ladder check-data` lists them)" if check.count > 5 else ""
            section.blocks += [Paragraph(f"{check.title}{more}:"),
                               Items([_cut(f"{f.where}: {f.detail}" if f.where else f.detail, 200) for f in shown])]
    return section


def _decisions(run: AssessmentRun) -> Section:
    trail = [f"**{r.name}** — {r.decision.status}, {r.decision.action}: {r.decision.reason}." for r in run.rungs]
    trail += [f"**{s.name}** — skipped: {s.reason}." for s in run.skipped]
    return Section("decisions", "Decisions", [Items(trail, numbered=True)] if trail else [])


def _setup(run: AssessmentRun) -> Section:
    model = run.model
    items = [
        f"model: `{model.name}` (weights sha256 `{model.weights_sha256[:12]}`, "
        f"tokenizer sha256 `{model.tokenizer_sha256[:12]}`), backend {model.backend}, "
        f"{model.dtype or 'server-side dtype'} on {model.device or model.base_url or '?'}",
        "data: " + ", ".join(f"{s} {n} (sha256 `{run.data_hashes.get(s, '?')[:12]}`)" for s, n in run.data_sizes.items())
        + (f"; evaluated on the first {run.limit} of dev and test (--limit)" if run.limit else ""),
        f"run `{run.run_id}`, {run.created}, ladder {run.ladder_version}, seed {run.seed}",
        "packages: " + ", ".join(f"{k} {v}" for k, v in sorted(run.packages.items())),
    ]
    if run.command:
        items.append(f"command: `{run.command}`")
    for r in run.rungs:
        if r.demo_ids:
            items.append(f"{r.name} demonstrations: " + ", ".join(f"`{d}`" for d in r.demo_ids))
    return Section("setup", "Setup", [Items(items)])


def _manifest(run: AssessmentRun) -> Section:
    """Everything needed to reproduce the run, in full (the Markdown's Setup abbreviates it)."""
    rows = [["run", run.run_id], ["created", run.created], ["status", run.status],
            ["command", f"`{run.command}`" if run.command else "(not recorded)"], ["task file", f"`{run.task_path}`"],
            ["ladder", run.ladder_version], ["seed", str(run.seed)]]
    if run.limit:
        rows.append(["--limit", str(run.limit)])
    for split, digest in run.data_hashes.items():
        rows.append([f"data: {split}", f"{run.data_sizes.get(split, '?')} examples, sha256 `{digest}`"])
    for name, value in run.model.model_dump(exclude_none=True).items():
        rows.append([f"model: {name}", f"`{value}`" if "sha256" in name or name == "path" else str(value)])
    rows += [[f"package: {k}", v] for k, v in sorted(run.packages.items())]
    for r in run.rungs:
        settings = ", ".join(f"{k}={v}" for k, v in r.settings.items()) or "defaults"
        rows.append([f"rung: {r.name} ({r.type})", settings])
        if r.training is not None:
            rows.append([f"rung: {r.name} artifact", f"`{r.training.artifact_sha256}` ({r.training.artifact_bytes:,} bytes"
                         + (", reused from an earlier identical training" if r.training.reused else "") + ")"])
    return Section("manifest", "Reproducibility manifest", [Table(["what", "value"], rows)], in_markdown=False)
