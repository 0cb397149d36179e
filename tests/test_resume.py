"""A real kill -9 in the middle of a rung, then a re-run: nothing finished is recomputed, and the final
record equals an uninterrupted run's (same outputs, same scores). Real model, small SNIPS slices."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from ladder.record import load_run

pytestmark = pytest.mark.model
SNIPS = ROOT / "tasks" / "snips-intent"


def _task(tmp_path: Path) -> Path:
    folder = tmp_path / "snips"
    shutil.copytree(SNIPS / "data", folder / "data")
    spec = yaml.safe_load((SNIPS / "task.yaml").read_text())
    spec["rungs"] = [
        {"type": "fewshot", "k": 4, "selection": "random"},
        {
            "type": "lora",
            "r": 4,
            "alpha": 8,
            "train": {
                "max_steps": 8,
                "batch_size": 4,
                "max_seq_len": 96,
                "eval_every": 4,
                "checkpoint_every": 2,
                "learning_rate": 4e-4,
            },
        },
    ]
    spec["generation"] = {"label_scoring": "generate", "max_new_tokens": 8, "batch_size": 4}
    (folder / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder / "task.yaml"


def _assess(task: Path, home: Path, out: Path, rung: str) -> subprocess.Popen:
    env = {**os.environ, "LADDER_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "ladder", "assess", str(task), "--rungs", rung, "--limit", "12", "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_when(process: subprocess.Popen, ready, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if process.poll() is not None:
                pytest.fail(f"finished before it could be killed: {process.communicate()}")
            if time.monotonic() > deadline:
                pytest.fail("nothing to kill at: the run never got there")
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


def _finish(process: subprocess.Popen) -> None:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err


def _same_results(a, b):
    def view(run):
        return [(e.id, e.split, e.output, e.scores, e.invalid) for r in run.rungs for e in r.examples]

    assert view(a) == view(b)
    assert [r.splits["test"].metrics for r in a.rungs] == [r.splits["test"].metrics for r in b.rungs]
    assert [r.decision.status for r in a.rungs] == [r.decision.status for r in b.rungs]


def test_kill_9_during_fewshot_generation_then_resume(tmp_path):
    task = _task(tmp_path)
    home = tmp_path / "home"
    killed = _assess(task, home, tmp_path / "killed", "fewshot")
    partial = lambda: list((home / "results").glob("*/*.partial/batch-*.json"))
    _kill_when(killed, lambda: len(partial()) >= 2)
    saved = [(Path(p).parent.name.removesuffix(".partial"), json.loads(Path(p).read_text())) for p in partial()]
    assert saved and load_run(tmp_path / "killed").status == "running"  # the record of the killed run is whole
    _finish(_assess(task, home, tmp_path / "resumed", "fewshot"))
    assert not partial()  # the finished split replaced its batches
    _finish(_assess(task, tmp_path / "other-home", tmp_path / "straight", "fewshot"))
    resumed, straight = load_run(tmp_path / "resumed"), load_run(tmp_path / "straight")
    _same_results(resumed, straight)
    # the batches saved before the kill are in the final record as they were
    rung = resumed.rungs[0]
    for key, batch in saved:
        (split,) = [name for name, result in rung.splits.items() if result.cache_key == key]
        examples = [e for e in rung.examples if e.split == split]
        assert [examples[i].output for i in batch["indices"]] == [o["output"] for o in batch["outputs"]]


def test_kill_9_during_lora_training_then_resume(tmp_path):
    task = _task(tmp_path)
    home = tmp_path / "home"
    killed = _assess(task, home, tmp_path / "killed", "lora")

    def checkpointed() -> bool:
        for progress in (home / "training").glob("*/checkpoint/progress.json"):
            try:
                return json.loads(progress.read_text())["step"] >= 2
            except ValueError:
                return False
        return False

    _kill_when(killed, checkpointed)
    _finish(_assess(task, home, tmp_path / "resumed", "lora"))
    _finish(_assess(task, tmp_path / "other-home", tmp_path / "straight", "lora"))
    resumed, straight = load_run(tmp_path / "resumed"), load_run(tmp_path / "straight")
    r, s = resumed.rungs[0].training, straight.rungs[0].training
    assert r.resumed_from_step >= 2 and s.resumed_from_step is None and r.steps == s.steps == 8
    assert [p.loss for p in r.curve] == [p.loss for p in s.curve]  # the same steps, bit for bit
    assert r.artifact_sha256 == s.artifact_sha256
    _same_results(resumed, straight)
