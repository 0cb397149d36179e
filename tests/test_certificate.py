"""The adapter certificate on the real bundled model: a trained SNIPS adapter passes through the transformers
backend; the same adapter with its LoRA B matrices zeroed (a real adapter that does nothing) fails closed on
`changes_outputs`; a prompt format other than the one trained with fails `same_template`. (vLLM and an
OpenAI-compatible server are certified against the transformers reference in tests/test_serving.py.)"""

from __future__ import annotations

import pytest
from conftest import ROOT

from ladder.backends import create_backend
from ladder.backends.base import PlainFormatter, template_fingerprint
from ladder.data.splits import load_task_data
from ladder.record import TrainingRecord
from ladder.run.cache import ResultCache
from ladder.run.certificate import CHANGE_TOLERANCE, certify
from ladder.rungs.base import Candidate
from ladder.spec import load_task

pytestmark = pytest.mark.model
SNIPS = ROOT / "tasks" / "snips-intent" / "task.yaml"


@pytest.fixture(scope="module")
def setting():
    task = load_task(SNIPS)
    backend = create_backend("transformers", "smollm2-135m-instruct", batch_size=8, labels=task.spec.output.labels)
    return task.spec, load_task_data(task).splits.dev, backend


def _uncached() -> ResultCache:
    return ResultCache(ROOT / "unused", enabled=False)


def _training(formatter) -> TrainingRecord:
    return TrainingRecord(
        steps=12,
        epochs=1.0,
        wall_s=1.0,
        tokens_seen=1,
        answer_tokens=1,
        tokens_per_s=1.0,
        rss_start_mb=1.0,
        rss_peak_mb=1.0,
        train_examples=48,
        artifact="adapter",
        artifact_bytes=1,
        artifact_sha256="x",
        checkpoint_dir="x",
        template_sha256=template_fingerprint(formatter),
    )


def _candidate(spec, artifact) -> Candidate:
    return Candidate("lora", "lora", spec.prompt.instruction, spec.prompt.input_template, artifact=artifact)


def test_a_trained_adapter_is_certified(setting, trained_adapter):
    spec, dev, backend = setting
    formatter = backend.formatter("chat")
    cert = certify(_candidate(spec, trained_adapter), _training(formatter), backend, formatter, spec, dev, _uncached())
    checks = {c.name: c for c in cert.checks}
    assert cert.passed and cert.probe == 8 and cert.backend == "transformers"
    assert checks["changes_outputs"].value > 100 * CHANGE_TOLERANCE
    assert checks["matches_reference"].passed is None and "the reference itself" in checks["matches_reference"].detail
    assert checks["same_template"].passed


def test_an_adapter_that_does_nothing_fails_closed(setting, noop_adapter):
    spec, dev, backend = setting
    formatter = backend.formatter("chat")
    cert = certify(_candidate(spec, noop_adapter), _training(formatter), backend, formatter, spec, dev, _uncached())
    failed = cert.failure()
    assert not cert.passed and failed is not None and failed.name == "changes_outputs"
    assert failed.value < 1e-6 and "it does nothing as served" in failed.detail


def test_a_prompt_format_other_than_the_trained_one_fails(setting, trained_adapter):
    spec, dev, backend = setting
    trained_with = backend.formatter("chat")
    cert = certify(
        _candidate(spec, trained_adapter), _training(trained_with), backend, PlainFormatter(), spec, dev, _uncached()
    )
    failed = cert.failure()
    assert failed is not None and failed.name == "same_template" and "is not the one trained with" in failed.detail
    # a training that recorded no format (an older ladder) fails closed too
    old = _training(trained_with).model_copy(update={"template_sha256": None})
    cert = certify(_candidate(spec, trained_adapter), old, backend, trained_with, spec, dev, _uncached())
    assert cert.failure().name == "same_template" and "retrain" in cert.failure().detail
