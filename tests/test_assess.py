"""The one loop, end to end, on the deterministic scripted backend."""

from __future__ import annotations

import json

import pytest
from conftest import LABELS, _rows

from ladder.backends.scripted import ScriptedBackend
from ladder.errors import LadderError
from ladder.record import SCHEMA_VERSION, load_run
from ladder.report import write_report
from ladder.run.assess import assess
from ladder.spec import load_task


def _always(label):
    return ScriptedBackend(responder=lambda prompt: label)


def _perfect():
    """Answers right whenever the input names its label's keyword (the conftest rows do)."""
    keywords = {"raining": "weather", "song": "music", "table": "booking"}

    def respond(prompt):
        tail = prompt.rsplit("Text: ", 1)[-1]
        return next((label for word, label in keywords.items() if word in tail), "weather")

    return ScriptedBackend(responder=respond)


def test_climbs_when_below_target_and_records_everything(make_task, tmp_path):
    task = load_task(make_task())
    run, out = assess(task, backend=_always("weather"), out_dir=tmp_path / "run")
    assert [r.name for r in run.rungs] == ["prompt", "fewshot"]
    assert run.rungs[0].decision.action == "climb" and not run.recommendation.met
    assert run.recommendation.next_rung == "lora"  # rag is passed over: the task has no corpus
    prompt = run.rungs[0]
    assert prompt.splits["dev"].n == 6 and prompt.splits["test"].n == 9
    acc = prompt.splits["test"].metrics["accuracy"]
    assert acc.mean == pytest.approx(3 / 9) and acc.low < acc.mean < acc.high and acc.method == "wilson"
    ex = prompt.examples[0]
    assert set(ex.label_logprobs) == set(LABELS) and ex.output == "weather" and ex.scores["accuracy"] in (0.0, 1.0)
    assert ex.label_logprob_means is not None and ex.prompt_tokens > 0 and ex.completion_tokens >= 1
    fewshot = run.rungs[1]
    assert len(fewshot.demo_ids) == 3 and fewshot.splits["test"].comparison("prompt", "accuracy").n == 9
    assert fewshot.splits["test"].prompt_tokens_per_call > prompt.splits["test"].prompt_tokens_per_call
    saved = load_run(out)
    assert saved == run and saved.status == "complete"
    assert saved.spec.generation.label_scoring == "loglik"  # the resolved spec, defaults filled in
    assert set(saved.data_hashes) == {"train", "dev", "test"} and saved.model.backend == "scripted"


def test_stops_at_first_rung_meeting_target_and_skips_the_rest(make_task, tmp_path):
    path = make_task({"policy": {"confidence": "point"}})
    run, _ = assess(load_task(path), backend=_perfect(), out_dir=tmp_path / "run")
    assert [r.name for r in run.rungs] == ["prompt"]
    assert run.skipped[0].name == "fewshot" and "prompt meets the target" in run.skipped[0].reason
    assert run.recommendation.met and run.recommendation.rung == "prompt"


def test_a_perfect_score_on_six_examples_is_inconclusive(make_task, tmp_path):
    """6/6 on dev: 1.000 [0.610, 1.000]. The interval reaches below 0.9, so it does not meet the target
    (confidence: lower_bound, the default); policy.inconclusive: report stops and says what n would do."""
    run, _ = assess(load_task(make_task()), backend=_perfect(), out_dir=tmp_path / "run")
    prompt = run.rungs[0]
    assert (prompt.decision.status, prompt.decision.action) == ("inconclusive", "stop")
    assert (
        prompt.decision.n_needed is not None
        and "the dev split (6 examples) cannot confirm it" in prompt.decision.reason
    )
    assert run.skipped[0].name == "fewshot" and "prompt is inconclusive" in run.skipped[0].reason
    assert not run.recommendation.met and "cannot confirm it: about 35 would" in run.recommendation.summary


def test_exhaustive_runs_every_rung_and_recommends_over_all(make_task, tmp_path):
    # priced by tokens, so the cost ranking does not hang on microsecond timings of the scripted backend
    cost = {"price_per_hour": 1.0, "price_per_1k_prompt_tokens": 0.01, "price_per_1k_completion_tokens": 0.01}
    path = make_task({"policy": {"confidence": "point"}, "cost": cost})
    run, _ = assess(load_task(path), backend=_perfect(), out_dir=tmp_path / "run", exhaustive=True)
    assert [r.name for r in run.rungs] == ["prompt", "fewshot"] and not run.skipped and run.exhaustive
    assert run.rungs[0].decision.action == "stop"  # what the climb would have done, recorded
    few = run.rungs[1].splits["dev"].comparison("prompt", "accuracy")
    assert few.delta == 0 and few.p_value == 1.0
    assert run.recommendation.rung == "prompt"  # equal quality: the cheaper one (shorter prompts)
    assert (
        run.rungs[1].cost.cost_per_1k_calls > run.rungs[0].cost.cost_per_1k_calls
        and run.rungs[0].cost.basis == "tokens"
    )
    assert "fewshot vs prompt: +0.000" in " ".join(run.recommendation.reasons)


def test_second_run_reuses_cached_outputs(make_task, tmp_path):
    task = load_task(make_task())
    backend = _always("music")
    first, _ = assess(task, backend=backend, out_dir=tmp_path / "a")
    calls = dict(backend.calls)
    second, _ = assess(task, backend=backend, out_dir=tmp_path / "b")
    assert backend.calls == calls  # no new model calls
    assert all(s.cached for r in second.rungs for s in r.splits.values())
    assert [r.splits["test"].metrics for r in second.rungs] == [r.splits["test"].metrics for r in first.rungs]
    assert second.rungs[0].splits["test"].wall_s == first.rungs[0].splits["test"].wall_s
    third, _ = assess(task, backend=backend, out_dir=tmp_path / "c", use_cache=False)
    assert backend.calls["score"] > calls["score"] and not third.rungs[0].splits["dev"].cached


def test_changed_prompt_misses_the_cache(make_task, tmp_path):
    backend = _always("music")
    assess(load_task(make_task()), backend=backend, out_dir=tmp_path / "a", rungs=["prompt"])
    before = backend.calls["score"]
    spec = {"prompt": {"instruction": "Another instruction.", "input_template": "Text: {input}"}}
    run, _ = assess(
        load_task(make_task(spec, folder="other")), backend=backend, out_dir=tmp_path / "b", rungs=["prompt"]
    )
    assert backend.calls["score"] > before and not run.rungs[0].splits["test"].cached


def test_rung_subset_limit_and_generation_mode(make_task, tmp_path):
    path = make_task({"generation": {"label_scoring": "generate", "max_new_tokens": 4}})
    run, _ = assess(load_task(path), backend=_perfect(), rungs=["fewshot"], limit=2, out_dir=tmp_path / "r")
    assert [r.name for r in run.rungs] == ["fewshot"] and run.limit == 2
    assert run.rungs[0].splits["test"].n == 2 and run.rungs[0].examples[0].label_logprobs is None


def test_unknown_rung_and_bad_limit(make_task, tmp_path):
    task = load_task(make_task())
    with pytest.raises(LadderError, match="did you mean 'fewshot'"):
        assess(task, backend=_perfect(), rungs=["fewshoot"], out_dir=tmp_path / "x")
    with pytest.raises(LadderError, match="--limit"):
        assess(task, backend=_perfect(), limit=0, out_dir=tmp_path / "y")


def test_a_failing_rung_keeps_the_rungs_already_measured(make_task, tmp_path):
    class Breaks(ScriptedBackend):
        def score_choices(self, requests):
            if any("Text: " in str(r.prompt) and "<|im_start|>assistant\nweather" in str(r.prompt) for r in requests):
                raise RuntimeError("backend died")
            return super().score_choices(requests)

    with pytest.raises(RuntimeError):
        assess(load_task(make_task()), backend=Breaks(responder=lambda p: "music"), out_dir=tmp_path / "run")
    saved = load_run(tmp_path / "run")
    assert saved.status == "failed" and "backend died" in saved.error
    assert [r.name for r in saved.rungs] == ["prompt"]  # measured before the failure, kept
    report = write_report(tmp_path / "run").read_text()
    assert "Run failed" in report and "| prompt |" in report


def test_report_renders_from_the_record_only(make_task, tmp_path):
    run, out = assess(load_task(make_task()), backend=_always("weather"), out_dir=tmp_path / "run")
    text = write_report(out).read_text()
    assert text.startswith("# ladder report: tiny")
    assert "**Recommendation:** no rung meets the target" in text
    assert "| prompt | " in text and "| fewshot | " in text and "Δ test vs previous" in text
    record = json.loads((out / "run.json").read_text())
    assert record["schema_version"] == SCHEMA_VERSION == 3


def _sampling_task(make_task, seed=0, samples=3, folder="task"):
    generation = {
        "label_scoring": "generate",
        "max_new_tokens": 4,
        "temperature": 0.7,
        "seed": seed,
        "samples": samples,
    }
    return make_task({"generation": generation}, folder=folder)


def _coin(prompt, rng):
    """Right two times in three, by the request's seeded generator."""
    truth = _perfect().responder(prompt)
    return truth if rng.random() < 2 / 3 else "booking" if truth != "booking" else "music"


def test_sampling_scores_each_example_by_the_mean_over_its_samples(make_task, tmp_path):
    path = _sampling_task(make_task)
    backend = ScriptedBackend(responder=lambda p: "weather", sampler=_coin)
    run, _ = assess(load_task(path), backend=backend, rungs=["prompt"], out_dir=tmp_path / "a", use_cache=False)
    examples = run.rungs[0].examples
    assert all(len(e.samples) == 3 and e.output == e.samples[0] for e in examples)
    assert all(e.scores["accuracy"] == pytest.approx(sum(_is_right(e, s) for s in e.samples) / 3) for e in examples)
    assert {round(e.scores["accuracy"] * 3) for e in examples} - {0, 1, 2, 3} == set()
    assert len({e.scores["accuracy"] for e in examples}) > 1  # the coin did vary
    assert run.rungs[0].splits["test"].metrics["accuracy"].method == "bootstrap"  # means are not yes/no
    again, _ = assess(load_task(path), backend=backend, rungs=["prompt"], out_dir=tmp_path / "b", use_cache=False)
    assert [e.samples for e in again.rungs[0].examples] == [e.samples for e in examples]  # same seed, same samples
    other, _ = assess(
        load_task(_sampling_task(make_task, seed=1, folder="s1")),
        backend=backend,
        rungs=["prompt"],
        out_dir=tmp_path / "c",
    )
    assert [e.samples for e in other.rungs[0].examples] != [e.samples for e in examples]
    assert other.rungs[0].splits["test"].cache_key != run.rungs[0].splits["test"].cache_key


def _is_right(example, answer):
    return float(answer == example.target)


def test_sampling_settings_are_validated(make_task):
    from ladder.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="samples: 3 needs temperature > 0"):
        load_task(make_task({"generation": {"label_scoring": "generate", "samples": 3}}))
    with pytest.raises(ValidationFailed, match="label_scoring 'loglik' scores every label without decoding"):
        load_task(make_task({"generation": {"temperature": 0.7}}, folder="b"))


def test_an_interrupted_split_resumes_from_its_finished_batches(make_task, tmp_path):
    """Each finished batch is saved as it completes; after a crash mid-split, a re-run computes only the
    batches that were missing and ends with the same record as an uninterrupted run."""
    path = make_task({"generation": {"batch_size": 2}}, test=_rows("test", 10, 2))

    class DiesAfter(ScriptedBackend):
        def __init__(self, batches, **kw):
            super().__init__(**kw)
            self.left = batches

        def score_choices(self, requests):
            if self.left == 0:
                raise RuntimeError("killed")
            self.left -= 1
            return super().score_choices(requests)

    respond = _perfect().responder
    dying = DiesAfter(3 + 2, responder=respond)  # prompt: 3 dev batches + 2 of 5 test batches, then dies
    with pytest.raises(RuntimeError, match="killed"):
        assess(load_task(path), backend=dying, rungs=["prompt"], out_dir=tmp_path / "a")
    resumed_backend = ScriptedBackend(responder=respond)
    resumed, _ = assess(load_task(path), backend=resumed_backend, rungs=["prompt"], out_dir=tmp_path / "b")
    # the 3 test batches left, 2 requests each (dev came whole), and the per-token probe the run makes once it
    # computes anything: a warm-up over the 6 dev prompts, then 3 times 3 and 6 of them
    from ladder.run.evaluate import PROBE_REPEATS

    assert resumed_backend.calls["score"] == 6 + 6 + PROBE_REPEATS * (3 + 6)
    assert resumed.rungs[0].splits["dev"].cached and not resumed.rungs[0].splits["test"].cached
    fresh, _ = assess(
        load_task(path),
        backend=ScriptedBackend(responder=respond),
        rungs=["prompt"],
        out_dir=tmp_path / "c",
        use_cache=False,
    )
    strip = {"latency_s"}
    assert [e.model_dump(exclude=strip) for e in resumed.rungs[0].examples] == [
        e.model_dump(exclude=strip) for e in fresh.rungs[0].examples
    ]
    assert resumed.rungs[0].splits["test"].metrics == fresh.rungs[0].splits["test"].metrics


def test_a_second_assessment_on_the_same_store_waits_and_says_who_holds_it(make_task, tmp_path):
    import os
    import subprocess
    import sys
    import time

    home = os.environ["LADDER_HOME"]
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pathlib import Path\nfrom ladder.run.lock import store_lock\n"
            f"with store_lock(Path({home!r})):\n    print('held', flush=True)\n    time.sleep(3)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    said = []
    started = time.perf_counter()
    run, _ = assess(load_task(make_task()), backend=_always("music"), out_dir=tmp_path / "run", progress=said.append)
    waited = time.perf_counter() - started
    holder.wait()
    assert waited > 1.0 and run.status == "complete"
    assert said[0].startswith(f"waiting: pid {holder.pid} (") and "one assessment at a time per store" in said[0]


def test_a_read_only_run_folder_is_one_line_and_keeps_what_was_saved(make_task, tmp_path):
    import os

    if os.geteuid() == 0:
        # root writes through permissions: make the folder a file's child instead (ENOTDIR), same path
        blocked = tmp_path / "file"
        blocked.write_text("x")
        out = blocked / "run"
    else:
        out = tmp_path / "ro"
        out.mkdir()
        out.chmod(0o500)
    with pytest.raises(LadderError, match=r"cannot write \(.*\); what was saved before is intact"):
        assess(load_task(make_task()), backend=_always("music"), out_dir=out)


def test_a_write_failure_mid_run_keeps_the_last_saved_record(make_task, tmp_path, monkeypatch):
    """The disk fills after the first rung: the error is one line and run.json still holds that rung."""
    import ladder.run.assess as assess_module
    from ladder.fileio import atomic_write_text

    saves = {"n": 0}

    def save_then_fail(run, path):
        saves["n"] += 1
        if saves["n"] > 2:  # the start, then the first rung; the second rung's save meets a full disk
            raise LadderError(f"{path}: cannot write (No space left on device); what was saved before is intact")
        atomic_write_text(path, run.model_dump_json(indent=1) + "\n")

    monkeypatch.setattr(assess_module, "save_run", save_then_fail)
    with pytest.raises(LadderError, match="No space left on device"):
        assess(load_task(make_task()), backend=_always("weather"), out_dir=tmp_path / "run")
    saved = load_run(tmp_path / "run")
    assert [r.name for r in saved.rungs] == ["prompt"] and saved.status == "running"


def test_a_json_array_task_scores_arrays_and_counts_invalid_outputs(make_task, tmp_path):
    """Targets that are arrays of objects: exact_match compares canonical JSON, json_valid wants an array,
    field F1 pairs items; an answer that is not JSON of the target's kind is counted as invalid."""
    target = [{"value": 1, "unit": "metre"}, {"value": 2, "unit": "second"}]
    rows = lambda prefix, n: [
        {"id": f"{prefix}-{i}", "text": f"measure {prefix} {i}", "label": target} for i in range(n)
    ]
    spec = {
        "output": {"kind": "json"},
        "metrics": ["json_valid", "exact_match", "json_field_f1"],
        "target": {"metric": "json_field_f1", "threshold": 0.9},
        "rungs": [{"type": "prompt"}],
        "generation": {"max_new_tokens": 64},
    }
    path = make_task(spec, train=rows("train", 4), dev=rows("dev", 4), test=rows("test", 4))
    answers = {
        "0": '[{"unit": "metre", "value": 1}, {"value": 2, "unit": "second"}]',  # same, other key order
        "1": '[{"value": 1, "unit": "metre"}]',  # half the items
        "2": '{"value": 1, "unit": "metre"}',  # an object, not an array
        "3": "I cannot do that",
    }
    backend = ScriptedBackend(responder=lambda p: answers[p.rsplit("measure ", 1)[1].split(" ")[1][0]])
    run, _ = assess(load_task(path), backend=backend, out_dir=tmp_path / "run")
    by_id = {e.id: e for e in run.rungs[0].examples if e.split == "test"}
    assert [by_id[f"test-{i}"].scores["exact_match"] for i in range(4)] == [1.0, 0.0, 0.0, 0.0]
    assert [by_id[f"test-{i}"].scores["json_valid"] for i in range(4)] == [1.0, 1.0, 0.0, 0.0]
    assert by_id["test-1"].scores["json_field_f1"] == pytest.approx(2 / 3)  # 2 of 4 pairs found, all right
    assert [by_id[f"test-{i}"].invalid for i in range(4)] == [0, 0, 1, 1]
    assert run.rungs[0].splits["test"].invalid_share == 0.5


def test_editing_one_rungs_settings_invalidates_that_rung_only(make_task, tmp_path):
    backend = _always("music")
    assess(load_task(make_task()), backend=backend, out_dir=tmp_path / "a")
    edited = make_task({"rungs": [{"type": "prompt"}, {"type": "fewshot", "k": 4}]}, folder="edited")
    run, _ = assess(load_task(edited), backend=backend, out_dir=tmp_path / "b")
    prompt, fewshot = run.rungs
    assert all(s.cached for s in prompt.splits.values()) and not any(s.cached for s in fewshot.splits.values())
