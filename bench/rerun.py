"""Nothing to compute, nothing to load: an unchanged re-run of the SNIPS demo (`ladder assess
tasks/snips-intent/task.yaml`, every rung cached) and of this repository's gate suite, each in a fresh process, timed
and measured (peak resident memory) side by side for a baseline commit and the working tree, in one run.

    python bench/rerun.py [--baseline REV] [--repeats N]

The baseline is checked out into a temporary git worktree and run with the same interpreter (its `ladder` package
first on the path); both share one $LADDER_HOME, so both find the same cached outputs and trainings (their cache keys
are the same) and differ only in what they import and recompute. Prints a Markdown table (medians of N) and the
machine; a run whose caches are cold is done first for each and not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, machine

MEASURE = (
    "import json, resource, subprocess, sys, time\n"
    "t = time.perf_counter(); code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "wall = time.perf_counter() - t\n"
    "print(json.dumps({'code': code, 'wall_s': wall, 'rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))\n"
)
JOBS = {
    "assess (SNIPS demo, cached)": ["assess", "tasks/snips-intent/task.yaml", "--out", "{out}/assess"],
    "gate-suite (evals/gates.yaml, cached)": ["gate-suite", "evals/gates.yaml", "--out", "{out}/gates"],
}


def measure(tree: Path, args: list[str], env: dict) -> dict:
    env = {**env, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, sys.executable, "-m", "ladder", *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["code"] not in (0, 1):  # a gate may fail on purpose; anything else is broken
        raise SystemExit(f"{' '.join(args)} in {tree} exited {result['code']}: {done.stderr[-2000:]}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD", help="the commit to compare with (default: HEAD)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ladder-rerun-"))
    baseline = work / "baseline"
    subprocess.run(["git", "worktree", "add", "--detach", str(baseline), args.baseline], cwd=ROOT, check=True)
    env = {**os.environ, "LADDER_HOME": os.environ.get("LADDER_HOME", str(ROOT / ".ladder"))}
    env.setdefault("LADDER_MODEL_DIR", str(Path(env["LADDER_HOME"]) / "models"))
    try:
        trees = {f"baseline ({args.baseline})": baseline, "this tree": ROOT}
        rows = []
        for job, template in JOBS.items():
            found = {}
            for name, tree in trees.items():
                command = [a.format(out=work / name.split()[0]) for a in template]
                measure(tree, command, env)  # fills whatever cache this tree keeps and the other does not
                runs = [measure(tree, command, env) for _ in range(args.repeats)]
                found[name] = (
                    statistics.median(r["wall_s"] for r in runs),
                    statistics.median(r["rss_mb"] for r in runs),
                )
            (old_s, old_mb), (new_s, new_mb) = found.values()
            rows.append(
                f"| {job} | {old_s:.2f} s, {old_mb:.0f} MB | {new_s:.2f} s, {new_mb:.0f} MB | {old_s / new_s:.1f}x |"
            )
        print(f"\n{machine()}; medians of {args.repeats}")
        print(f"\n| unchanged re-run | baseline ({args.baseline}) | this tree | faster |\n|---|---|---|---|")
        print("\n".join(rows))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(baseline)], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
