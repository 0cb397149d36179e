"""The continued rung (domain-adaptive pretraining) on the bundled model: it learns the domain's text with the
next-token objective on the one training loop, is evaluated zero-shot, and a lora rung starts from its adapter."""

from __future__ import annotations

import pytest
from conftest import TINY_CORPUS

from ladder.rungs.continued import text_blocks


def test_documents_are_joined_each_ended_and_cut_into_blocks():
    encode = lambda text: [len(word) for word in text.split()]  # noqa: E731
    blocks = text_blocks(["aa bbb", "c", "dddd ee f"], encode, end=0, block=3)
    assert blocks == [[2, 3, 0], [1, 0, 4], [2, 1, 0]]
    assert text_blocks(["aa bbb"], encode, end=0, block=2) == [[2, 3]]  # a last block of one token predicts nothing
    assert text_blocks([], encode, end=0, block=4) == []


@pytest.mark.model
def test_the_continued_rung_learns_the_corpus_and_a_lora_rung_starts_from_its_adapter(make_task, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from ladder.run.assess import assess
    from ladder.spec import load_task

    monkeypatch.setenv("LADDER_HOME", str(tmp_path / "home"))
    path = make_task(
        {
            "corpus": {"path": "corpus.jsonl"},
            "rungs": [
                {"type": "prompt"},
                {
                    "type": "continued",
                    "dropout": 0.0,
                    "train": {
                        "max_steps": 4,
                        "batch_size": 2,
                        "eval_every": 4,
                        "max_seq_len": 32,
                        "learning_rate": 1e-3,
                    },
                },
                {
                    "type": "lora",
                    "init": "continued",
                    "dropout": 0.0,
                    # a learning rate so small that the adapter stays the continued rung's
                    "train": {
                        "max_steps": 1,
                        "batch_size": 4,
                        "eval_every": 1,
                        "max_seq_len": 64,
                        "learning_rate": 1e-12,
                    },
                },
            ],
        },
        corpus=TINY_CORPUS,
    )
    run, folder = assess(load_task(path), out_dir=tmp_path / "run", limit=3, exhaustive=True)
    rungs = {r.name: r for r in run.rungs}
    continued = rungs["continued"].training
    assert continued.objective == "next_token" and continued.steps == 4
    losses = [p.loss for p in continued.curve]
    assert losses[-1] < losses[0]  # it learns the three documents' tokens
    assert continued.dev_evals and continued.dev_evals[-1].dev_loss > 0  # the zero-shot answer loss on dev
    assert rungs["continued"].certified() and len(rungs["continued"].examples) > 0  # served and evaluated
    assert run.spec.rungs[1].source == "corpus"  # auto, made explicit in the record
    lora = rungs["lora"].training
    assert lora.objective == "supervised" and rungs["lora"].settings["init"] == "continued"
    start = load_file(folder / "continued" / "adapter" / "adapter_model.safetensors")
    end = load_file(folder / "lora" / "adapter" / "adapter_model.safetensors")
    assert start.keys() == end.keys()
    assert max(float((start[k] - end[k]).abs().max()) for k in start) < 1e-6
