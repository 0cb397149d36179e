"""Caches and resume, the ways they fail in other harnesses: swapping the model, an adapter or the tokenizer under
one cache gives no stale hit (lm-eval #2715); a crash between writing a batch file and renaming it loses nothing
(Inspect #5244); kill -9 at points hypothesis chooses ends, after a re-run, in the record of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ROOT, _rows, base_spec, write_jsonl
from hypothesis import given, settings
from hypothesis import strategies as st

from ladder.backends.base import Artifact
from ladder.backends.scripted import ScriptedBackend
from ladder.record import load_run
from ladder.run.cache import ResultCache
from ladder.run.evaluate import run_eval
from ladder.rungs.base import Candidate
from ladder.spec import load_task

WORKER = ROOT / "tests" / "crash_worker.py"


class _Model(ScriptedBackend):
    """A scripted backend whose identity names weights and tokenizer like a real one's."""

    def __init__(self, answer: str, weights: str = "w1", tokenizer: str = "t1"):
        super().__init__(responder=lambda p: answer)
        self.weights, self.tokenizer = weights, tokenizer

    def identity(self):
        identity = (
            super().identity().model_copy(update={"weights_sha256": self.weights, "tokenizer_sha256": self.tokenizer})
        )
        if self.artifact is not None:
            identity = identity.model_copy(
                update={
                    "weights_sha256": self.artifact.sha256,
                    "base_weights_sha256": self.weights,
                    "artifact": "adapter",
                }
            )
        return identity


def test_swapping_the_model_an_adapter_or_the_tokenizer_under_one_cache_gives_no_stale_hit(make_task, tmp_path):
    task = load_task(make_task())
    from ladder.data.splits import load_task_data

    dev = load_task_data(task).splits.dev
    spec = task.spec
    cache = ResultCache(tmp_path / "cache")
    candidate = Candidate("prompt", "prompt", spec.prompt.instruction, spec.prompt.input_template)
    adapter = Artifact("adapter", tmp_path, "a" * 64, 1, 8)
    first = _Model("weather")
    assert not run_eval(candidate, dev, first, first.formatter("chat"), spec, cache).cached
    assert run_eval(candidate, dev, _Model("weather"), first.formatter("chat"), spec, cache).cached  # the same: a hit
    swaps = {
        "weights": _Model("music", weights="w2"),
        "tokenizer": _Model("music", tokenizer="t2"),
        "adapter": _Model("music"),
    }
    for what, backend in swaps.items():
        tuned = Candidate("lora", "lora", spec.prompt.instruction, spec.prompt.input_template, artifact=adapter)
        out = run_eval(tuned if what == "adapter" else candidate, dev, backend, backend.formatter("chat"), spec, cache)
        assert not out.cached and {o.output for o in out.outputs} == {"music"}, (
            what
        )  # computed, never the stale answers
    # and the real identity names the weights and the tokenizer files by content
    from ladder.backends.models import ModelRef, model_identity

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights-1")
    (folder / "tokenizer.json").write_text('{"v": 1}')
    (folder / "config.json").write_text("{}")
    ref = ModelRef(name="m", path=folder, source="test")
    before = model_identity(ref)
    (folder / "tokenizer.json").write_text('{"v": 2}')
    after = model_identity(ref)
    assert (
        after["tokenizer_sha256"] != before["tokenizer_sha256"] and after["weights_sha256"] == before["weights_sha256"]
    )
    (folder / "model.safetensors").write_bytes(b"weights-2")
    assert model_identity(ref)["weights_sha256"] != after["weights_sha256"]


def _task(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_jsonl(root / "train.jsonl", _rows("train", 12))
    write_jsonl(root / "dev.jsonl", _rows("dev", 30, 1))
    write_jsonl(root / "test.jsonl", _rows("test", 30, 2))
    spec = base_spec()
    spec["generation"] = {"label_scoring": "generate", "batch_size": 2, "max_new_tokens": 4}
    spec["policy"] = {"confidence": "point"}
    import yaml

    (root / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return root / "task.yaml"


def _worker(task: Path, home: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "LADDER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(task), str(out), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _view(run):
    return (
        [(r.name, r.decision.status, r.splits["test"].metrics) for r in run.rungs],
        [(e.id, e.split, e.output, e.scores, e.invalid) for r in run.rungs for e in r.examples],
        run.recommendation.rung if run.recommendation else None,
        run.status,
    )


@pytest.fixture(scope="module")
def reference():
    root = Path(tempfile.mkdtemp(prefix="ladder-crash-ref-"))
    task = _task(root / "task")
    process = _worker(task, root / "home", root / "run")
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return task, _view(load_run(root / "run"))


def test_a_crash_between_writing_a_batch_and_renaming_it_loses_nothing(reference, tmp_path):
    task, expected = reference
    home = tmp_path / "home"
    crashed = _worker(task, home, tmp_path / "crashed", "crash-rename", "5")
    crashed.communicate(timeout=120)
    assert crashed.returncode == 137
    leftovers = list((home / "results").glob("*/*.partial/.batch-*.tmp"))
    finished = list((home / "results").glob("*/*.partial/batch-*.json"))
    assert len(leftovers) == 1 and len(finished) == 4  # the fifth batch under its temporary name, never renamed
    again = _worker(task, home, tmp_path / "again")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert _view(load_run(tmp_path / "again")) == expected


@settings(max_examples=5, deadline=None, derandomize=True)
@given(st.floats(min_value=0.3, max_value=3.0))  # start-up to finished (the run takes ~3 s here)
@pytest.mark.slow  # real processes killed and re-run
def test_kill_9_at_any_point_then_a_rerun_equals_an_uninterrupted_run(reference, delay):
    task, expected = reference
    root = Path(tempfile.mkdtemp(prefix="ladder-kill-"))
    killed = _worker(task, root / "home", root / "killed")
    time.sleep(delay)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    again = _worker(task, root / "home", root / "again")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert _view(load_run(root / "again")) == expected
