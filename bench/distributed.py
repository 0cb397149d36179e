"""The training loop's data parallelism, before (a baseline commit) and now, side by side: 2 processes under
torchrun (gloo, 1 thread each) training a random Llama (full fine-tune, every weight trainable, so the gradient
exchange is as large as it gets), the same data and settings in both; step time (the loop's wall time over its
steps, after a 2-step warm-up run is discarded) and each rank's peak resident memory, plus the largest weight
difference between the two trees' results.

    python bench/distributed.py --baseline ee34d06 [--steps 12] [--hidden 512] [--layers 4]
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
import json, os, sys, time
from pathlib import Path
import torch, torch.distributed as dist
from transformers import LlamaConfig, LlamaForCausalLM
from ladder.rungs.train import TrainConfig, TrainExample, train_loop
from ladder.spec import TrainSpec

out, steps, hidden, layers = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
dist.init_process_group("gloo")
rank = dist.get_rank()
torch.set_num_threads(1)
torch.manual_seed(0)
config = LlamaConfig(vocab_size=4096, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                     num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=256)
model = LlamaForCausalLM(config)
g = torch.Generator().manual_seed(1)
data = []
for _ in range(256):
    n = int(torch.randint(24, 48, (1,), generator=g))
    prompt = torch.randint(1, 4096, (n,), generator=g).tolist()
    data.append(TrainExample(prompt + prompt[:16], n_prompt=n))
settings = TrainSpec(max_steps=steps, batch_size=8, learning_rate=1e-4, warmup_ratio=0.0, eval_every=1000,
                     checkpoint_every=1000, max_seq_len=256)
outcome = train_loop(model, data, data[:8], TrainConfig(settings, 0, "bench", out / f"work-{rank}", 0))
if rank == 0:
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out / "weights.pt")
(out / f"rank{rank}.json").write_text(json.dumps({"wall_s": outcome.wall_s, "steps": outcome.steps,
                                                   "peak_mb": outcome.rss_peak_mb}))
dist.barrier()
dist.destroy_process_group()
"""


def run_tree(tree: Path, out: Path, steps: int, hidden: int, layers: int) -> dict:
    out.mkdir(parents=True)
    script = out / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29561"]
    done = subprocess.run(
        [*command, str(script), str(out), str(steps), str(hidden), str(layers)], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    return {
        "step_s": max(r["wall_s"] for r in ranks) / ranks[0]["steps"],
        "peak_mb": [round(r["peak_mb"]) for r in ranks],
        "weights": out / "weights.pt",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()
    import torch

    work = Path(tempfile.mkdtemp(prefix="ladder-ddp-"))
    old = work / "old-tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(old), args.baseline], cwd=ROOT, check=True, capture_output=True
    )
    try:
        results = {}
        for name, tree in ((f"before ({args.baseline}): all_reduce per parameter", old), ("now: DDP", ROOT)):
            run_tree(tree, work / f"warm-{len(results)}", 2, args.hidden, args.layers)  # imports, page cache
            results[name] = run_tree(tree, work / f"run-{len(results)}", args.steps, args.hidden, args.layers)
        a, b = (torch.load(r["weights"]) for r in results.values())
        worst = max(float((a[k] - b[k]).abs().max()) for k in a)
        params = sum(v.numel() for v in a.values())
        print(machine())
        print(
            f"2 processes (gloo, 1 thread each), random Llama {args.layers} layers x {args.hidden} hidden "
            f"({params / 1e6:.1f}M parameters, all trainable), batch 8, {args.steps} steps\n"
        )
        print("| loop | s/step | peak RSS rank 0 / rank 1 (MB) |")
        print("|---|---|---|")
        for name, r in results.items():
            print(f"| {name} | {r['step_s']:.3f} | {r['peak_mb'][0]} / {r['peak_mb'][1]} |")
        first, second = results.values()
        print(
            f"\nnow / before: {second['step_s'] / first['step_s']:.3f}x the step time; weights differ by at most {worst:.1e}"
        )
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
