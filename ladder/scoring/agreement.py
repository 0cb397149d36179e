"""A judge checked against people: agreement on a calibration set, and judged means corrected by it.

- ``agreement``: on items that carry a human grade, how often the judge's discrete grade equals it (accuracy,
  Wilson interval), Cohen's kappa (agreement beyond chance; bootstrap interval over items), Spearman's rank
  correlation of the judge's score with the human grade (bootstrap interval), the two means, and how each
  follows the answer's length (verbosity bias: the judge's rank correlation with length beside the people's).
- ``ppi_mean``: prediction-powered inference (Angelopoulos et al., Science 2023) for the mean human grade of a
  rung's answers: the judge's mean over the rung's N answers plus the mean of (human - judge) over the n
  calibration items, with variance var(judge)/N + var(human - judge)/n. It is valid when the calibration items
  are drawn like the rung's answers; a calibration set of other answers to other inputs only approximates that
  (the record says which set it was).

Imports no model code.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ladder.record.parts import Estimate, JudgeAgreement
from ladder.scoring.stats import BOOTSTRAP_SAMPLES, Z95, wilson


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (1-based)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> float:
    """Spearman's rho (Pearson over tie-averaged ranks); nan when either side is constant."""
    x, y = _ranks(np.asarray(a, dtype=float)), _ranks(np.asarray(b, dtype=float))
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def cohen_kappa(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> float:
    """Cohen's kappa of two raters' discrete grades; nan when chance agreement is certain."""
    x, y = np.asarray(a), np.asarray(b)
    if len(x) == 0:
        return math.nan
    observed = float((x == y).mean())
    cats = np.union1d(x, y)
    chance = float(sum((x == c).mean() * (y == c).mean() for c in cats))
    return math.nan if chance >= 1 else (observed - chance) / (1 - chance)


def _boot(stat: Callable[..., float], arrays: list[np.ndarray], seed: int) -> tuple[float, float]:
    n = len(arrays[0])
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(BOOTSTRAP_SAMPLES):
        idx = rng.integers(0, n, size=n)
        value = stat(*(a[idx] for a in arrays))
        if not math.isnan(value):
            values.append(value)
    if len(values) < BOOTSTRAP_SAMPLES // 2:
        return (math.nan, math.nan)
    low, high = np.quantile(values, [0.025, 0.975])
    return float(low), float(high)


def _estimate(value: float, interval: tuple[float, float], n: int) -> Estimate:
    low, high = interval
    if not math.isnan(value) and not math.isnan(low):
        low, high = min(low, value), max(high, value)
    return Estimate(mean=value, low=low, high=high, n=n, method="bootstrap")


def agreement(
    judge_grades: list[float],
    judge_scores: list[float],
    human_grades: list[float],
    human: list[float],
    lengths: list[int],
    seed: int = 0,
) -> JudgeAgreement:
    """The judge against people on the same items, on the [0, 1] scale: discrete grades (the people's at the
    nearest grade) for accuracy and kappa; the judge's score and the people's grade for Spearman and the means."""
    g, hg, s, h, ln = (np.asarray(v, dtype=float) for v in (judge_grades, human_grades, judge_scores, human, lengths))
    g, hg = np.round(g, 6), np.round(hg, 6)
    n = len(h)
    same = float((g == hg).sum())
    low, high = wilson(same, n)
    kappa = cohen_kappa(g, hg)
    rho = spearman(s, h)
    return JudgeAgreement(
        n=n,
        accuracy=Estimate(mean=same / n if n else math.nan, low=low, high=high, n=n, method="wilson"),
        kappa=_estimate(kappa, _boot(cohen_kappa, [g, hg], seed), n),
        spearman=_estimate(rho, _boot(spearman, [s, h], seed + 1), n),
        judge_mean=float(s.mean()) if n else math.nan,
        human_mean=float(h.mean()) if n else math.nan,
        judge_length_spearman=spearman(s, ln),
        human_length_spearman=spearman(h, ln),
    )


def ppi_mean(judged: list[float], calib_judge: list[float], calib_human: list[float]) -> Estimate:
    """The mean human grade of answers the judge scored ``judged``, corrected by a calibration set (PPI): the
    judged mean plus the mean rectifier (human - judge), with a normal interval from both variances."""
    f = np.asarray(judged, dtype=float)
    r = np.asarray(calib_human, dtype=float) - np.asarray(calib_judge, dtype=float)
    big_n, n = len(f), len(r)
    if big_n == 0 or n < 2:
        return Estimate(mean=math.nan, low=math.nan, high=math.nan, n=big_n, method="ppi")
    mean = min(1.0, max(0.0, float(f.mean() + r.mean())))
    var = (float(f.var(ddof=1)) if big_n > 1 else 0.0) / big_n + float(r.var(ddof=1)) / n
    half = Z95 * math.sqrt(var)
    return Estimate(mean=mean, low=max(0.0, mean - half), high=min(1.0, mean + half), n=big_n, method="ppi")
