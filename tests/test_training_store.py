"""The training store's finished entries: a typed, versioned document; an entry written before the store was
versioned still reads (its training is reused, not redone)."""

from __future__ import annotations

import json

import pytest

from ladder.backends.base import Artifact
from ladder.errors import LadderError
from ladder.record import TrainingRecord
from ladder.rungs.store import RESULT, STORE_VERSION, load_finished, save_finished

OUTCOME = {"steps": 4, "epochs": 1.0, "wall_s": 2.5, "tokens_seen": 900, "answer_tokens": 40, "tokens_per_s": 360.0,
           "rss_start_mb": 500.0, "rss_peak_mb": 700.0, "curve": [{"step": 1, "loss": 2.0, "lr": 1e-4}],
           "dev_evals": [{"step": 4, "dev_loss": 1.5}], "best_step": 4, "stopped_early": False,
           "resumed_from_step": None, "truncated_examples": 0}  # fmt: skip


def _entry(tmp_path):
    work = tmp_path / "training" / "abc"
    (work / "adapter").mkdir(parents=True)
    (work / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    return work


def test_a_finished_training_round_trips_typed_and_versioned(tmp_path):
    work = _entry(tmp_path)
    record = TrainingRecord(**OUTCOME, train_examples=24, artifact=str(work / "adapter"), artifact_bytes=7,
                            artifact_sha256="f" * 64, checkpoint_dir=str(work), template_sha256="t" * 64)  # fmt: skip
    save_finished(work, record, Artifact("adapter", work / "adapter", "f" * 64, 7, 8, False))
    saved = json.loads((work / RESULT).read_text())
    assert saved["format"] == "ladder-training" and saved["version"] == STORE_VERSION
    training, artifact = load_finished(work)
    assert training == record and artifact == Artifact("adapter", work / "adapter", "f" * 64, 7, 8, False)


def test_an_entry_from_before_the_store_was_versioned_still_reads(tmp_path):
    work = _entry(tmp_path)
    old = {"training": {**OUTCOME, "train_examples": 24, "trainable_params": None, "objective": "supervised",
                        "data_s": 0.0, "template_sha256": "t" * 64},
           "artifact": {"kind": "adapter", "folder": "adapter", "sha256": "e" * 64, "bytes": 7, "rank": 8,
                        "quantized": False}}  # fmt: skip
    (work / RESULT).write_text(json.dumps(old))
    training, artifact = load_finished(work)
    assert training.steps == 4 and training.curve[0].loss == 2.0 and training.artifact_sha256 == "e" * 64
    assert training.checkpoint_dir == str(work) and artifact.rank == 8 and artifact.path == work / "adapter"


def test_an_entry_whose_artifact_is_gone_is_not_finished_and_a_wrong_one_is_an_error(tmp_path):
    work = _entry(tmp_path)
    assert load_finished(work) is None  # nothing written yet
    (work / RESULT).write_text(json.dumps({"format": "ladder-training", "version": 1, "training": {}, "artifact": {}}))
    with pytest.raises(LadderError, match=r"result.json: not a finished training \(training.steps: Field required\)"):
        load_finished(work)
