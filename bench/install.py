"""What `pip install ladder` costs, before and after the core/extras split, side by side on this machine.

Builds the wheel of a baseline commit (a git worktree) and of this tree, installs each into a fresh venv (the
baseline with torch 2.13.0 CPU first, as `make setup` does: from the registry it would take a CUDA build of several
GB), and measures each venv's size (the files of its installed distributions), its number of distributions, and
the start-up of light commands (`ladder --version`, `ladder validate`, `ladder gate` on a committed record; median
of --repeats fresh processes).

    python bench/install.py --baseline ee34d06 [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, machine


def run(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: {done.stdout[-1500:]}{done.stderr[-1500:]}")
    return done.stdout


def wheel(source: Path, out: Path) -> Path:
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source))
    return next(out.glob("ladder-*.whl"))


def venv_with(path: Path, wheel_file: Path, first: list[str]) -> float:
    started = time.perf_counter()
    run(sys.executable, "-m", "venv", str(path))
    pip = [str(path / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
    if first:
        run(*pip, *first)
    run(*pip, "-c", str(ROOT / "constraints.txt"), str(wheel_file))
    return time.perf_counter() - started


def size(path: Path) -> tuple[float, int, list[tuple[float, str]]]:
    """MB of the installed distributions' files, their number, and the five largest."""
    code = """
import importlib.metadata as m, json, pathlib
rows = []
for d in m.distributions():
    total = 0
    for f in d.files or []:
        p = pathlib.Path(d.locate_file(f))
        try:
            total += p.stat().st_size
        except OSError:
            pass
    rows.append((total / 1e6, d.metadata["Name"]))
print(json.dumps(rows))
"""
    rows = json.loads(run(str(path / "bin" / "python"), "-c", code))
    rows = [r for r in rows if r[1] not in ("pip", "setuptools")]  # the venv's own tools, in both
    return sum(r[0] for r in rows), len(rows), sorted(rows, reverse=True)[:5]


def startup(path: Path, args: list[str], repeats: int, cwd: Path) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(str(path / "bin" / "ladder"), *args, cwd=cwd)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="the commit whose install is compared (e.g. ee34d06)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ladder-install-"))
    try:
        old_tree = work / "old-tree"
        run("git", "worktree", "add", "--detach", str(old_tree), args.baseline, cwd=ROOT)
        try:
            old_wheel = wheel(old_tree, work / "old-dist")
        finally:
            run("git", "worktree", "remove", "--force", str(old_tree), cwd=ROOT)
        new_wheel = wheel(ROOT, work / "new-dist")
        envs = {
            f"before ({args.baseline})": (work / "old", old_wheel, ["torch==2.13.0"]),
            "core now": (work / "new", new_wheel, []),
        }
        record = ROOT / "reports" / "records" / "snips-intent.json"
        baseline = work / "baseline.json"
        rows = []
        for name, (path, wheel_file, first) in envs.items():
            seconds = venv_with(path, wheel_file, first)
            mb, count, largest = size(path)
            if not baseline.exists():
                run(str(path / "bin" / "ladder"), "baseline", str(record), "--rung", "fewshot", "--to", str(baseline))
            times = {
                "--version": startup(path, ["--version"], args.repeats, work),
                "validate": startup(
                    path, ["validate", str(ROOT / "tasks" / "snips-intent" / "task.yaml")], args.repeats, work
                ),
                "gate": startup(path, ["gate", str(record), "--baseline", str(baseline)], args.repeats, work),
            }
            rows.append((name, mb, count, seconds, times, largest))
        print(machine())
        print(f"ladder's install, {args.repeats} fresh processes each (medians); sizes without pip/setuptools\n")
        print("| install | MB | distributions | pip install s | `--version` s | `validate` s | `gate` s | largest |")
        print("|---|---|---|---|---|---|---|---|")
        for name, mb, count, seconds, times, largest in rows:
            big = ", ".join(f"{n} {m:.0f}" for m, n in largest[:3])
            print(
                f"| {name} | {mb:,.0f} | {count} | {seconds:.0f} | {times['--version']:.2f} | "
                f"{times['validate']:.2f} | {times['gate']:.2f} | {big} |"
            )
        (before, now) = rows
        print(f"\ncore / before: {now[1] / before[1]:.3f} of the size, {now[2]}/{before[2]} distributions")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
