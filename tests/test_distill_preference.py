"""The distill and preference rungs on the real bundled model, small slices of SNIPS: each loss decreases,
the distilled student agrees with its teacher on train more than the base model does, DPO raises the
chosen-vs-rejected log-ratio on held-out pairs, an interrupted preference training resumes."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import ROOT

from ladder.backends.hf.transformers import TransformersBackend
from ladder.data.splits import load_task_data
from ladder.record import TrainingRecord
from ladder.run.cache import ResultCache
from ladder.run.context import build_context
from ladder.run.evaluate import run_eval
from ladder.rungs import build_candidate
from ladder.rungs.finetune import zero_shot
from ladder.spec import load_task

pytestmark = pytest.mark.model
SNIPS = ROOT / "tasks" / "snips-intent" / "task.yaml"
TRAIN = dict(
    max_steps=8, batch_size=8, eval_every=4, checkpoint_every=2, max_seq_len=128, learning_rate=1e-3, warmup_ratio=0.0
)


@pytest.fixture(scope="module")
def backend():
    return TransformersBackend.from_spec("smollm2-135m-instruct", batch_size=8)


def _context(backend, tmp_path, rungs: list[dict], n_train: int = 32, **files: list[dict]):
    """SNIPS with the given rungs, its first n_train train and 16 dev examples; other rungs' answers come
    through the assessment's own answerer (the transformers backend, a result cache in tmp_path). ``files``:
    data.unlabeled / data.preferences rows, written beside the task file."""
    import json

    import yaml

    raw = yaml.safe_load(SNIPS.read_text())
    raw["rungs"] = rungs
    for key in ("train", "dev", "test"):
        raw["data"][key] = str(SNIPS.parent / raw["data"][key])
    for key, rows in files.items():
        (tmp_path / f"{key}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        raw["data"][key] = f"{key}.jsonl"
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(raw))
    task = load_task(path)
    data = load_task_data(task)
    formatter = backend.formatter("chat")
    cache = ResultCache(tmp_path / "cache")
    ctx = build_context(
        task,
        data.splits.train[:n_train],
        data.splits.dev[:16],
        backend,
        cache,
        work_dir=tmp_path / "run",
        unlabeled=data.unlabeled,
        preferences=data.preferences,
    )
    return task.spec, ctx, formatter


def _predictions(backend, candidate, examples, formatter, spec, tmp_path) -> list[str]:
    served = backend.serving(candidate.artifact)
    return [
        o.output
        for o in run_eval(candidate, examples, served, formatter, spec, ResultCache(tmp_path, enabled=False)).outputs
    ]


def test_distilled_student_agrees_with_its_teacher_more_than_the_base_model(backend, tmp_path):
    spec, ctx, formatter = _context(
        backend,
        tmp_path,
        [
            {"type": "prompt"},
            {"type": "fewshot", "k": 10, "selection": "random"},
            {"type": "distill", "r": 16, "alpha": 32, "dropout": 0.0, "filter": "none", "train": TRAIN},
        ],
    )
    rung = spec.rungs[2]
    assert rung.teacher == "fewshot"  # the default: the last prompt rung before it
    candidate = build_candidate(rung, ctx)
    t = TrainingRecord.model_validate(candidate.training)
    losses = [p.loss for p in t.curve]
    assert len(losses) == 8 and sum(losses[-2:]) < sum(losses[:2])
    teacher = t.teacher
    assert teacher is not None and teacher.rung == "fewshot" and teacher.inputs == teacher.kept == 32
    assert teacher.seconds > 0 and t.data_s == teacher.seconds and 0 <= teacher.train_correct <= 1
    teacher_answers = _predictions(backend, ctx.candidate("fewshot"), ctx.train, formatter, spec, tmp_path / "a")
    base = _predictions(backend, zero_shot(rung, spec), ctx.train, formatter, spec, tmp_path / "b")
    student = _predictions(backend, candidate, ctx.train, formatter, spec, tmp_path / "c")
    agree_base = sum(a == b for a, b in zip(base, teacher_answers))
    agree_student = sum(a == b for a, b in zip(student, teacher_answers))
    assert agree_student > agree_base, (agree_student, agree_base)
    # the student's prompt is the zero-shot one: fewer tokens per call than the teacher's
    student_tokens = (
        run_eval(
            candidate,
            ctx.dev[:4],
            backend.serving(candidate.artifact),
            formatter,
            spec,
            ResultCache(tmp_path / "d", enabled=False),
        )
        .outputs[0]
        .prompt_tokens
    )
    assert student_tokens * 3 < teacher.prompt_tokens_per_call


def test_distill_filter_keeps_only_correct_teacher_answers_and_every_unlabeled_one(backend, tmp_path):
    unlabeled = [
        {"text": text}
        for text in (
            "play some jazz by miles davis",
            "will it snow in oslo tomorrow",
            "book a table for two at noon",
            "rate this novel four stars",
        )
    ]
    spec, ctx, _ = _context(
        backend,
        tmp_path,
        [
            {"type": "fewshot", "k": 10, "selection": "random"},
            {"type": "distill", "dropout": 0.0, "filter": "correct", "train": {**TRAIN, "max_steps": 1}},
        ],
        n_train=16,
        unlabeled=unlabeled,
    )
    t = TrainingRecord.model_validate(build_candidate(spec.rungs[1], ctx).training)
    assert t.teacher.inputs == 20 and t.teacher.unlabeled == 4
    assert t.teacher.kept == round(t.teacher.train_correct * 16) + 4 < 20 and t.train_examples == t.teacher.kept


def test_preference_pairs_from_data_preferences(backend, tmp_path):
    """User-given pairs replace the model's own mistakes; a seeded tenth of them is the dev set. Started from a lora
    rung's adapter, its adaptation includes making that adapter."""
    pairs = [
        {"text": f"play track {i} from my road trip mix", "chosen": "play_music", "rejected": "add_to_playlist"}
        for i in range(10)
    ]
    spec, ctx, _ = _context(
        backend,
        tmp_path,
        [
            {"type": "lora", "dropout": 0.0, "train": {**TRAIN, "max_steps": 1}},
            {"type": "preference", "init": "lora", "dropout": 0.0, "train": {**TRAIN, "max_steps": 1}},
        ],
        n_train=8,
        preferences=pairs,
    )
    assert spec.rungs[1].negatives_from is None  # nothing to answer: the pairs are given
    t = TrainingRecord.model_validate(build_candidate(spec.rungs[1], ctx).training)
    assert t.pairs.source == "data.preferences" and (t.pairs.train_pairs, t.pairs.dev_pairs) == (9, 1)
    assert t.steps == 1 and t.dev_evals[-1].reward_accuracy is not None
    lora = ctx.candidate("lora").training
    assert t.pairs.init == "lora" and t.data_s == pytest.approx(lora.wall_s + lora.data_s)  # the adapter it began from


def _interrupt_after(steps: int):
    def on_step(rung, state):
        if state.step >= steps:
            raise KeyboardInterrupt(f"stopped after step {state.step} (test)")

    return on_step


def test_dpo_raises_the_chosen_log_ratio_on_held_out_pairs_and_resumes(backend, tmp_path, monkeypatch):
    spec, ctx, _ = _context(
        backend,
        tmp_path,
        [
            {"type": "prompt"},
            {
                "type": "preference",
                "r": 16,
                "alpha": 32,
                "dropout": 0.0,
                "beta": 0.1,
                "train": {**TRAIN, "batch_size": 4},
            },
        ],
        n_train=16,
    )
    rung = spec.rungs[1]
    assert rung.negatives_from == "prompt"
    monkeypatch.setenv("LADDER_HOME", str(tmp_path / "home"))
    with pytest.raises(KeyboardInterrupt):
        build_candidate(rung, replace(ctx, on_train_step=_interrupt_after(2)))
    candidate = build_candidate(rung, ctx)
    t = TrainingRecord.model_validate(candidate.training)
    assert t.resumed_from_step == 2 and t.steps == 8 and t.objective == "preference"
    pairs = t.pairs
    # label outputs: the prompt rung's most likely wrong label is every example's rejected answer
    assert pairs.source == "prompt" and pairs.train_pairs == 16 and pairs.dev_pairs == 16 and pairs.skipped == 0
    losses = [p.loss for p in t.curve]
    assert sum(losses[-2:]) < sum(losses[:2])
    last = t.dev_evals[-1]
    assert last.chosen_logratio > pairs.dev_reference_logratio + 1.0, (
        last.chosen_logratio,
        pairs.dev_reference_logratio,
    )
    assert last.reward_accuracy > 0.5 and last.reward_margin > 0
    # the same training without the interruption: the same curve (the reference is recomputed on resume)
    monkeypatch.setenv("LADDER_HOME", str(tmp_path / "home-b"))
    straight = TrainingRecord.model_validate(build_candidate(rung, replace(ctx, work_dir=tmp_path / "run-b")).training)
    assert [p.loss for p in straight.curve] == pytest.approx(losses, abs=1e-3)


def test_a_teacher_model_answers_with_the_teacher_rungs_prompt(backend, tmp_path):
    """teacher_model: another model (here the bundled one by its local folder, served by a transformers backend
    the answerer makes and closes) answers with the teacher rung's prompt; the record names it."""
    from ladder.backends.hf.model import resolve_model

    folder = str(resolve_model("smollm2-135m-instruct").path)
    spec, ctx, _ = _context(
        backend,
        tmp_path,
        [
            {"type": "fewshot", "k": 4, "selection": "random"},
            {"type": "distill", "dropout": 0.0, "teacher_model": folder, "train": {**TRAIN, "max_steps": 1}},
        ],
        n_train=8,
    )
    t = TrainingRecord.model_validate(build_candidate(spec.rungs[1], ctx).training)
    assert t.teacher.model == folder and t.teacher.rung == "fewshot" and t.teacher.inputs == t.teacher.kept == 8
    assert t.teacher.prompt_tokens_per_call > 100  # the 4-shot prompt, rendered by the teacher's own tokenizer


def test_preference_pairs_from_a_judge_rlaif(backend, tmp_path):
    """pairs_from judge: 3 sampled answers per train input from the base model, graded by SmolLM2 as the judge
    against written principles; (best, worst) kept where the judge separates them; DPO trains on them; the record
    keeps the pairs, the judge and its agreement with the target metric (accuracy) on the dev samples."""
    import yaml

    raw = yaml.safe_load(SNIPS.read_text())
    judge = {"rubric": "The answer is the intent label of the request.", "scale": "pass_fail"}
    raw["metrics"] = [*raw["metrics"], {"metric": "judge", "name": "judged", "options": judge}]
    principles = ["Answer with one intent label that fits the request.", "Say nothing but the label."]
    rung = {
        "type": "preference",
        "pairs_from": "judge",
        "principles": principles,
        "samples": 3,
        "temperature": 1.0,
        "margin": 0.02,
        "dropout": 0.0,
        "train": {**TRAIN, "max_steps": 2},
    }
    for key in ("train", "dev", "test"):
        raw["data"][key] = str(SNIPS.parent / raw["data"][key])
    raw["rungs"] = [rung]
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(raw))
    task = load_task(path)
    spec = task.spec
    assert spec.rungs[0].judge == "judged"  # the task's judge metric, by default
    data = load_task_data(task)
    ctx = build_context(
        task, data.splits.train[:8], data.splits.dev[:8], backend, ResultCache(tmp_path / "cache"), work_dir=tmp_path
    )
    candidate = build_candidate(spec.rungs[0], ctx)
    t = TrainingRecord.model_validate(candidate.training)
    pairs = t.pairs
    assert pairs.source == "judge" and pairs.samples == 3 and pairs.principles == principles
    assert pairs.judge.startswith("SmolLM2") or "smol" in pairs.judge.lower()
    assert pairs.train_pairs == len(pairs.judged) > 0 and pairs.train_pairs + pairs.skipped == 8
    for pair in pairs.judged:
        assert pair.chosen_score - pair.rejected_score >= 0.02 and pair.chosen != pair.rejected
    assert pairs.chosen_longer is not None and 0 <= pairs.chosen_longer <= 1
    agree = pairs.judge_vs_metric
    assert agree is not None and agree.n == 8 * 3  # every dev sample: the judge's score against accuracy
    assert t.objective == "preference" and t.steps == 2 and candidate.artifact is not None
