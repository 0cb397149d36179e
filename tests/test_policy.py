from __future__ import annotations

from ladder.policy import decide, next_rung_after
from ladder.record import MetricSummary


def _m(mean, low, high):
    return MetricSummary(mean=mean, low=low, high=high, n=100, method="wilson")


def test_meets_target_stops():
    d = decide(_m(0.91, 0.84, 0.95), "accuracy", 0.9)
    assert (d.action, d.meets_target) == ("stop", True) and "meets the target 0.900" in d.reason


def test_gap_measured_vs_within_noise():
    measured = decide(_m(0.5, 0.4, 0.6), "accuracy", 0.9)
    assert measured.action == "climb" and "the gap is measured" in measured.reason
    noisy = decide(_m(0.85, 0.77, 0.91), "accuracy", 0.9)
    assert noisy.action == "climb" and "not yet certain" in noisy.reason


def test_next_rung():
    assert next_rung_after(["prompt", "fewshot"], []) == "rag"
    assert next_rung_after(["prompt"], ["fewshot"]) == "fewshot"
    assert next_rung_after(["full"], []) is None
