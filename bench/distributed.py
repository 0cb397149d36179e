"""The training loop's ways of sharing a full fine-tune over processes, side by side in one run: one process, 2
processes under DistributedDataParallel, 2 processes under FSDP2 (torchrun, gloo, 1 thread each); the same data and
settings (batch 8, every weight trainable). Per way: step time (the loop's wall time over its steps), each rank's
peak resident memory while training, and the largest weight difference from the one-process result. With
``--baseline REV``, that commit's tree (2 processes, whatever data parallelism it had) is a row too.

    python bench/distributed.py [--model smollm2|random] [--steps 6] [--baseline ee34d06] [--mmap-threshold BYTES]

``--model smollm2`` is the bundled SmolLM2-135M (fp32, materialized by ``make setup``); ``random`` a random Llama of
4 layers x 512 hidden (13.6M parameters). A warm-up run of 2 steps per way is discarded first. ``--mmap-threshold``
sets glibc's ``MALLOC_MMAP_THRESHOLD_`` in every process: by default glibc raises that threshold after a large block
is freed, so the many short-lived all-gather and reduce-scatter buffers of FSDP2 on a CPU are then carved from the
heap and kept in the resident size after they are freed; a fixed threshold returns them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, machine

WORKER = """
import inspect, json, os, sys
from pathlib import Path
import torch, torch.distributed as dist
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
from ladder.rungs.train import TrainConfig, TrainExample, train_loop
from ladder.spec import TrainSpec

out, steps, model_path, strategy = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    dist.init_process_group("gloo")
rank = dist.get_rank() if dist.is_initialized() else 0
torch.set_num_threads(1)
torch.manual_seed(0)
if model_path == "random":
    config = LlamaConfig(vocab_size=4096, hidden_size=512, intermediate_size=1024, num_hidden_layers=4,
                         num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=256)
    model = LlamaForCausalLM(config)
else:
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
vocab = model.config.vocab_size
g = torch.Generator().manual_seed(1)
data = []
for _ in range(256):
    n = int(torch.randint(24, 48, (1,), generator=g))
    prompt = torch.randint(1, vocab, (n,), generator=g).tolist()
    data.append(TrainExample(prompt + prompt[:16], n_prompt=n))
options = dict(max_steps=steps, batch_size=8, learning_rate=1e-5, warmup_ratio=0.0, eval_every=1000,
               checkpoint_every=1000, max_seq_len=256)
if "strategy" in TrainSpec.model_fields:
    options["strategy"] = strategy
outcome = train_loop(model, data, data[:8], TrainConfig(TrainSpec(**options), 0, "bench", out / "work", 0))
try:
    from ladder.rungs.train.parallel import gathered
    whole = gathered(model)
except ImportError:  # a tree from before FSDP2: never sharded
    whole = None
if rank == 0:
    weights = whole if whole is not None else model.state_dict()
    torch.save({k: v.detach().clone() for k, v in weights.items()}, out / "weights.pt")
(out / f"rank{rank}.json").write_text(json.dumps({"wall_s": outcome.wall_s, "steps": outcome.steps,
                                                   "start_mb": outcome.rss_start_mb, "peak_mb": outcome.rss_peak_mb}))
if dist.is_initialized():
    dist.barrier()
    dist.destroy_process_group()
"""


def run_way(
    tree: Path, out: Path, steps: int, model: str, processes: int, strategy: str, mmap_threshold: int | None = None
) -> dict:
    out.mkdir(parents=True)
    script = out / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    if mmap_threshold is not None:
        env["MALLOC_MMAP_THRESHOLD_"] = str(mmap_threshold)
    command = [sys.executable]
    if processes > 1:
        command += ["-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port", "29561"]
    done = subprocess.run(
        [*command, str(script), str(out), str(steps), model, strategy], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(done.stdout[-2000:] + done.stderr[-3000:])
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(processes)]
    return {
        "step_s": max(r["wall_s"] for r in ranks) / ranks[0]["steps"],
        "start_mb": [round(r["start_mb"]) for r in ranks],
        "peak_mb": [round(r["peak_mb"]) for r in ranks],
        "weights": out / "weights.pt",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["smollm2", "random"], default="smollm2")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--baseline", help="a commit whose tree trains 2 processes as its own row")
    parser.add_argument("--mmap-threshold", type=int, help="glibc's MALLOC_MMAP_THRESHOLD_ in every process (bytes)")
    args = parser.parse_args()
    import torch

    model = "random"
    if args.model == "smollm2":
        from ladder.backends.hf.model import resolve_model

        model = str(resolve_model("smollm2-135m-instruct").path)
    work = Path(tempfile.mkdtemp(prefix="ladder-ddp-"))
    ways: list[tuple[str, Path, int, str]] = [
        ("1 process", ROOT, 1, "auto"),
        ("2 processes, DDP", ROOT, 2, "ddp"),
        ("2 processes, FSDP2", ROOT, 2, "fsdp"),
    ]
    if args.baseline:
        old = work / "old-tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(old), args.baseline], cwd=ROOT, check=True, capture_output=True
        )
        ways.append((f"2 processes, {args.baseline}", old, 2, "auto"))
    try:
        results = {}
        for k, (name, tree, processes, strategy) in enumerate(ways):
            run_way(tree, work / f"warm-{k}", 2, model, processes, strategy, args.mmap_threshold)  # imports, page cache
            results[name] = run_way(
                tree, work / f"run-{k}", args.steps, model, processes, strategy, args.mmap_threshold
            )
        reference = torch.load(results["1 process"]["weights"])
        gathered = torch.load(results["2 processes, FSDP2"]["weights"])  # a tied weight named once
        params = sum(v.numel() for v in gathered.values())
        print(machine())
        print(
            f"torch {torch.__version__}; {args.model} ({params / 1e6:.1f}M parameters, all trainable), fp32 AdamW, "
            f"batch 8, {args.steps} steps; gloo, 1 thread a process; MALLOC_MMAP_THRESHOLD_ "
            f"{args.mmap_threshold or 'unset (glibc default)'}\n"
        )
        print(
            "| way | s/step | RSS at start, MB (each rank) | peak RSS training, MB (each rank) | max weight diff vs 1 |"
        )
        print("|---|---|---|---|---|")
        for name, r in results.items():
            weights = torch.load(r["weights"])
            # (the gathered weights name a tied output layer once, as the model's own save does)
            worst = max(float((reference[k] - weights[k]).abs().max()) for k in weights)
            starts = " / ".join(str(m) for m in r["start_mb"])
            peaks = " / ".join(str(m) for m in r["peak_mb"])
            print(f"| {name} | {r['step_s']:.3f} | {starts} | {peaks} | {worst:.1e} |")
    finally:
        if args.baseline:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(work / "old-tree")], cwd=ROOT, capture_output=True
            )
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
