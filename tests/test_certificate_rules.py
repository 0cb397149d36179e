"""The certificate's rules on backends with known log-probabilities (the real model: tests/test_certificate.py):
an adapter that moves nothing fails; a served adapter within numerical noise of the reference passes; one that
lost a sizeable part of the adapter's effect (a serving fault) fails."""

from __future__ import annotations

import pytest
from conftest import ROOT

from ladder.backends.base import Artifact, ChoiceScores, template_fingerprint
from ladder.backends.scripted import ScriptedBackend
from ladder.record import TrainingRecord
from ladder.run.cache import ResultCache
from ladder.run.certificate import certify
from ladder.rungs.base import Candidate
from ladder.spec import load_task


class _Shifted(ScriptedBackend):
    """Every answer's log-probability is -5, plus ``shift`` when serving the artifact."""

    def __init__(self, shift: float, name: str = "vllm"):
        super().__init__()
        self.shift, self.name = shift, name

    def score_choices(self, requests):
        moved = self.shift if self.artifact is not None else 0.0
        return [ChoiceScores([-5.0 + moved] * len(r.choices), [2] * len(r.choices), 10) for r in requests]


def _certify(make_task, served_shift: float, reference_shift: float | None):
    from ladder.data.splits import load_task_data

    task = load_task(make_task())
    dev = load_task_data(task).splits.dev
    backend = _Shifted(served_shift)
    formatter = backend.formatter("chat")
    training = TrainingRecord(
        steps=1,
        epochs=1.0,
        wall_s=1.0,
        tokens_seen=1,
        answer_tokens=1,
        tokens_per_s=1.0,
        rss_start_mb=1.0,
        rss_peak_mb=1.0,
        train_examples=1,
        artifact="a",
        artifact_bytes=1,
        artifact_sha256="x",
        checkpoint_dir="x",
        template_sha256=template_fingerprint(formatter),
    )
    artifact = Artifact("adapter", ROOT, "b" * 64, 1, 8)
    candidate = Candidate(
        "lora", "lora", task.spec.prompt.instruction, task.spec.prompt.input_template, artifact=artifact
    )
    reference = None if reference_shift is None else (lambda: _Shifted(reference_shift, name="transformers"))
    return certify(candidate, training, backend, formatter, task.spec, dev, ResultCache(ROOT, enabled=False), reference)


def test_the_reference_check_tolerates_noise_but_not_a_lost_part_of_the_adapter(make_task):
    fine = _certify(make_task, served_shift=2.0, reference_shift=2.1)  # 0.1 off an effect of 2.1: noise
    assert fine.passed and {c.name: c for c in fine.checks}["matches_reference"].tolerance == pytest.approx(0.21)
    faulty = _certify(make_task, served_shift=1.0, reference_shift=2.0)  # half the adapter lost as served
    assert faulty.failure().name == "matches_reference" and "it is not served as trained" in faulty.failure().detail
    noop = _certify(make_task, served_shift=0.0, reference_shift=2.0)
    assert noop.failure().name == "changes_outputs"
