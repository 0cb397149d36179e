"""Confidence intervals, paired tests, multiple-comparison correction and power. Every score carries n
and a 95% interval.

- yes/no metrics: Wilson score interval; paired comparison by the exact McNemar test.
- other metrics: percentile bootstrap (seeded); paired comparison by a paired bootstrap of the
  mean difference (p-value: twice the smaller tail of the bootstrap differences around the null).
- several comparisons at once: Holm's step-down correction.
- power: the n a paired or single-sample test needs to see an effect, and the minimum detectable
  effect at a given n (normal approximation, two-sided alpha, 80% power by default).

``Estimate`` and ``PairedComparison`` are the record's types (``record/parts.py``, pydantic, frozen): the run
record, the policy, the report and the gate all hold exactly what these functions return.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from ladder.record.parts import Estimate, PairedComparison

Z95 = 1.959963984540054
BOOTSTRAP_SAMPLES = 2000


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at p = 0 or 1 the bound is p up to rounding (1.7e-18 above 0/150 was seen): an interval holds its estimate
    return (max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))


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
    return Estimate(mean=mean, low=min(mean, float(low)), high=max(mean, float(high)), n=n, method="bootstrap")


def mcnemar_exact(b_only: int, a_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pair counts."""
    n = b_only + a_only
    if n == 0:
        return 1.0
    k = min(b_only, a_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return float(min(1.0, 2 * tail))


def _bootstrap_diffs(diff: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(BOOTSTRAP_SAMPLES, len(diff)))
    return np.asarray(diff[idx].mean(axis=1))


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
        return PairedComparison(
            delta=nan,
            low=nan,
            high=nan,
            p_value=1.0,
            n=0,
            method="mcnemar" if binary else "paired-bootstrap",
            wins=0,
            losses=0,
        )
    delta = float(diff.mean())
    boot = _bootstrap_diffs(diff, seed)
    low, high = (float(v) for v in np.quantile(boot, [0.025, 0.975]))
    low, high = min(low, delta), max(high, delta)  # a percentile interval can miss a skewed mean: keep it inside
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


def noninferiority_p(a: list[float], b: list[float], margin: float, seed: int = 0) -> float:
    """One-sided paired-bootstrap p-value of H0: mean(b - a) <= -margin (b is worse by more than the margin): the
    share of resampled mean differences below -margin. The same resamples as ``paired``'s interval, so a lone
    gate passes (the 95% interval's lower bound at or above -margin) about when this is at most 0.025."""
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if len(diff) == 0:
        return 1.0
    return float((_bootstrap_diffs(diff, seed) < -margin).mean())


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


def _log_binomial_pmf(n: int, p: float) -> np.ndarray:
    k = np.arange(n + 1, dtype=float)
    i = k[1:]
    log_c = np.concatenate([[0.0], np.cumsum(np.log(n - i + 1) - np.log(i))])  # log C(n, k), exact in fp64 to ~1e-9
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(
            log_c
            + np.where(k > 0, k * math.log(p) if p > 0 else -np.inf, 0.0)
            + np.where(k < n, (n - k) * math.log1p(-p) if p < 1 else -np.inf, 0.0)
        )


def wilson_power(p: float, threshold: float, n: int) -> float:
    """Probability that n yes/no scores with true rate ``p`` give a Wilson 95% interval wholly on p's side of
    ``threshold`` (above it, low >= threshold, when p > threshold; below it, high < threshold, otherwise)."""
    k = np.arange(n + 1, dtype=float)
    z2 = Z95 * Z95
    rate = k / n
    denom = 1 + z2 / n
    centre = (rate + z2 / (2 * n)) / denom
    half = Z95 * np.sqrt(rate * (1 - rate) / n + z2 / (4 * n * n)) / denom
    low, high = np.minimum(rate, centre - half), np.maximum(rate, centre + half)
    decides = low >= threshold if p > threshold else high < threshold
    pmf = np.exp(_log_binomial_pmf(n, p))
    return float(pmf[decides].sum())


def n_to_decide(
    mean: float, threshold: float, binary: bool, sd: float, n_now: int, power: float = 0.8, cap: int = 1_000_000
) -> int | None:
    """Examples at which the interval that decides (Wilson for yes/no scores, the normal interval of the mean
    otherwise) lies wholly on one side of ``threshold`` with probability ``power``, if the true mean is ``mean``;
    never fewer than ``n_now`` + 1 (``n_now`` were measured and did not decide). None when the mean sits on the
    threshold (no n decides) or more than ``cap`` would be needed."""
    gap = mean - threshold
    if not math.isfinite(gap) or gap == 0:
        return None
    floor = n_now + 1
    if not binary:
        if sd <= 0:
            return floor
        needed = ((_z(0.975) + _z(power)) * sd / abs(gap)) ** 2
        return max(floor, math.ceil(needed)) if needed <= cap else None
    p = min(1.0, max(0.0, mean))
    if wilson_power(p, threshold, floor) >= power:
        return floor
    hi = floor
    while wilson_power(p, threshold, hi) < power:  # double until it decides, then bisect
        if hi > cap:
            return None
        hi *= 2
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if wilson_power(p, threshold, mid) >= power else (mid, hi)
    return max(floor, hi)
