"""The one loop, end to end, on the deterministic scripted backend."""

from __future__ import annotations

import json

import pytest

from ladder.assess import assess
from ladder.backends.scripted import ScriptedBackend
from ladder.errors import LadderError
from ladder.record import load_run
from ladder.report import write_report
from ladder.spec import load_task

from conftest import LABELS


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
    assert run.recommendation.next_rung == "rag"
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
    assert saved.spec["generation"]["label_scoring"] == "loglik"  # the resolved spec, defaults filled in
    assert set(saved.data_hashes) == {"train", "dev", "test"} and saved.model["backend"] == "scripted"


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
    assert prompt.decision.n_needed is not None and "dev n=6 is too small to decide" in prompt.decision.reason
    assert run.skipped[0].name == "fewshot" and "prompt is inconclusive" in run.skipped[0].reason
    assert not run.recommendation.met and "dev examples would resolve it" in run.recommendation.summary


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
    assert run.rungs[1].cost.cost_per_1k_calls > run.rungs[0].cost.cost_per_1k_calls and run.rungs[0].cost.basis == "tokens"
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
    run, _ = assess(load_task(make_task(spec, folder="other")), backend=backend, out_dir=tmp_path / "b", rungs=["prompt"])
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
    assert record["schema_version"] == 2


def _sampling_task(make_task, seed=0, samples=3, folder="task"):
    generation = {"label_scoring": "generate", "max_new_tokens": 4, "temperature": 0.7, "seed": seed, "samples": samples}
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
    other, _ = assess(load_task(_sampling_task(make_task, seed=1, folder="s1")), backend=backend, rungs=["prompt"],
                      out_dir=tmp_path / "c")
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
