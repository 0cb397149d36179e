"""Every speed as a fraction of this machine's measured ceiling, side by side in one run.

    python bench/ceiling.py [--prompts 64] [--score 64] [--steps 12] [--no-vllm] [--no-trl]

1. The ceilings, measured here and now: matmul peak in fp32 and in bf16 (a 512x576 @ 576x1536 product,
   the shape of a layer over a batch of tokens) and memory read bandwidth (summing a 512 MB tensor).
2. Label scoring (prefill): SNIPS 8-shot, the transformers backend's ``score_choices``: examples/s and
   the tokens it computes per second (the shared prefix once, each prompt's own tokens, every label), as
   a fraction of the fp32 matmul peak (2 x parameters FLOP per token); and through the precision cascade
   (``serving.dtype: cascade``): the share re-scored in fp32, labels equal to fp32's, the fraction of the bf16 peak.
3. Greedy generation, us-address 8-shot, the same prompts through: ladder's decoding loop; the same loop
   without prompt-lookup drafts; the same loop without its CPU kernels (weights packed once for oneDNN, fused flash attention merged by log-sum-exp:
   the loop as it was first written); the same backend through transformers' ``generate`` (ladder
   before the loop: shared-prefix cache, batches of 16); and vLLM-CPU in-process when installed. Examples/s, decode steps/s and generated tokens/s; a
   step's time against the memory floor (reading every weight once) and the tokens against the
   arithmetic ceiling; how many texts equal the ``generate`` path's.
4. LoRA training (SNIPS, r 16, dropout 0.05, all linear layers, batch 8): ladder's loop; the same loop
   without sharing the rows' common prefix and with torch's own dropout (the loop before); TRL's
   SFTTrainer set up fairly for a CPU (fp32, no gradient checkpointing); the same number of steps.
   Tokens/s of the training examples, and the tokens the model actually computed per second (a shared
   prefix once a pass) as a fraction of the fp32 peak (~4 x parameters FLOP per token: the forward
   pass, and the backward pass through the activations; the frozen weights get no gradient).
Model loading, engine start-up and a short warm-up are outside every timer. Run it alone: another
process on the cores skews every figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import torch  # noqa: E402
from _common import ROOT  # noqa: E402  (the repository on sys.path, the model cache)

from ladder.backends import create_backend  # noqa: E402
from ladder.backends.base import GenerateRequest, ScoreRequest  # noqa: E402
from ladder.backends.hardware import cpu_has_native_bf16  # noqa: E402
from ladder.backends.hf.transformers import TransformersBackend  # noqa: E402
from ladder.data.splits import load_splits  # noqa: E402
from ladder.run.evaluate import _common_prefix  # noqa: E402
from ladder.rungs import BuildContext, build_candidate  # noqa: E402
from ladder.spec import load_task, rung_name  # noqa: E402


def best_of(function, repeats: int = 5) -> float:
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def ceilings() -> dict:
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(512, 576, dtype=dtype), torch.randn(576, 1536, dtype=dtype)
        seconds = best_of(lambda a=a, b=b: a @ b, 3 if dtype == torch.bfloat16 else 10)
        out[f"matmul_{name}_gflops"] = 2 * 512 * 576 * 1536 / seconds / 1e9
    big = torch.ones(128 * 2**20)  # 512 MB
    out["read_gbps"] = big.numel() * 4 / best_of(lambda: big.sum(), 5) / 1e9
    return out


def task_prompts(path: Path, rung: str, n: int, split: str = "dev"):
    task = load_task(path)
    spec = task.spec
    splits = load_splits(task)
    examples = getattr(splits, split)[:n]
    candidate = build_candidate(
        next(r for r in spec.rungs if rung_name(r) == rung), BuildContext(spec=spec, train=splits.train, dev=splits.dev)
    )
    return spec, examples, candidate


def label_scoring(backend, n: int) -> dict:
    spec, examples, candidate = task_prompts(ROOT / "tasks" / "snips-intent" / "task.yaml", "fewshot", n, "test")
    f = backend.formatter(spec.prompt.format)
    prompts = [f.prompt(candidate.messages(e.input)) for e in examples]
    prefix = _common_prefix(prompts)
    choices = [f.completion(candidate.messages(examples[0].input), label) for label in spec.output.labels]
    requests = [ScoreRequest(p, choices, prefix=prefix) for p in prompts]
    backend.score_choices(requests[:2])
    backend._prefix_caches.clear()  # the timed run computes its shared prefix itself
    start = time.perf_counter()
    scored = backend.score_choices(requests)
    wall = time.perf_counter() - start
    shared = backend.count_tokens(prefix)
    label_tokens = sum(len(backend._encode_continuation(c)) for c in choices)
    computed = shared + sum(backend.count_tokens(p) - shared + label_tokens for p in prompts)
    return {
        "examples": len(prompts),
        "wall_s": wall,
        "examples_per_s": len(prompts) / wall,
        "tokens_per_s": computed / wall,
        "labels": [max(range(len(choices)), key=lambda j: (r.logprobs[j], -j)) for r in scored],
    }


def generation_requests(backend, n: int):
    spec, examples, candidate = task_prompts(ROOT / "tasks" / "us-address" / "task.yaml", "fewshot", n)
    f = backend.formatter(spec.prompt.format)
    prompts = [f.prompt(candidate.messages(e.input)) for e in examples]
    prefix = _common_prefix(prompts)
    return [
        GenerateRequest(p, spec.generation.max_new_tokens, [f.end_of_turn], prefix=prefix, stop_at_json_end=True)
        for p in prompts
    ]


def generation(backend, requests, steps_of=None) -> dict:
    backend.generate(requests[:2])
    if hasattr(backend, "_prefix_caches"):
        backend._prefix_caches.clear()
    steps_before = steps_of() if steps_of is not None else 0
    start = time.perf_counter()
    out = backend.generate(requests)
    wall = time.perf_counter() - start
    tokens = sum(g.completion_tokens for g in out)
    result = {
        "examples": len(out),
        "wall_s": wall,
        "examples_per_s": len(out) / wall,
        "tokens_per_s": tokens / wall,
        "texts": [g.text for g in out],
    }
    if steps_of is not None:
        result["steps"] = steps_of() - steps_before
        result["steps_per_s"] = result["steps"] / wall
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--score", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--no-vllm", action="store_true")
    parser.add_argument("--no-trl", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "ceiling.json")
    args = parser.parse_args()
    report: dict = {"threads": torch.get_num_threads(), "native_bf16": cpu_has_native_bf16()}
    report["ceiling"] = ceil = ceilings()
    print(f"ceilings: {ceil}", flush=True)

    backend = TransformersBackend.from_spec("smollm2-135m-instruct", batch_size=16)
    model = backend.model
    params = sum(p.numel() for p in model.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    report["model"] = {"parameters": params, "weight_bytes": weight_bytes, "dtype": backend.dtype_name}
    peak = ceil["matmul_fp32_gflops"] * 1e9
    floor_s = weight_bytes / (ceil["read_gbps"] * 1e9)  # one decode step cannot read the weights faster

    report["label_scoring"] = score = label_scoring(backend, args.score)
    score["of_peak"] = score["tokens_per_s"] * 2 * params / peak
    print("label scoring", {k: v for k, v in score.items() if k != "labels"}, flush=True)
    # the precision cascade (serving.dtype: cascade): bf16 first, fp32 where bf16's lead is within the margin
    cascade = TransformersBackend.from_spec("smollm2-135m-instruct", batch_size=16, dtype="cascade")
    report["cascade"] = fast = label_scoring(cascade, args.score)
    fast["rescored_share"] = cascade.cascade_counts["exact"] / max(1, cascade.cascade_counts["scored"])
    fast["same_labels"] = sum(a == b for a, b in zip(fast.pop("labels"), score.pop("labels")))
    fast["vs_fp32"] = fast["examples_per_s"] / score["examples_per_s"]
    fast["of_bf16_peak"] = fast["tokens_per_s"] * 2 * params / (ceil["matmul_bf16_gflops"] * 1e9)
    cascade.close()
    print("cascade", fast, flush=True)

    requests = generation_requests(backend, args.prompts)
    from ladder.backends.hf import attention, decode

    counted = {"steps": 0}
    original_step = decode.Decoder._step

    def counting_step(self):
        counted["steps"] += 1
        return original_step(self)

    decode.Decoder._step = counting_step
    rows = {}
    backend.decoding = "ladder"
    rows["ladder decoding loop"] = generation(backend, requests, lambda: counted["steps"])
    drafts, backend.lookup = backend.lookup, 0
    rows["the loop without prompt-lookup drafts"] = generation(backend, requests, lambda: counted["steps"])
    backend.lookup = drafts
    kernels = decode.PACK_WEIGHTS, attention.FLASH_CPU
    decode.PACK_WEIGHTS, attention.FLASH_CPU = False, None
    rows["the loop without its CPU kernels"] = generation(backend, requests, lambda: counted["steps"])
    decode.PACK_WEIGHTS, attention.FLASH_CPU = kernels
    decode.Decoder._step = original_step
    backend.decoding = "generate"
    rows["transformers generate (ladder before)"] = generation(backend, requests)
    backend.decoding = "ladder"
    if not args.no_vllm and importlib.util.find_spec("vllm") is not None:
        vllm = create_backend("vllm", "smollm2-135m-instruct", batch_size=16, dtype=backend.dtype_name)
        try:
            rows["vLLM-CPU (in-process)"] = generation(vllm, requests)
        finally:
            vllm.close()
    base = rows["transformers generate (ladder before)"]
    for row in rows.values():
        row["same_as_generate"] = sum(a == b for a, b in zip(row["texts"], base["texts"]))
        row["vs_generate"] = row["examples_per_s"] / base["examples_per_s"]
        row["of_peak"] = row["tokens_per_s"] * 2 * params / peak
        if "steps_per_s" in row:
            row["floor_fraction"] = floor_s * row["steps_per_s"]  # 1.0 = every step at the memory floor
    report["generation"] = {k: {kk: vv for kk, vv in v.items() if kk != "texts"} for k, v in rows.items()}
    print("generation", report["generation"], flush=True)

    from training import (  # bench/training.py: its set-up
        run_ladder,
        run_trl,
        snips_training_data,
    )

    from ladder.rungs import train as train_module
    from ladder.rungs.train import loop, objectives, plan

    pairs, convs = snips_training_data(backend)
    computed = {"tokens": 0}
    answer_logits = objectives.answer_logits
    where = {"SHARED_PREFIX_MIN": plan, "cpu_dropout": loop}  # the module that looks each rule up

    def counting_logits(model, ids, mask, labels):  # the tokens through the model: a shared prefix once
        shared = train_module.shared_prefix_length(ids, labels)
        computed["tokens"] += int(mask.sum()) - (ids.shape[0] - 1) * shared
        return answer_logits(model, ids, mask, labels)

    def ladder_row(**before) -> dict:
        saved = {name: getattr(where[name], name) for name in before}
        for name, value in before.items():
            setattr(where[name], name, value)
        objectives.answer_logits, computed["tokens"] = counting_logits, 0
        try:
            row = run_ladder(backend, pairs, args.steps, 4e-4)
        finally:
            objectives.answer_logits = answer_logits
            for name, value in saved.items():
                setattr(where[name], name, value)
        row["computed_per_s"] = computed["tokens"] / row["wall_s"]
        return row

    training = {
        "ladder train_loop": ladder_row(),
        "the loop before (whole rows, torch dropout)": ladder_row(SHARED_PREFIX_MIN=10**9, cpu_dropout=lambda model: 0),
    }
    if not args.no_trl and importlib.util.find_spec("trl") is not None:
        training["TRL SFTTrainer (fp32, no checkpointing)"] = run_trl(backend, convs, args.steps, 4e-4, fair=True)
    for row in training.values():
        row["of_peak"] = row.get("computed_per_s", row["tokens_per_s"]) * 4 * params / peak
    report["training"] = training

    print(
        f"\nCeilings ({report['threads']} threads; bf16 {'native' if report['native_bf16'] else 'emulated'}): "
        f"matmul fp32 {ceil['matmul_fp32_gflops']:.0f} GFLOP/s, bf16 {ceil['matmul_bf16_gflops']:.0f} GFLOP/s; "
        f"memory read {ceil['read_gbps']:.1f} GB/s -> one decode step reading the {weight_bytes / 1e6:.0f} MB of "
        f"{backend.dtype_name} weights takes at least {floor_s * 1e3:.1f} ms"
    )
    print(f"\n{'what':44} {'rate':>22} {'vs before':>10} {'of fp32 peak':>13} {'same text':>10}")
    print(
        f"{'label scoring, SNIPS 8-shot (prefill)':44} {score['tokens_per_s']:13.0f} tok/s {'':>10} {score['of_peak']:12.0%}"
    )
    print(f"{'':44} {score['examples_per_s']:13.2f} ex/s")
    print(
        f"{'the same through the precision cascade':44} {fast['examples_per_s']:13.2f} ex/s {fast['vs_fp32']:9.2f}x "
        f"{fast['tokens_per_s'] * 2 * params / peak:12.0%} {fast['same_labels']:>6}/{fast['examples']} labels"
    )
    print(f"{'':44} {fast['rescored_share']:.0%} re-scored in fp32; {fast['of_bf16_peak']:.0%} of the bf16 peak")
    for name, row in rows.items():
        same = f"{row['same_as_generate']}/{row['examples']}"
        print(
            f"{name[:44]:44} {row['examples_per_s']:13.2f} ex/s {row['vs_generate']:9.2f}x {row['of_peak']:12.0%} {same:>10}"
        )
        extra = f"{row['tokens_per_s']:.0f} generated tok/s"
        if "steps_per_s" in row:
            extra += f"; {row['steps_per_s']:.1f} steps/s = {row['floor_fraction']:.0%} of the memory floor's rate"
        print(f"{'':44} {extra}")
    base_train = training["the loop before (whole rows, torch dropout)"]["tokens_per_s"]
    for name, row in training.items():
        computed_note = f", {row['computed_per_s']:.0f} computed tok/s" if "computed_per_s" in row else ""
        print(
            f"{name[:44]:44} {row['tokens_per_s']:13.0f} tok/s {row['tokens_per_s'] / base_train:9.2f}x {row['of_peak']:12.0%}"
            f"   ({row['steps']} steps{computed_note})"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
