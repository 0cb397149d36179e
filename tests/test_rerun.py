"""An unchanged re-run loads nothing: every output, finished training, data check and figure comes from the caches,
so the second ``ladder assess`` of a task imports neither torch nor transformers (nor cleanlab, datasketch, peft), in a
process of its own, on the real bundled model with a trained rung."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ladder.record import load_run

pytestmark = [pytest.mark.model, pytest.mark.slow]

HEAVY = ("torch", "transformers", "peft", "cleanlab", "datasketch", "sklearn", "sentence_transformers", "faiss")
PROBE = (
    "import json, sys\n"
    "from ladder.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    f"print('LOADED', json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    "sys.exit(code)\n"
)


def _assess(task, out, env, probe=False):
    command = [sys.executable, "-c", PROBE] if probe else [sys.executable, "-m", "ladder"]
    done = subprocess.run(
        [*command, "assess", str(task), "--exhaustive", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, done.stderr


def test_an_unchanged_rerun_imports_no_model_code(make_task, tmp_path):
    lora = {"type": "lora", "r": 4, "train": {"max_steps": 2, "batch_size": 4, "eval_every": 2, "max_seq_len": 64}}
    task = make_task({"rungs": [{"type": "prompt"}, {"type": "fewshot", "k": 3}, lora]})
    env = {
        **os.environ,
        "LADDER_HOME": str(tmp_path / "home"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
    }
    _, said = _assess(task, tmp_path / "first", env)
    assert "Loading weights" not in said  # transformers' own progress bars stay quiet when the weights load
    out, _ = _assess(task, tmp_path / "again", env, probe=True)
    loaded = json.loads(out.split("LOADED", 1)[1].strip().splitlines()[0])
    assert loaded == []
    first, again = load_run(tmp_path / "first" / "run.json"), load_run(tmp_path / "again" / "run.json")
    assert all(s.cached for r in again.rungs for s in r.splits.values())
    assert (
        again.rungs[2].training.reused
        and again.rungs[2].training.artifact_sha256 == first.rungs[2].training.artifact_sha256
    )
    assert [e.output for r in again.rungs for e in r.examples] == [e.output for r in first.rungs for e in r.examples]
    assert again.data_checks == first.data_checks  # the checks' findings, kept, not recomputed differently
    assert again.model == first.model  # the identity (hence every cache key) made without torch is the same
    assert (tmp_path / "again" / "report.html").read_text().count("<svg") == (
        (tmp_path / "first" / "report.html").read_text().count("<svg")
    )
