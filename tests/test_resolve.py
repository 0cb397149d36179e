"""ladder resolve: an inconclusive rung decided with the fewest further dev examples (beyond the run's --limit,
then data.reserve) by an anytime-valid confidence sequence; and the sequence's own guarantees."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import _rows, write_jsonl

from ladder.cli.main import main
from ladder.record import load_run
from ladder.scoring.sequential import decide_sequentially, first_decisions


def test_wrong_decisions_stay_below_alpha_under_peeking_after_every_example():
    """2,000 streams of 400 yes/no scores at a mean on the target: either decision is wrong, each side at most
    alpha/2 (Ville). A fixed-n Wilson interval re-checked after every example would be wrong far more often."""
    rng = np.random.default_rng(0)
    streams = (rng.random((2000, 400)) < 0.7).astype(float)
    verdict, _ = first_decisions(streams, 0.7, alpha=0.05)
    assert (verdict == 1).mean() <= 0.025 + 0.01 and (verdict == -1).mean() <= 0.025 + 0.01
    clear = (rng.random((2000, 400)) < 0.9).astype(float)
    verdict, used = first_decisions(clear, 0.7, alpha=0.05)
    assert (verdict == 1).mean() > 0.99 and np.median(used) < 100


def test_decide_sequentially_stops_at_the_first_exclusion():
    d = decide_sequentially([1.0] * 40, 0.6)
    assert d.verdict == "meets" and d.n < 40 and d.low > 0.6
    assert decide_sequentially([0.0] * 40, 0.6).verdict == "gap"
    u = decide_sequentially([1.0, 0.0] * 10, 0.5)
    assert u.verdict == "undecided" and u.n == 20 and u.low < 0.5 < u.high


def _right(prompt: str) -> str:
    tail = prompt.rsplit("Text: ", 1)[-1]
    return next(
        label for word, label in {"raining": "weather", "song": "music", "table": "booking"}.items() if word in tail
    )


def test_resolve_walks_further_dev_then_reserve_examples_until_it_decides(make_task, tmp_path, capsys, monkeypatch):
    """The prompt rung answers every example right: 6 measured dev examples (--limit 6) cannot show 1.0 above 0.7;
    resolve adds the dev examples the limit left out, then data.reserve, and stops once the sequence decides."""
    reserve = _rows("reserve", 60)
    folder = tmp_path / "task"
    folder.mkdir()
    write_jsonl(folder / "reserve.jsonl", reserve)
    data = {
        "train": "train.jsonl",
        "dev": "dev.jsonl",
        "test": "test.jsonl",
        "input_field": "text",
        "target_field": "label",
        "id_field": "id",
        "reserve": "reserve.jsonl",
    }
    path = make_task(
        {"data": data, "target": {"metric": "accuracy", "threshold": 0.7}, "rungs": [{"type": "prompt"}]},
        dev=_rows("dev", 12, 1),
    )
    from ladder.backends.scripted import ScriptedBackend
    from ladder.run.assess import assess
    from ladder.spec import load_task

    run, out = assess(load_task(path), backend=ScriptedBackend(responder=_right), limit=6, out_dir=tmp_path / "run")
    assert run.rungs[0].decision.status == "inconclusive"
    import ladder.backends as backends

    # the run's backend made again by name: the scripted one, answering as before
    monkeypatch.setattr(backends, "create_backend", lambda name, *a, **k: ScriptedBackend(responder=_right))
    code = main(["resolve", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and printed.startswith("prompt meets the target 0.700")
    (resolution,) = load_run(out).resolutions
    assert resolution.verdict == "meets" and resolution.measured == 6 and resolution.low > 0.7
    assert resolution.n == 6 + len(resolution.scores) and resolution.sources["dev beyond --limit"] == 6
    assert resolution.sources.get("data.reserve", 0) == resolution.n - 12 and resolution.n < 6 + 6 + 60
    assert all(v == 1.0 for v in resolution.scores.values())
    assert load_run(out).rungs == run.rungs  # nothing the run measured changed


def test_resolve_with_nothing_further_is_one_line_and_exit_2(make_task, tmp_path, capsys):
    from ladder.backends.scripted import ScriptedBackend
    from ladder.run.assess import assess
    from ladder.spec import load_task

    _, out = assess(load_task(make_task()), backend=ScriptedBackend(responder=_right), out_dir=tmp_path / "run")
    assert main(["resolve", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no further dev examples" in err and "data.reserve" in err
    assert main(["resolve", str(out), "--alpha", "1.5"]) == 2
    assert "--alpha: must be between 0 and 1" in capsys.readouterr().err
    assert main(["resolve", str(out), "--rung", "rag"]) == 2
    assert "--rung: 'rag' was not measured" in capsys.readouterr().err


def test_a_reserve_row_that_repeats_a_split_input_is_refused(make_task, tmp_path):
    from ladder.data.splits import load_task_data
    from ladder.errors import ValidationFailed
    from ladder.spec import load_task

    folder = tmp_path / "task"
    folder.mkdir()
    write_jsonl(folder / "reserve.jsonl", [_rows("test", 9, 2)[0] | {"id": "r-0"}])
    data = {
        "train": "train.jsonl",
        "dev": "dev.jsonl",
        "test": "test.jsonl",
        "input_field": "text",
        "target_field": "label",
        "id_field": "id",
        "reserve": "reserve.jsonl",
    }
    with pytest.raises(ValidationFailed) as info:
        load_task_data(load_task(make_task({"data": data})))
    assert any("reserve.jsonl:1: input is also at" in p for p in info.value.problems)


def test_policy_sequential_stops_dev_as_soon_as_the_sequence_decides(make_task, tmp_path):
    """A clear-cut rung decides on the first chunks of dev; test is evaluated whole; rungs that stopped at
    different dev n are compared on the examples both measured."""
    from ladder.backends.scripted import ScriptedBackend
    from ladder.run.assess import assess
    from ladder.spec import load_task

    path = make_task(
        {"policy": {"sequential": True}, "target": {"metric": "accuracy", "threshold": 0.6}},
        dev=_rows("dev", 80, 1),
        test=_rows("test", 30, 2),
    )
    run, _ = assess(
        load_task(path), backend=ScriptedBackend(responder=_right), out_dir=tmp_path / "run", exhaustive=True
    )
    prompt, fewshot = run.rungs
    assert prompt.decision.status == "meets" and "anytime-valid confidence sequence" in prompt.decision.reason
    assert prompt.splits["dev"].n in (16, 32) and prompt.splits["test"].n == 30
    assert fewshot.splits["dev"].comparison("prompt", "accuracy").n == min(
        prompt.splits["dev"].n, fewshot.splits["dev"].n
    )
    wrong = assess(
        load_task(path),
        backend=ScriptedBackend(responder=lambda p: "none"),
        out_dir=tmp_path / "gap",
        use_cache=False,
        rungs=["prompt"],
    )[0].rungs[0]
    assert wrong.decision.status == "gap" and wrong.splits["dev"].n < 80  # a third right: a gap to 0.6 within two looks
