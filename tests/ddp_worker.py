"""Run the shared training loop on a tiny random Llama, in one process or under torchrun (gloo).

    python tests/ddp_worker.py OUT            # one process
    torchrun --nproc_per_node 2 tests/ddp_worker.py OUT

Rank 0 saves the final weights and the loss curve to OUT; checkpoints go in OUT/work. Environment:
LADDER_TEST_STEPS, LADDER_TEST_BATCH, LADDER_TEST_STRATEGY, LADDER_TEST_CHECKPOINT_EVERY,
LADDER_TEST_ACTIVATION_CHECKPOINTING (1: on), LADDER_TEST_DEVICE (cuda: NCCL, a GPU a process),
LADDER_TEST_CPU_OFFLOAD (1: on), LADDER_TEST_EXIT_AT (every rank exits with 3 once that step's checkpoint is
written; a second launch resumes from it, on any number of processes).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ladder.rungs.train import TrainConfig, TrainExample, train_loop  # noqa: E402
from ladder.rungs.train.parallel import gathered  # noqa: E402
from ladder.spec import TrainSpec  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1])
    cuda = os.environ.get("LADDER_TEST_DEVICE") == "cuda"  # NCCL, a GPU a process (the model loaded on the CPU)
    device = None
    if "LOCAL_RANK" in os.environ:  # launched by torchrun (one process too)
        if cuda:
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
            device = f"cuda:{os.environ['LOCAL_RANK']}"
        dist.init_process_group("nccl" if cuda else "gloo")
    elif cuda:
        device = "cuda:0"
    rank = dist.get_rank() if dist.is_initialized() else 0
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    model = LlamaForCausalLM(config)
    g = torch.Generator().manual_seed(1)
    data = []
    for _ in range(40):
        n = int(torch.randint(4, 12, (1,), generator=g))
        prompt = torch.randint(1, 96, (n,), generator=g).tolist()
        data.append(TrainExample(prompt + prompt, n_prompt=n))  # learnable: the answer repeats the prompt
    settings = TrainSpec(
        max_steps=int(os.environ.get("LADDER_TEST_STEPS", "5")),
        batch_size=int(os.environ.get("LADDER_TEST_BATCH", "8")),  # 1: the second rank's share is always empty
        grad_accum=1,
        learning_rate=1e-3,
        warmup_ratio=0.0,
        eval_every=100,
        max_seq_len=64,
        strategy=os.environ.get("LADDER_TEST_STRATEGY", "auto"),  # auto: fsdp, every weight trains
        cpu_offload=os.environ.get("LADDER_TEST_CPU_OFFLOAD") == "1",
        checkpoint_every=int(os.environ.get("LADDER_TEST_CHECKPOINT_EVERY", "100")),
        activation_checkpointing=os.environ.get("LADDER_TEST_ACTIVATION_CHECKPOINTING") == "1",
    )
    exit_at = int(os.environ.get("LADDER_TEST_EXIT_AT", "0"))  # die (every rank) once this step is checkpointed

    def on_step(state) -> None:
        if state.step == exit_at:
            os._exit(3)

    if device is not None and os.environ.get("LADDER_TEST_STRATEGY") != "fsdp":
        model = model.to(device)  # (sharded, each rank's shards are moved to its device)
    config = TrainConfig(settings, 0, "ddp", out / "work", 0, on_step=on_step, device=device)
    outcome = train_loop(model, data, data[:8], config)
    whole = gathered(model)  # sharded (fsdp): gathered on rank 0 (every rank takes part)
    if rank == 0:
        weights = whole if whole is not None else model.state_dict()
        torch.save({k: v.detach().cpu().clone() for k, v in weights.items()}, out / "weights.pt")
        (out / "curve.json").write_text(json.dumps([point.model_dump() for point in outcome.curve]))
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
