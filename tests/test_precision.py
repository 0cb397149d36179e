"""bf16 against fp32 on the real bundled model: what ``dtype: auto`` changes on a processor with native
bf16 (the arithmetic is the same where torch emulates bf16, only slower, so this runs on any CPU)."""

from __future__ import annotations

import pytest

from ladder.backends.hf import TransformersBackend
from ladder.cache import ResultCache
from ladder.data import load_splits
from ladder.evaluate import run_eval
from ladder.rungs import BuildContext, build_candidate
from ladder.spec import load_task, rung_name

from conftest import ROOT

pytestmark = pytest.mark.model


def test_bf16_label_predictions_equal_fp32_on_99_of_100_snips_examples(tmp_path):
    task = load_task(ROOT / "tasks" / "snips-intent" / "task.yaml")
    spec = task.spec
    splits = load_splits(task)
    examples = splits.test[:100]
    rung = next(r for r in spec.rungs if rung_name(r) == "prompt")
    candidate = build_candidate(rung, BuildContext(spec=spec, train=splits.train, dev=splits.dev))
    cache = ResultCache(tmp_path / "results", enabled=False)
    outputs = {}
    for dtype in ("float32", "bfloat16"):
        backend = TransformersBackend.from_spec(spec.model, dtype=dtype, batch_size=spec.generation.batch_size)
        assert backend.identity()["dtype"] == dtype  # what ran is what the cache keys on
        formatter = backend.formatter(spec.prompt.format)
        outputs[dtype] = [o.output for o in run_eval(candidate, examples, backend, formatter, spec, cache).outputs]
    same = sum(a == b for a, b in zip(outputs["float32"], outputs["bfloat16"]))
    assert len(examples) == 100 and same >= 99, f"{same}/100 label predictions equal"
