"""Anytime-valid decisions for bounded scores: a betting confidence sequence (Waudby-Smith & Ramdas 2023,
"Estimating means of bounded random variables by betting", JRSS-B), checked after every example.

Scores in [0, 1] arrive one at a time. Two capital processes bet against the target ``tau``: K+ wins when the
mean is above it, K- when below; each bet is a predictable plug-in fraction (their eq. 26), truncated so the
capital stays positive. Under the truth mean <= tau, K+ is a nonnegative supermartingale, so by Ville's inequality
it ever reaches 2/alpha with probability at most alpha/2 — however often one peeks. So:

- ``meets`` once K+ >= 2/alpha (the sequence's lower bound is above tau), ``gap`` once K- >= 2/alpha;
- a wrong decision (meets when the mean is below tau, or gap when above) has probability at most alpha/2,
  under continuous monitoring, for any stopping rule. ``bench/sequential_calibration.py`` measures it.

The confidence sequence itself (every m whose hedged capital stays below 1/alpha) is computed on a grid for
reports. Pure numpy; imports no model code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

TRUNCATION = 0.5  # bets at most half the room left: the capital stays positive whatever the score


def _lambdas(x: np.ndarray, alpha: float) -> np.ndarray:
    """The predictable plug-in bet sizes for observations ``x`` (shape (..., n)): lambda_t uses x_1..x_{t-1} only."""
    n = x.shape[-1]
    t = np.arange(1, n + 1, dtype=float)
    csum = np.cumsum(x, axis=-1)
    mu_hat = (0.5 + csum) / (t + 1)  # after t observations
    dev2 = np.cumsum((x - mu_hat) ** 2, axis=-1)
    sigma2 = (0.25 + dev2) / (t + 1)
    prev_sigma2 = np.concatenate([np.full(x.shape[:-1] + (1,), 0.25), sigma2[..., :-1]], axis=-1)
    return np.asarray(np.sqrt(2 * math.log(2 / alpha) / (prev_sigma2 * t * np.log1p(t))))


def capital(x: np.ndarray, tau: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(K+, K-) after each observation, for the null mean ``tau`` (shape of ``x``)."""
    lam = _lambdas(x, alpha)
    up = np.minimum(lam, TRUNCATION / tau) if tau > 0 else lam
    down = np.minimum(lam, TRUNCATION / (1 - tau)) if tau < 1 else lam
    with np.errstate(divide="ignore"):
        log_up = np.cumsum(np.log1p(up * (x - tau)), axis=-1)
        log_down = np.cumsum(np.log1p(-down * (x - tau)), axis=-1)
    return np.exp(log_up), np.exp(log_down)


Verdict = Literal["meets", "gap", "undecided"]


@dataclass(frozen=True)
class SequentialDecision:
    verdict: Verdict
    n: int  # examples used when it decided (all of them when undecided)
    low: float  # the confidence sequence at that point
    high: float


def decide_sequentially(scores: Sequence[float], tau: float, alpha: float = 0.05) -> SequentialDecision:
    """Walk the scores in order; stop at the first example where the target is excluded."""
    x = np.clip(np.asarray(scores, dtype=float), 0.0, 1.0)
    if len(x) == 0:
        return SequentialDecision("undecided", 0, 0.0, 1.0)
    k_up, k_down = capital(x, tau, alpha)
    bar = 2 / alpha
    hit_up = np.flatnonzero(k_up >= bar)
    hit_down = np.flatnonzero(k_down >= bar)
    first_up = int(hit_up[0]) if len(hit_up) else None
    first_down = int(hit_down[0]) if len(hit_down) else None
    if first_up is None and first_down is None:
        low, high = confidence_sequence(x, alpha)
        return SequentialDecision("undecided", len(x), low, high)
    if first_down is None or (first_up is not None and first_up <= first_down):
        verdict, at = "meets", first_up
    else:
        verdict, at = "gap", first_down
    assert at is not None
    low, high = confidence_sequence(x[: at + 1], alpha)
    return SequentialDecision(verdict, at + 1, low, high)  # type: ignore[arg-type]


def first_decisions(streams: np.ndarray, tau: float, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """For many streams at once (shape (streams, n)): each one's verdict (1 meets, -1 gap, 0 undecided) and the
    examples it used. For simulations."""
    k_up, k_down = capital(streams, tau, alpha)
    bar = 2 / alpha
    n = streams.shape[1]
    up = np.where((k_up >= bar).any(axis=1), (k_up >= bar).argmax(axis=1), n)
    down = np.where((k_down >= bar).any(axis=1), (k_down >= bar).argmax(axis=1), n)
    verdict = np.where((up < n) & (up <= down), 1, np.where(down < n, -1, 0))
    used = np.minimum(np.minimum(up, down) + 1, n)
    return verdict, used


def confidence_sequence(x: np.ndarray, alpha: float, grid: int = 1001) -> tuple[float, float]:
    """The hedged-capital confidence sequence after all of ``x``: every m in a grid whose capital
    max(K+(m), K-(m)) / 2 stays below 1/alpha at the end (the running intersection is what a peeker
    reports; at the end of a stream that stopped at its first exclusion, it is the same for the bound that decided)."""
    ms = np.linspace(0.0, 1.0, grid)[1:-1]
    keep = []
    for m in ms:
        k_up, k_down = capital(x, float(m), alpha)
        if max(k_up.max(), k_down.max()) / 2 < 1 / alpha:
            keep.append(m)
    if not keep:
        mean = float(x.mean())
        return mean, mean
    return float(min(keep)), float(max(keep))
