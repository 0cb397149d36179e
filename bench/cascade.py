"""The label-scoring precision cascade against fp32 and bf16, side by side in one run, on the real bundled models.

    python bench/cascade.py [--models smollm2-135m-instruct,gemma3-270m] [--rungs prompt,fewshot,lora] [--n N]

Every SNIPS example (train, dev and test: 693), each rung's label scoring (a LoRA adapter merged, as served) by the transformers backend in fp32
weights, in bf16 weights, and by the cascade (bf16 first; the examples whose best label leads the next by less
than ``CASCADE_MARGIN`` again in fp32). Prints, per model and rung: examples/s of each, the cascade's speed-up over
fp32, the share of examples it re-scored in fp32, predictions equal to fp32's (the cascade must have all), and the
bf16-vs-fp32 error of a label's summed log-probability (max and 99.9th percentile: what ``CALIBRATED_ERROR`` is
set from). One thread per model run; nothing cached.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import SNIPS, machine

from ladder.backends.hf.labels import CASCADE_MARGIN
from ladder.backends.hf.transformers import TransformersBackend
from ladder.data.splits import load_splits
from ladder.run.cache import ResultCache
from ladder.run.context import build_context
from ladder.run.evaluate import run_eval
from ladder.rungs import build_candidate
from ladder.spec import load_task, rung_name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="smollm2-135m-instruct,gemma3-270m")
    parser.add_argument("--rungs", default="prompt,fewshot,lora")
    parser.add_argument("--n", type=int, help="only the first N examples (default: all 693)")
    args = parser.parse_args()
    rows, errors = [], []
    for model in args.models.split(","):
        task = load_task(SNIPS).with_model(model)
        spec = task.spec
        splits = load_splits(task)
        examples = (splits.train + splits.dev + splits.test)[: args.n]
        # a trained rung (lora) is taken from the training store ($LADDER_HOME) where it is there, else trained
        ctx = build_context(task, splits.train, splits.dev, work_dir=Path(tempfile.mkdtemp()))
        cache = ResultCache(Path(tempfile.mkdtemp()), enabled=False)
        backends = {
            mode: TransformersBackend.from_spec(model, dtype=mode, batch_size=spec.generation.batch_size)
            for mode in ("float32", "bfloat16", "cascade")
        }
        for backend in backends.values():  # weights loaded (and the cascade's bf16 copy made) before timing
            _ = backend.model
        _ = backends["cascade"].draft
        for name in args.rungs.split(","):
            candidate = build_candidate(next(r for r in spec.rungs if rung_name(r) == name), ctx)
            got, wall = {}, {}
            for mode, backend in backends.items():
                formatter = backend.formatter(spec.prompt.format)
                backend.cascade_counts.update(scored=0, exact=0)
                start = time.perf_counter()
                got[mode] = run_eval(candidate, examples, backend, formatter, spec, cache).outputs
                wall[mode] = time.perf_counter() - start
            fp32 = got["float32"]
            labels = spec.output.labels
            err = np.array(
                [[b.label_logprobs[x] - a.label_logprobs[x] for x in labels] for a, b in zip(fp32, got["bfloat16"])]
            )
            pairs = np.abs(err[:, :, None] - err[:, None, :])  # how far bf16 moved one label against another
            errors.append(
                (
                    model,
                    name,
                    float(np.abs(err).max()),
                    float(np.quantile(np.abs(err), 0.999)),
                    float(pairs.max()),
                    float(np.quantile(pairs.max(axis=(1, 2)), 0.999)),
                )
            )
            counts = backends["cascade"].cascade_counts
            for mode in backends:
                same = sum(a.output == b.output for a, b in zip(fp32, got[mode]))
                exact = f"{counts['exact'] / counts['scored']:.1%}" if mode == "cascade" else "—"
                rows.append(
                    (
                        model,
                        name,
                        mode,
                        len(examples) / wall[mode],
                        wall["float32"] / wall[mode],
                        exact,
                        same,
                        len(examples),
                    )
                )
    print(
        f"\n{machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads; CASCADE_MARGIN {CASCADE_MARGIN}"
    )
    print(f"SNIPS, every split ({rows[0][-1]} examples), label scoring (loglik), nothing cached\n")
    print(
        f"{'model':22} {'rung':8} {'weights':9} {'examples/s':>10} {'vs fp32':>8} {'re-scored fp32':>15} {'same as fp32':>13}"
    )
    for model, name, mode, rate, ratio, exact, same, n in rows:
        print(f"{model:22} {name:8} {mode:9} {rate:10.2f} {ratio:7.2f}x {exact:>15} {same:>7}/{n}")
    print("\nbf16 - fp32 (nats): a label's summed log-probability; the lead of one label over another")
    for model, name, worst, q999, pair, pair999 in errors:
        print(
            f"  {model:22} {name:8} label: max {worst:.3f}, 99.9th pct {q999:.3f}; "
            f"lead: max {pair:.3f}, 99.9th pct {pair999:.3f}"
        )


if __name__ == "__main__":
    main()
