from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
from conftest import LABELS, TINY_CORPUS, rag_spec

from ladder.data.splits import load_task_data
from ladder.errors import LadderError
from ladder.run.context import build_context
from ladder.rungs import RUNGS, BuildContext, build_candidate
from ladder.spec import RUNG_SPECS, load_task


def _ctx(path):
    task = load_task(path)
    data = load_task_data(task)
    ctx = BuildContext(spec=task.spec, train=data.splits.train, dev=data.splits.dev, corpus=data.corpus)
    return task.spec, ctx


TRAINING = {"lora", "full", "continued"}  # trained for real in test_training.py, test_continued.py (transformers)
LEARNING_FROM_RUNGS = {"distill", "preference"}  # they need another rung's answers: tests/test_distill_preference.py


@pytest.mark.parametrize("kind", sorted(TRAINING))
def test_training_rungs_load_the_task_model_through_the_context(kind, make_task):
    """A trained rung asks the context for the task's base model (the run supplies the loader): a model that is not
    there is the one-line error about the task's `model` field."""
    spec = rag_spec()
    spec["rungs"] = [{"type": kind}]
    spec["model"] = "no-such-model-folder"
    task = load_task(make_task(spec, corpus=TINY_CORPUS))
    data = load_task_data(task)
    ctx = build_context(task, data.splits.train, data.splits.dev, **data.for_rungs())
    with pytest.raises(LadderError, match="model: 'no-such-model-folder' is neither a known alias"):
        build_candidate(task.spec.rungs[0], ctx)
    # nothing loads models here
    bare = BuildContext(spec=task.spec, train=data.splits.train, dev=data.splits.dev, corpus=data.corpus)
    with pytest.raises(LadderError, match="needs the task's base model"):
        build_candidate(task.spec.rungs[0], bare)


def test_the_build_context_holds_no_backend():
    """What a rung sees: no field of the context is a backend (or a view of one)."""
    fields = {f.name: str(f.type) for f in dataclasses.fields(BuildContext)}
    assert "spec" in fields and "measure" in fields and "load_base" in fields
    assert [name for name, kind in fields.items() if "backend" in name.lower() or "Backend" in kind] == []


@pytest.mark.parametrize("kind", sorted(set(RUNGS.names()) - TRAINING - LEARNING_FROM_RUNGS))
def test_every_rung_builds_a_candidate_without_held_out_data(kind, make_task):
    assert set(RUNGS.names()) == set(RUNG_SPECS)
    spec, ctx = _ctx(make_task(rag_spec(), corpus=TINY_CORPUS))
    rung = next(r for r in spec.rungs if r.type == kind)
    candidate = build_candidate(rung, ctx)
    text = "is it raining {input} {0}"
    selection = candidate.select([text])[0]
    messages = candidate.messages(text, selection)
    assert messages[0] == {"role": "system", "content": spec.prompt.instruction}
    assert messages[-1]["role"] == "user"
    assert messages[-1]["content"].endswith("Text: is it raining {input} {0}")  # braces in data are safe
    train_ids = {e.id for e in ctx.train}
    assert all(d.id in train_ids for d in selection.demos)
    if kind == "rag":
        assert selection.retrieved and selection.retrieved[0] == "weather#0"
        assert messages[-1]["content"].startswith("Context:\n[1] Rain, sun")


def test_fewshot_stratified_is_balanced_and_turns_alternate(make_task):
    spec, ctx = _ctx(make_task({"rungs": [{"type": "fewshot", "k": 6, "selection": "stratified"}]}))
    candidate = build_candidate(spec.rungs[0], ctx)
    assert Counter(d.target for d in candidate.demos) == Counter({label: 2 for label in LABELS})
    roles = [m["role"] for m in candidate.messages("x")]
    assert roles == ["system"] + ["user", "assistant"] * 6 + ["user"]


def test_each_rung_has_its_own_random_stream(make_task):
    two = make_task(
        {
            "rungs": [
                {"type": "fewshot", "name": "fs-a", "k": 4, "selection": "random"},
                {"type": "fewshot", "name": "fs-b", "k": 4, "selection": "random"},
            ]
        }
    )
    one = make_task({"rungs": [{"type": "fewshot", "name": "fs-b", "k": 4, "selection": "random"}]}, folder="one")
    spec2, ctx2 = _ctx(two)
    spec1, ctx1 = _ctx(one)
    b_alone = build_candidate(spec1.rungs[0], ctx1).demos
    b_with_a = build_candidate(spec2.rungs[1], ctx2).demos
    a = build_candidate(spec2.rungs[0], ctx2).demos
    assert b_alone == b_with_a  # running a subset of rungs never changes a rung's demonstrations
    assert a != b_with_a
    assert build_candidate(spec2.rungs[0], ctx2).demos == a  # deterministic
