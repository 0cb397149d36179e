"""Is the sequential rule of `ladder resolve` calibrated under peeking, and how many dev examples does it save?

    python bench/sequential_calibration.py [--streams 10000] [--n 1000] [--alpha 0.05]

1. Simulation with known truth: streams of yes/no scores (true rate p) against a target tau, the decision checked
   after every example. For each (p, tau): the share of wrong decisions (meets when p < tau, gap when p > tau;
   at p = tau either one) of the betting confidence sequence (`scoring.sequential`), and, for contrast, of a
   fixed-n Wilson interval re-checked after every example (what peeking does to an interval that is not
   anytime-valid), and of one Wilson interval at the fixed n (no peeking); with the median examples used.
   The goal: the betting sequence wrong at most alpha (alpha/2 per side) at every p.
2. The shipped tasks: every rung of the committed records (reports/records/*.json), its dev scores walked in the
   record's order: the fixed-n decision the run made, the sequential decision and the n it needed. The fixed-n
   decision is the policy's (lower bound of the Wilson/bootstrap interval); the sequential one is anytime-valid,
   so it may need more examples than the run has when the fixed-n interval only just decided.
Pure numpy on the CPU; no model.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _common import ROOT  # noqa: E402  (the repository on sys.path, the model cache)

from ladder.scoring.sequential import decide_sequentially, first_decisions  # noqa: E402
from ladder.scoring.stats import Z95  # noqa: E402

CASES = [
    (0.5, 0.5),
    (0.7, 0.7),
    (0.9, 0.9),
    (0.1, 0.1),
    (0.65, 0.7),
    (0.75, 0.7),
    (0.6, 0.7),
    (0.8, 0.7),
    (0.85, 0.9),
    (0.95, 0.9),
]


def wilson_bounds(successes: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z2 = Z95 * Z95
    p = successes / n
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = Z95 * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return np.minimum(p, centre - half), np.maximum(p, centre + half)


def peeking_wilson(streams: np.ndarray, tau: float, start: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Wilson re-checked after every example from the ``start``-th: 1 meets (low >= tau), -1 gap (high < tau)."""
    n = streams.shape[1]
    counts = np.cumsum(streams, axis=1)
    sizes = np.arange(1, n + 1, dtype=float)
    low, high = wilson_bounds(counts, sizes)
    meets = (low >= tau) & (sizes >= start)
    gap = (high < tau) & (sizes >= start)
    up = np.where(meets.any(axis=1), meets.argmax(axis=1), n)
    down = np.where(gap.any(axis=1), gap.argmax(axis=1), n)
    verdict = np.where((up < n) & (up <= down), 1, np.where(down < n, -1, 0))
    return verdict, np.minimum(np.minimum(up, down) + 1, n)


def wrong(verdict: np.ndarray, p: float, tau: float) -> float:
    if p < tau:
        return float((verdict == 1).mean())
    if p > tau:
        return float((verdict == -1).mean())
    return float((verdict != 0).mean())


def simulate(streams: int, n: int, alpha: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    print(
        f"## Simulation: {streams:,} streams per case, up to {n} examples, alpha {alpha}, decision checked after "
        "every example\n"
    )
    print(
        "| true p | target | betting CS: wrong | decided | median n | Wilson peeking: wrong | median n "
        f"| one Wilson at n={n}: wrong | decided |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for p, tau in CASES:
        x = (rng.random((streams, n)) < p).astype(float)
        v, used = first_decisions(x, tau, alpha)
        pv, pused = peeking_wilson(x, tau)
        low, high = wilson_bounds(x.sum(axis=1), np.full(streams, float(n)))
        fixed = np.where(low >= tau, 1, np.where(high < tau, -1, 0))
        w = wrong(v, p, tau)
        worst = max(worst, w)
        decided = v != 0
        print(
            f"| {p} | {tau} | {w:.4f} | {decided.mean():.3f} | {np.median(used[decided]) if decided.any() else '—'} "
            f"| {wrong(pv, p, tau):.4f} | {np.median(pused[pv != 0]) if (pv != 0).any() else '—'} "
            f"| {wrong(fixed, p, tau):.4f} | {(fixed != 0).mean():.3f} |",
            flush=True,
        )
    print(f"\nworst wrong-decision rate of the betting sequence: {worst:.4f} (alpha {alpha})\n")


def shipped(alpha: float) -> None:
    print("## The shipped tasks (committed records, dev scores in the record's order)\n")
    print("| record | rung | metric | target | fixed-n dev (n) | run's status | sequential | n it needed |")
    print("|---|---|---|---|---|---|---|---|")
    for path in sorted((ROOT / "reports" / "records").glob("*.json")):
        run = json.loads(path.read_text())
        metric, tau = run["target"]["metric"], run["target"]["threshold"]
        for rung in run["rungs"]:
            scores = [e["scores"][metric] for e in rung["examples"] if e["split"] == "dev"]
            d = decide_sequentially(scores, tau, alpha)
            m = rung["splits"]["dev"]["metrics"][metric]
            print(
                f"| {path.stem} | {rung['name']} | {metric} | {tau} | {m['mean']:.3f} [{m['low']:.3f}, {m['high']:.3f}] "
                f"({len(scores)}) | {rung['decision']['status']} | {d.verdict} [{d.low:.3f}, {d.high:.3f}] | "
                f"{d.n if d.verdict != 'undecided' else f'> {len(scores)}'} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    simulate(args.streams, args.n, args.alpha, args.seed)
    shipped(args.alpha)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
