"""Confidence intervals, paired tests, multiple-comparison correction and power. Every score carries n
and a 95% interval.

- yes/no metrics: Wilson score interval; paired comparison by the exact McNemar test.
- other metrics: percentile bootstrap (seeded); paired comparison by a paired bootstrap of the
  mean difference (p-value: twice the smaller tail of the bootstrap differences around the null).
- several comparisons at once: Holm's step-down correction.
- power: the n a paired or single-sample test needs to see an effect, and the minimum detectable
  effect at a given n (normal approximation, two-sided alpha, 80% power by default).

``Estimate`` and ``PairedComparison`` are the record's types too (pydantic, frozen): the run record,
the policy, the report and the gate all hold exactly what these functions return.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from pydantic import BaseModel, ConfigDict

Z95 = 1.959963984540054
BOOTSTRAP_SAMPLES = 2000


class Estimate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mean: float
    low: float
    high: float
    n: int
    method: str  # "wilson" | "bootstrap"

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


class PairedComparison(BaseModel):
    """``candidate`` against ``baseline`` on the same examples; delta = candidate - baseline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baseline: str = ""  # the rung (or baseline file) compared against; filled in by scoring.compare
    metric: str = ""
    delta: float
    low: float  # 95% interval of delta (paired bootstrap)
    high: float
    p_value: float  # two-sided, H0: delta = 0
    n: int
    method: str  # "mcnemar" | "paired-bootstrap"
    wins: int  # examples where the candidate scored higher
    losses: int  # examples where the baseline scored higher


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def estimate(scores: list[float], binary: bool, seed: int = 0) -> Estimate:
    n = len(scores)
    if n == 0:
        return Estimate(mean=math.nan, low=math.nan, high=math.nan, n=0, method="wilson" if binary else "bootstrap")
    values = np.asarray(scores, dtype=float)
    mean = float(values.mean())
    if binary:
        low, high = wilson(float(values.sum()), n)
        return Estimate(mean=mean, low=low, high=high, n=n, method="wilson")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(BOOTSTRAP_SAMPLES, n))
    means = values[idx].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return Estimate(mean=mean, low=float(low), high=float(high), n=n, method="bootstrap")


def mcnemar_exact(b_only: int, a_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pair counts."""
    n = b_only + a_only
    if n == 0:
        return 1.0
    k = min(b_only, a_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def _bootstrap_diffs(diff: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(BOOTSTRAP_SAMPLES, len(diff)))
    return diff[idx].mean(axis=1)


def paired(a: list[float], b: list[float], binary: bool, seed: int = 0) -> PairedComparison:
    """Compare b (the candidate) against a (the baseline) on the same examples (same order)."""
    if len(a) != len(b):
        raise ValueError("paired comparison needs the same examples on both sides")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(x)
    diff = y - x
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    if n == 0:
        nan = math.nan
        return PairedComparison(delta=nan, low=nan, high=nan, p_value=1.0, n=0, method="mcnemar" if binary else
                                "paired-bootstrap", wins=0, losses=0)
    delta = float(diff.mean())
    boot = _bootstrap_diffs(diff, seed)
    low, high = (float(v) for v in np.quantile(boot, [0.025, 0.975]))
    if binary:
        p, method = mcnemar_exact(wins, losses), "mcnemar"
    else:
        p, method = bootstrap_p(boot, 0.0), "paired-bootstrap"
    return PairedComparison(delta=delta, low=low, high=high, p_value=p, n=n, method=method, wins=wins, losses=losses)


def bootstrap_p(boot: np.ndarray, null: float) -> float:
    """Two-sided bootstrap p-value of H0: mean difference = ``null`` (twice the smaller tail)."""
    if np.all(boot == null):
        return 1.0
    tail = min(float((boot <= null).mean()), float((boot >= null).mean()))
    return min(1.0, 2 * tail)


def shifted_p(a: list[float], b: list[float], null: float, seed: int = 0) -> float:
    """Two-sided paired-bootstrap p-value of H0: mean(b - a) = ``null`` (a non-zero margin)."""
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if len(diff) == 0:
        return 1.0
    return bootstrap_p(_bootstrap_diffs(diff, seed), null)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): controls the family-wise error rate."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _z(q: float) -> float:
    return NormalDist().inv_cdf(q)


def n_to_detect(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Examples a two-sided test at ``alpha`` needs to see ``effect`` with ``power``, for per-example
    standard deviation ``sd`` (of the score, or of the paired difference). None when effect is 0."""
    if effect == 0 or not math.isfinite(effect):
        return None
    if sd <= 0:
        return 1
    return max(1, math.ceil(((_z(1 - alpha / 2) + _z(power)) * sd / abs(effect)) ** 2))


def minimum_detectable_effect(n: int, sd: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true difference a two-sided test at ``alpha`` detects with ``power`` at n examples."""
    if n <= 0:
        return math.inf
    return (_z(1 - alpha / 2) + _z(power)) * sd / math.sqrt(n)


def power_at(effect: float, n: int, sd: float, alpha: float = 0.05) -> float:
    """Probability that a two-sided test at ``alpha`` detects a true difference ``effect`` at n examples."""
    if n <= 0 or sd <= 0:
        return 1.0 if sd <= 0 and effect != 0 else 0.0
    return NormalDist().cdf(abs(effect) * math.sqrt(n) / sd - _z(1 - alpha / 2))


def score_sd(scores: list[float]) -> float:
    """Per-example standard deviation (population form; binary scores give sqrt(p(1-p)))."""
    values = np.asarray(scores, dtype=float)
    return float(values.std()) if len(values) else 0.0
