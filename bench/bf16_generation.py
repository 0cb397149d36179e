"""bf16 against fp32 weights in generation, speed and quality, on the real bundled model, side by side in one
run: on CUDA (a lent GPU; CI has none) or on a CPU (where bf16 is native: avx512_bf16 / amx_bf16).

    python bench/bf16_generation.py [--device cuda|cpu] [--prompts 64] [--no-generate] [--out FILE]

Greedy generation, us-address few-shot (the task's rung), dev prompts, through ladder's decoding loop and
through transformers' ``generate``, in bf16 weights (what ``dtype: auto`` picks on CUDA) and in fp32:
examples/s and generated tokens/s of each; how many texts the loop and ``generate`` share at each dtype;
and the quality of bf16 against fp32 (field F1 of each against the references, the paired mean difference
with its 95% paired-bootstrap interval, ladder's own statistics). Model loading and a warm-up are outside
the timers. ``--no-generate`` leaves ``generate`` out (slow on a CPU). Label-scoring agreement of bf16 and
fp32 is ``bench/precision.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch  # noqa: E402
from _common import ROOT  # noqa: E402  (the repository on sys.path, the model cache)
from ceiling import generation, generation_requests, task_prompts  # noqa: E402

from ladder.backends.hf.transformers import TransformersBackend  # noqa: E402
from ladder.metrics import json_field_f1  # noqa: E402
from ladder.scoring.stats import estimate, paired  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--no-generate", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "bf16_generation.json")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("bench/bf16_generation.py: no CUDA device here (--device cpu?)")
    cuda = args.device.startswith("cuda")
    decodings = ("ladder",) if args.no_generate else ("ladder", "generate")
    _, examples, _ = task_prompts(ROOT / "tasks" / "us-address" / "task.yaml", "fewshot", args.prompts)
    where = torch.cuda.get_device_name(0) if cuda else f"CPU, {torch.get_num_threads()} threads"
    report = {"device": where, "torch": torch.__version__, "rows": []}
    texts = {}
    for dtype in ("bfloat16", "float32"):
        backend = TransformersBackend.from_spec(
            "smollm2-135m-instruct", dtype=dtype, batch_size=args.batch, device=args.device
        )
        requests = generation_requests(backend, args.prompts)
        for decoding in decodings:
            backend.decoding = decoding
            got = generation(backend, requests)
            texts[dtype, decoding] = got.pop("texts")
            f1 = [json_field_f1(t, e.target) for t, e in zip(texts[dtype, decoding], examples)]
            row = {
                "dtype": dtype,
                "decoding": decoding,
                **got,
                "field_f1": estimate(f1, binary=False).model_dump(),
                "scores": f1,
            }
            report["rows"].append(row)
            print(
                f"{dtype:9} {decoding:9} {got['examples_per_s']:7.2f} ex/s {got['tokens_per_s']:8.1f} tok/s "
                f"field F1 {row['field_f1']['mean']:.3f}",
                flush=True,
            )
        if "generate" in decodings:
            same = sum(a == b for a, b in zip(texts[dtype, "ladder"], texts[dtype, "generate"]))
            report[f"{dtype}_loop_equals_generate"] = same
            print(f"{dtype}: loop texts equal to generate's: {same}/{len(requests)}", flush=True)
        del backend
        if cuda:
            torch.cuda.empty_cache()
    by = {(r["dtype"], r["decoding"]): r for r in report["rows"]}
    quality = paired(by["float32", "ladder"]["scores"], by["bfloat16", "ladder"]["scores"], binary=False)
    report["bf16_vs_fp32_field_f1"] = quality.model_dump()
    same = sum(a == b for a, b in zip(texts["bfloat16", "ladder"], texts["float32", "ladder"]))
    report["bf16_texts_equal_fp32"] = same
    print(
        f"bf16 vs fp32 (ladder loop): field F1 difference {quality.delta:+.4f} [{quality.low:+.4f}, "
        f"{quality.high:+.4f}] p={quality.p_value:.2f} n={quality.n}; texts equal {same}/{quality.n}"
    )
    print(f"\n{report['device']}, torch {report['torch']}, us-address few-shot, {len(examples)} dev prompts\n")
    print(f"{'weights':9} {'decoding':9} {'ex/s':>7} {'tok/s':>8} {'field F1':>9}")
    for r in report["rows"]:
        print(
            f"{r['dtype']:9} {r['decoding']:9} {r['examples_per_s']:7.2f} {r['tokens_per_s']:8.1f} "
            f"{r['field_f1']['mean']:9.3f}"
        )
    print(
        f"bf16 loop {by['bfloat16', 'ladder']['examples_per_s'] / by['float32', 'ladder']['examples_per_s']:.2f}x fp32 loop"
    )
    for dtype in ("bfloat16", "float32") if "generate" in decodings else ():
        speedup = by[dtype, "ladder"]["examples_per_s"] / by[dtype, "generate"]["examples_per_s"]
        print(f"{dtype}: loop {speedup:.2f}x generate")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
