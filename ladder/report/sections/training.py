"""Trained rungs: training runs, certificates, what a rung learnt from, training curves."""

from __future__ import annotations

from ladder.decide.cost import duration
from ladder.record import AssessmentRun, PairsRecord, RungResult
from ladder.report.document import (
    Block,
    Figure,
    Paragraph,
    Section,
    Table,
)
from ladder.report.sections.cells import dev_eval, seconds


def training(run: AssessmentRun) -> Section:
    section = Section("training", "Training")
    trained = [r for r in run.rungs if r.training is not None]
    if not trained:
        return section
    metric = run.target.metric
    rows = []
    for r in trained:
        t = r.training
        assert t is not None
        rows.append(
            [
                r.name,
                str(t.steps),
                f"{t.epochs:.2f}",
                seconds(t.wall_s),
                str(t.tokens_seen),
                f"{t.tokens_per_s:.1f}",
                f"{t.rss_start_mb:.0f} → {t.rss_peak_mb:.0f} MB",
                str(t.best_step),
                dev_eval(t.dev_evals[-1] if t.dev_evals else None, metric),
                f"{t.artifact_bytes / 2**20:.1f} MB",
            ]
        )
    section.blocks += [
        Table(
            [
                "rung",
                "steps",
                "epochs",
                "wall",
                "real tokens",
                "tokens/s",
                "memory (start → peak)",
                "best step",
                "last dev evaluation",
                "artifact",
            ],
            rows,
        ),
        Paragraph(
            "Real tokens exclude padding; tokens/s includes the dev evaluations; memory is the "
            "process's resident set, sampled during training."
        ),
    ]
    section.blocks += _how_trained(trained)
    section.blocks += _learnt_from(run, trained)
    section.blocks += _certificates(trained)
    return section


def _how_trained(trained: list[RungResult]) -> list[Block]:
    """What is not in the table, said only where it applies: a rung that learnt raw text (continued pretraining),
    a lora rung that started from another's adapter, a training shared by several processes."""
    notes = []
    for r in trained:
        t = r.training
        assert t is not None
        if t.objective == "next_token":
            notes.append(
                f"{r.name} learnt next-token prediction over the domain's text ({r.settings.get('source', 'text')}), "
                "no questions and no targets; its dev evaluations are the zero-shot answer loss on dev."
            )
        if r.type == "lora" and r.settings.get("init"):
            notes.append(f"{r.name} started from the adapter of {r.settings['init']}.")
        if t.processes > 1:
            notes.append(
                f"{r.name} trained on {t.processes} processes ({t.strategy}); its memory figures are rank 0's."
            )
    return [Paragraph(" ".join(notes))] if notes else []


def _certificates(trained: list[RungResult]) -> list[Block]:
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
    return [
        Table(["rung", "served by", "check", "verdict", "what it showed"], rows),
        Paragraph(
            "Adapter certificate, on a probe of dev inputs through the backend that served the rung: the "
            "artifact must change what is served, match the transformers/PEFT reference (vllm, openai) and be "
            "served with the prompt format it trained with. "
            + (
                f"Not recommended, and refused by `ladder gate`: {', '.join(failed)}."
                if failed
                else "Every trained rung passed."
            )
        ),
    ]


def _learnt_from(run: AssessmentRun, trained: list[RungResult]) -> list[Block]:
    """Where a distill rung's answers and a preference rung's pairs came from, and what making them cost."""
    blocks: list[Block] = []
    by_name = {r.name: r for r in run.rungs}
    rows = []
    for r in trained:
        teacher = r.training.teacher if r.training else None
        if teacher is None:
            continue
        measured = by_name.get(teacher.rung)
        before = measured.splits["dev"].prompt_tokens_per_call if measured else teacher.prompt_tokens_per_call
        after = r.splits["dev"].prompt_tokens_per_call
        source = (
            teacher.rung
            + (f" on {teacher.model}" if teacher.model else "")
            + (f" at {teacher.url}" if teacher.url else "")
        )
        correct = f"{teacher.train_correct:.2f}" if teacher.train_correct is not None else "—"
        rows.append(
            [
                r.name,
                source,
                f"{teacher.inputs} ({teacher.unlabeled} unlabeled)",
                str(teacher.kept),
                correct,
                duration(teacher.seconds),
                f"{before:.0f} → {after:.0f}",
            ]
        )
    if rows:
        blocks += [
            Table(
                [
                    "rung",
                    "teacher",
                    "inputs answered",
                    "answers learnt",
                    "teacher correct on train",
                    "teacher time",
                    "prompt tokens per call (teacher → student)",
                ],
                rows,
            ),
            Paragraph(
                "A distill rung learns its teacher's answers on the zero-shot prompt; the teacher's time is part "
                "of its adaptation cost, and the break-even volume against the teacher is in the cost table."
            ),
        ]
    rows = []
    for r in trained:
        training = r.training
        pairs = training.pairs if training else None
        if training is None or pairs is None:
            continue
        last = training.dev_evals[-1] if training.dev_evals else None
        ratio = (
            f"{pairs.dev_reference_logratio:.2f} → {last.chosen_logratio:.2f}"
            if pairs.dev_reference_logratio is not None and last is not None and last.chosen_logratio is not None
            else "—"
        )
        rows.append(
            [
                r.name,
                pairs.source,
                pairs.init or "—",
                str(pairs.train_pairs),
                str(pairs.dev_pairs),
                str(pairs.skipped),
                f"{pairs.beta:g} / {pairs.sft_weight:g}",
                ratio,
                duration(pairs.seconds),
            ]
        )
    if rows:
        blocks += [
            Table(
                [
                    "rung",
                    "pairs from",
                    "started from",
                    "train pairs",
                    "dev pairs",
                    "inputs without a pair",
                    "beta / sft weight",
                    "dev log p(chosen) − log p(rejected), reference → trained",
                    "making pairs",
                ],
                rows,
            ),
            Paragraph(
                "Reward accuracy and margins on dev pairs show the preference was learnt, not that the task "
                "improved: the task metric above decides."
            ),
        ]
    for r in trained:
        pairs = r.training.pairs if r.training else None
        if pairs is not None and pairs.source == "judge":
            blocks += _judged_pairs(r.name, pairs)
    return blocks


def _judged_pairs(name: str, pairs: PairsRecord) -> list[Block]:
    """RLAIF: who judged, by what, and the pairs it made (the first three)."""
    principles = "; ".join(p.rstrip(".") for p in pairs.principles)
    agree = pairs.judge_vs_metric
    against = (
        f" Against the target metric on every dev sample the judge gave the same verdict for "
        f"{agree.accuracy.mean:.0%}, Spearman ρ {agree.spearman.mean:+.2f} "
        f"[{agree.spearman.low:+.2f}, {agree.spearman.high:+.2f}]."
        if agree is not None
        else ""
    )
    longer = (
        f" The chosen answer is the longer in {pairs.chosen_longer:.0%} of pairs."
        if pairs.chosen_longer is not None
        else ""
    )
    text = (
        f"**{name}** learnt from a judge's preferences (RLAIF): {pairs.samples} answers per train input sampled at "
        f"temperature {pairs.temperature:g} from the starting model, each graded alone by {pairs.judge} against "
        f"the principles ({principles}); the best against the worst where their scores differ by at least "
        f"{pairs.margin:g}.{longer}{against}"
    )

    def cell(text: str, n: int) -> str:
        return " ".join(text.split())[:n]  # one line in every format

    rows = [
        [
            cell(p.input, 80),
            cell(p.chosen, 100),
            f"{p.chosen_score:.2f}",
            cell(p.rejected, 100),
            f"{p.rejected_score:.2f}",
        ]
        for p in pairs.judged[:3]
    ]
    return [
        Paragraph(text),
        Table(["input", "chosen", "score", "rejected", "score"], rows),
    ]


def training_curves(run: AssessmentRun) -> Section:
    section = Section("curves", "Training curves", in_markdown=False)
    metric = run.target.metric
    for r in run.rungs:
        t = r.training
        if t is None:
            continue
        loss_at = {p.step: p.loss for p in t.curve}
        losses = [p.loss for p in t.curve]
        summary = (
            f"Training loss over {len(losses)} steps: first {losses[0]:.4f}, last {losses[-1]:.4f}, "
            f"lowest {min(losses):.4f}."
            if losses
            else "No training step recorded."
        )
        section.blocks.append(
            Figure(
                "training",
                {
                    "rung": r.name,
                    "metric": metric,
                    "best_step": t.best_step,
                    "steps": [p.step for p in t.curve],
                    "loss": losses,
                    "dev_steps": [e.step for e in t.dev_evals],
                    "dev_loss": [e.dev_loss for e in t.dev_evals],
                    "dev_metric": [e.dev_metric for e in t.dev_evals],
                },
                f"{r.name}: training loss per step, dev loss (and dev {metric} where it chose the checkpoint) at each "
                f"evaluation; the kept checkpoint is step {t.best_step}. {summary} The dev evaluations are the table below.",
            )
        )
        if t.dev_evals:
            section.blocks.append(
                Table(
                    ["step", "train loss", "dev loss", f"dev {metric}"],
                    [
                        [
                            str(e.step),
                            f"{loss_at[e.step]:.4f}" if e.step in loss_at else "—",
                            f"{e.dev_loss:.4f}",
                            f"{e.dev_metric:.3f}" if e.dev_metric is not None else "—",
                        ]
                        for e in t.dev_evals
                    ],
                    frozenset(i for i, e in enumerate(t.dev_evals) if e.step == t.best_step),
                )
            )
    return section
