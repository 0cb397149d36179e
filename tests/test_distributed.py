"""Two CPU processes (torchrun, gloo) train to the same weights as one process with the same total batch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

pytestmark = pytest.mark.slow  # torchrun processes

WORKER = ROOT / "tests" / "ddp_worker.py"


def _one_and_two(tmp_path, **env: str):
    """The worker's weights and loss curve from one process and from two under torchrun (DDP over gloo)."""
    import os

    one, two = tmp_path / "one", tmp_path / "two"
    for folder in (one, two):
        folder.mkdir()
    environ = {**os.environ, **env}
    subprocess.run([sys.executable, str(WORKER), str(one)], check=True, cwd=ROOT, timeout=300, env=environ)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29533",
            str(WORKER),
            str(two),
        ],
        check=True,
        cwd=ROOT,
        timeout=300,
        env=environ,
    )
    a, b = torch.load(one / "weights.pt"), torch.load(two / "weights.pt")
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    curve_a = [p["loss"] for p in json.loads((one / "curve.json").read_text())]
    curve_b = [p["loss"] for p in json.loads((two / "curve.json").read_text())]
    return worst, curve_a, curve_b


def test_two_processes_match_one(tmp_path):
    worst, curve_a, curve_b = _one_and_two(tmp_path)
    # Stated tolerance: 1e-5 absolute on every weight after 5 AdamW steps (lr 1e-3); float sums taken in
    # another order are all that differs.
    assert worst < 1e-5, worst
    assert len(curve_a) == len(curve_b) == 5
    assert max(abs(x - y) for x, y in zip(curve_a, curve_b)) < 1e-4
    assert curve_a[-1] < curve_a[0]
    print(f"max weight difference 1 vs 2 processes: {worst:.2e}")


def test_a_rank_with_nothing_to_do_still_meets_the_others(tmp_path):
    """Batches of one example: the second rank's share is always empty; it makes a pass that adds nothing so the
    gradient exchange completes, and the update is the first rank's alone, as in one process."""
    worst, curve_a, curve_b = _one_and_two(tmp_path, LADDER_TEST_BATCH="1", LADDER_TEST_STEPS="3")
    assert worst < 1e-5, worst
    assert len(curve_a) == len(curve_b) == 3 and max(abs(x - y) for x, y in zip(curve_a, curve_b)) < 1e-4


def test_ladder_train_under_torchrun_then_assess_reuses_it(make_task, tmp_path):
    """The documented multi-process command, on the real bundled model and a tiny task."""
    import os

    import pytest

    from ladder.run.assess import assess
    from ladder.spec import load_task

    pytest.importorskip("peft")
    path = make_task(
        {
            "rungs": [
                {
                    "type": "lora",
                    "dropout": 0.0,
                    "train": {"max_steps": 2, "batch_size": 4, "eval_every": 2, "max_seq_len": 64},
                }
            ]
        }
    )
    env = dict(os.environ)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29534",
            "-m",
            "ladder",
            "train",
            str(path),
            "--rung",
            "lora",
        ],
        check=True,
        cwd=ROOT,
        timeout=400,
        env=env,
    )
    run, _ = assess(load_task(path), out_dir=tmp_path / "run", limit=2)
    training = run.rungs[0].training
    assert training.steps == 2 and training.reused  # the finished artifact, not trained again
