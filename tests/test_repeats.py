"""assess --repeats K: every rung evaluated K times, the cache bypassed after the first (a repeat served from the
cache is not a repeat), other batches and sampling seeds; the record keeps every repeat, each split says how many
examples changed, and an example's score is its mean over the repeats (intervals and gates resample examples)."""

from __future__ import annotations

import random

from conftest import LABELS

from ladder.backends.scripted import ScriptedBackend
from ladder.cli.main import main
from ladder.record import load_run
from ladder.run.assess import assess
from ladder.spec import load_task


def _sampler(prompt: str, rng: random.Random) -> str:
    """Right on 'place dev 0' and 'place test 0..2' always; elsewhere a coin flip per sample."""
    tail = prompt.rsplit("Text: ", 1)[-1]
    right = next(
        label for word, label in {"raining": "weather", "song": "music", "table": "booking"}.items() if word in tail
    )
    steady = any(f"place {s} {i}<" in tail for s, i in (("dev", 0), ("test", 0), ("test", 1), ("test", 2)))
    return right if steady or rng.random() < 0.5 else next(x for x in LABELS if x != right)


def _task(make_task):
    return load_task(
        make_task(
            {
                "generation": {"label_scoring": "generate", "temperature": 0.7, "max_new_tokens": 4},
                "policy": {"confidence": "point"},
                "rungs": [{"type": "prompt"}],
            }
        )
    )


def test_repeats_bypass_the_cache_keep_every_answer_and_report_flakiness(make_task, tmp_path):
    task = _task(make_task)
    backend = ScriptedBackend(sampler=_sampler)
    run, _ = assess(task, backend=backend, out_dir=tmp_path / "r", repeats=4, exhaustive=True)
    assert run.repeats == 4
    test = [e for e in run.rungs[0].examples if e.split == "test"]
    assert all(len(e.repeat_outputs) == 3 and len(e.repeat_scores) == 3 for e in test)
    for e in test:  # the score is the mean of the four repeats
        assert 0.0 <= e.scores["accuracy"] <= 1.0
        assert e.scores["accuracy"] * 4 == round(e.scores["accuracy"] * 4)
    steady = {f"test-{i}" for i in range(3)}
    assert all(e.scores["accuracy"] == 1.0 and set(e.repeat_outputs) == {e.output} for e in test if e.id in steady)
    split = run.rungs[0].splits["test"]
    assert split.repeats == 4 and 0.3 < split.flaky["accuracy"] <= 6 / 9
    assert split.metrics["accuracy"].method == "bootstrap"  # means over repeats are not yes/no scores
    # a second run: the first repeat comes from the cache, the other three are computed again
    calls = backend.calls["generate"]
    again, _ = assess(task, backend=backend, out_dir=tmp_path / "again", repeats=4, exhaustive=True)
    assert again.rungs[0].splits["dev"].cached and backend.calls["generate"] - calls == 3 * (6 + 9)
    assert [e.output for e in again.rungs[0].examples] == [e.output for e in run.rungs[0].examples]
    assert [e.repeat_outputs for e in again.rungs[0].examples] == [e.repeat_outputs for e in run.rungs[0].examples]


def test_greedy_repeats_of_a_deterministic_backend_change_nothing(make_task, tmp_path, capsys):
    path = make_task({"policy": {"confidence": "point"}})
    assert main(["assess", str(path), "--backend", "scripted", "--repeats", "3", "--out", str(tmp_path / "g")]) == 0
    run = load_run(tmp_path / "g")
    assert all(s.repeats == 3 and s.flaky == {"accuracy": 0.0} for r in run.rungs for s in r.splits.values())
    assert "The noise floor (3 evaluations of every example)" in (tmp_path / "g" / "report.md").read_text()
    assert main(["assess", str(path), "--backend", "scripted", "--repeats", "0"]) == 2
    assert "--repeats: must be at least 1" in capsys.readouterr().err
