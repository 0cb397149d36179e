"""Confidence intervals and paired tests. Every score carries n and a 95% interval.

- yes/no metrics: Wilson score interval; paired comparison by the exact McNemar test.
- other metrics: percentile bootstrap (seeded); paired comparison by a paired bootstrap of the
  mean difference (p-value: twice the smaller tail of the bootstrap differences around 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054
BOOTSTRAP_SAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    n: int
    method: str  # "wilson" | "bootstrap"


@dataclass(frozen=True)
class PairedComparison:
    delta: float  # mean(b) - mean(a)
    low: float
    high: float
    p_value: float
    n: int
    method: str  # "mcnemar" | "paired-bootstrap"
    wins: int  # examples where b scored higher
    losses: int  # examples where a scored higher


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
        return Estimate(float("nan"), float("nan"), float("nan"), 0, "wilson" if binary else "bootstrap")
    values = np.asarray(scores, dtype=float)
    mean = float(values.mean())
    if binary:
        low, high = wilson(float(values.sum()), n)
        return Estimate(mean, low, high, n, "wilson")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(BOOTSTRAP_SAMPLES, n))
    means = values[idx].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return Estimate(mean, float(low), float(high), n, "bootstrap")


def mcnemar_exact(b_only: int, a_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pair counts."""
    n = b_only + a_only
    if n == 0:
        return 1.0
    k = min(b_only, a_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired(a: list[float], b: list[float], binary: bool, seed: int = 0) -> PairedComparison:
    """Compare b against a on the same examples (same order)."""
    if len(a) != len(b):
        raise ValueError("paired comparison needs the same examples on both sides")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(x)
    diff = y - x
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    delta = float(diff.mean()) if n else float("nan")
    rng = np.random.default_rng(seed)
    if n:
        idx = rng.integers(0, n, size=(BOOTSTRAP_SAMPLES, n))
        boot = diff[idx].mean(axis=1)
        low, high = (float(v) for v in np.quantile(boot, [0.025, 0.975]))
    else:
        boot, low, high = np.zeros(1), float("nan"), float("nan")
    if binary:
        return PairedComparison(delta, low, high, mcnemar_exact(wins, losses), n, "mcnemar", wins, losses)
    tail = min(float((boot <= 0).mean()), float((boot >= 0).mean()))
    return PairedComparison(delta, low, high, min(1.0, 2 * tail), n, "paired-bootstrap", wins, losses)
