"""Cost per call from tokens times per-token times probed once per run: two rungs serving the same prompt cost the
same per call whenever they ran (distill and lora once differed by 64% because they ran under different load)."""

from __future__ import annotations

import time

import pytest
from conftest import _rows

from ladder.backends.scripted import ScriptedBackend
from ladder.decide.cost import rung_cost
from ladder.record import SplitResult, TokenTimes
from ladder.run.evaluate import measure_token_times
from ladder.scoring.stats import Estimate
from ladder.spec import CostSpec, load_task


def _dev(wall_s: float, prompt_tokens: float = 67.0, completion_tokens: float = 3.0, n: int = 100) -> SplitResult:
    return SplitResult(
        n=n,
        metrics={"accuracy": Estimate(mean=0.9, low=0.8, high=0.95, n=n, method="wilson")},
        wall_s=wall_s,
        latency_s_per_example=wall_s / n,
        examples_per_s=n / wall_s,
        prompt_tokens_per_call=prompt_tokens,
        completion_tokens_per_call=completion_tokens,
        cached=False,
        cache_key="k",
    )


def test_same_tokens_same_cost_per_call_whatever_the_wall_time():
    times = TokenTimes(prompt_s_per_token=0.001, completion_s_per_token=0.02, probe_prompts=8, repeats=3, noise=0.04)
    quiet, busy = (
        rung_cost(_dev(12.6), None, 1.0, CostSpec(), times),
        rung_cost(_dev(20.7), None, 1.0, CostSpec(), times),
    )
    assert quiet.seconds_per_call == busy.seconds_per_call == pytest.approx(67 * 0.001 + 3 * 0.02)
    assert (quiet.wall_seconds_per_call, busy.wall_seconds_per_call) == (pytest.approx(0.126), pytest.approx(0.207))
    assert quiet.noise == 0.04
    # without a probe (an older record, or every output cached): the rung's own wall time, as before
    assert rung_cost(_dev(20.7), None, 1.0, CostSpec()).seconds_per_call == pytest.approx(0.207)
    # a prompt's shared prefix (instruction, demonstrations) is computed once per batch of 8, as the backend does
    few = _dev(12.6, prompt_tokens=434.0).model_copy(update={"shared_prefix_tokens": 400})
    cost = rung_cost(few, None, 1.0, CostSpec(), times, batch_size=8)
    assert cost.seconds_per_call == pytest.approx((34 + 400 / 8) * 0.001 + 3 * 0.02)


class _Timed(ScriptedBackend):
    """A stand-in with known rates: 20 ms a call whatever its size, 1 ms per prompt token (the prefill, which
    yields the first token), 5 ms per further decoded token of each row."""

    def generate(self, requests):
        out = super().generate(requests)
        time.sleep(
            0.02 + 0.001 * sum(g.prompt_tokens for g in out) + 0.005 * sum(max(0, g.completion_tokens - 1) for g in out)
        )
        return out


def test_the_probe_recovers_known_per_token_times(make_task):
    task = load_task(
        make_task({"generation": {"label_scoring": "generate", "max_new_tokens": 16}}, dev=_rows("dev", 16, 1))
    )
    from ladder.data.splits import load_task_data

    dev = load_task_data(task).splits.dev
    backend = _Timed(responder=lambda p: "one two three four five six")
    times = measure_token_times(backend, backend.formatter("chat"), task.spec, dev)
    assert times.probe_prompts == len(dev[:16]) and times.repeats == 3 and times.mode == "generate"
    assert times.prompt_s_per_token == pytest.approx(0.001, rel=0.3)
    assert times.completion_s_per_token == pytest.approx(0.005, rel=0.3)
    assert times.call_s == pytest.approx(0.02, abs=0.01)
    assert 0 <= times.noise < 0.5
