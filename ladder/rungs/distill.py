"""The distill rung: context distillation (sequence-level knowledge distillation, Kim & Rush 2016; Snell et
al. 2022). A teacher, a lower prompt rung of the task (its demonstrations or retrieved passages in every
prompt), answers the train inputs and data.unlabeled; a LoRA student learns those answers on the zero-shot
prompt, with the shared loop's supervised loss. Calls then pay for the zero-shot prompt only.

- The teacher's answers come through ``BuildContext.answers``: the assessment's own backend and result
  cache (finished batches are kept, so an interrupted teacher resumes), or another model
  (``teacher_model``, ``teacher_url``) answering with the teacher rung's prompt.
- ``filter: correct`` keeps, where a target exists, only the answers the task's target metric scores 1.0;
  unlabeled inputs keep every answer (nothing to check them against).
- The record keeps the teacher's cost (its generation time, its prompt tokens per call) beside the
  student's training; the cost model counts both as adaptation, and the student's per-call tokens are
  measured by its own evaluation, so the break-even volume against the teacher rung follows.
"""

from __future__ import annotations

from ladder.errors import LadderError
from ladder.record import TeacherRecord
from ladder.rungs.base import BuildContext, Candidate
from ladder.rungs.finetune import encode_supervised, finetune
from ladder.spec import DistillRungSpec, rung_name


def teacher_answers(rung: DistillRungSpec, ctx: BuildContext):
    """The teacher's outputs on train + unlabeled inputs, and the (example, answer) pairs kept to learn."""
    from ladder.metrics import scorers

    spec = ctx.spec
    assert rung.teacher is not None  # the spec resolves the default
    teacher = ctx.candidate(rung.teacher)
    inputs = ctx.train + ctx.unlabeled
    outputs = ctx.answers(teacher, inputs, rung.teacher_model, rung.teacher_url)
    scorer = scorers(spec)[spec.target.metric]
    kept, correct = [], 0
    for ex, out in zip(inputs, outputs.outputs):
        labelled = ex.split != "unlabeled"
        right = labelled and scorer.score(out.output, ex.references) >= 1.0
        correct += right
        if rung.filter == "none" or not labelled or right:
            kept.append((ex, out.output))
    if not kept:
        raise LadderError(
            f"rungs[{rung_name(rung)}]: the teacher {rung.teacher!r} answered none of the "
            f"{len(ctx.train)} train inputs correctly, so filter: correct keeps nothing to learn "
            "(give data.unlabeled inputs, a better teacher, or filter: none)"
        )
    n = len(outputs.outputs)
    info = TeacherRecord(
        rung=rung.teacher,
        model=rung.teacher_model,
        url=rung.teacher_url,
        inputs=n,
        unlabeled=len(ctx.unlabeled),
        kept=len(kept),
        train_correct=correct / len(ctx.train) if ctx.train else None,
        seconds=outputs.wall_s + outputs.selection_s,
        prompt_tokens_per_call=sum(o.prompt_tokens for o in outputs.outputs) / max(1, n),
    )
    return kept, info


def build_distill(rung: DistillRungSpec, ctx: BuildContext) -> Candidate:
    kept, info = teacher_answers(rung, ctx)
    data = encode_supervised(rung, ctx, kept)
    data.data_s = info.seconds
    data.teacher = info
    return finetune(rung, ctx, data)
