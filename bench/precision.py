"""bf16 against fp32 on the real bundled model: how often label predictions agree (what ``dtype: auto``
would change on a CPU if it picked bf16), side by side in one run.

    python bench/precision.py [--n 100] [--rungs prompt,fewshot]

SNIPS test examples, each rung's label scoring with the transformers backend in fp32 weights, in bf16
weights, and with only the linear layers in bf16 (fp32 residual stream, norms and softmax). Prints the
agreement with fp32 and each one's accuracy. On a CPU without avx512_bf16/amx_bf16 torch emulates bf16
(same arithmetic, several times slower), so the agreement measured there holds where bf16 is native.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch  # noqa: E402
from _common import ROOT  # noqa: E402  (the repository on sys.path, the model cache)

from ladder.backends.hardware import cpu_has_native_bf16  # noqa: E402
from ladder.backends.hf.transformers import TransformersBackend  # noqa: E402
from ladder.data.splits import load_splits  # noqa: E402
from ladder.run.cache import ResultCache  # noqa: E402
from ladder.run.evaluate import run_eval  # noqa: E402
from ladder.rungs import BuildContext, build_candidate  # noqa: E402
from ladder.spec import load_task, rung_name  # noqa: E402


def bf16_linears(model):
    """Only the matmuls in bf16: each linear layer's input cast down, its output back up to fp32."""
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.to(torch.bfloat16)
            module.forward = (
                lambda lin: lambda x: torch.nn.functional.linear(x.to(torch.bfloat16), lin.weight, lin.bias).float()
            )(module)
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--rungs", default="prompt,fewshot")
    args = parser.parse_args()
    task = load_task(ROOT / "tasks" / "snips-intent" / "task.yaml")
    spec = task.spec
    splits = load_splits(task)
    examples = splits.test[: args.n]
    ctx = BuildContext(spec=spec, train=splits.train, dev=splits.dev)
    cache = ResultCache(Path(tempfile.mkdtemp()), enabled=False)
    rows = []
    for name in args.rungs.split(","):
        candidate = build_candidate(next(r for r in spec.rungs if rung_name(r) == name), ctx)
        outputs = {}
        for mode in ("float32", "bf16 linears", "bfloat16"):
            backend = TransformersBackend.from_spec(
                spec.model, dtype="bfloat16" if mode == "bfloat16" else "float32", batch_size=spec.generation.batch_size
            )
            if mode == "bf16 linears":
                backend._model = bf16_linears(backend.model)
            start = time.perf_counter()
            got = run_eval(candidate, examples, backend, backend.formatter(spec.prompt.format), spec, cache).outputs
            wall = time.perf_counter() - start
            outputs[mode] = [o.output for o in got]
            same = sum(a == b for a, b in zip(outputs[mode], outputs["float32"]))
            right = sum(o == e.target for o, e in zip(outputs[mode], examples))
            rows.append((name, mode, same, right, wall))
    native = "native" if cpu_has_native_bf16() else "emulated (no avx512_bf16/amx_bf16)"
    print(
        f"\nSNIPS test, first {len(examples)} examples; {spec.model}; bf16 here is {native}; "
        f"{torch.get_num_threads()} threads\n"
    )
    print(f"{'rung':8} {'weights':14} {'same as fp32':>13} {'accuracy':>9} {'wall s':>7}")
    for name, mode, same, right, wall in rows:
        print(f"{name:8} {mode:14} {same:>7}/{len(examples):<5} {right / len(examples):9.2f} {wall:7.1f}")


if __name__ == "__main__":
    main()
