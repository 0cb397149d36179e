"""The CUDA path of the training loop: bf16 autocast over fp32 master weights. Skipped without a GPU."""

from __future__ import annotations

import pytest
import torch

from ladder.rungs.train import TrainConfig, TrainExample, train_loop
from ladder.spec import TrainSpec

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_bf16_training_on_cuda(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

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
    model = LlamaForCausalLM(config).cuda()
    g = torch.Generator().manual_seed(1)
    data = []
    for _ in range(32):
        prompt = torch.randint(1, 96, (8,), generator=g).tolist()
        data.append(TrainExample(prompt + prompt, n_prompt=8))
    settings = TrainSpec(
        max_steps=20,
        batch_size=8,
        learning_rate=3e-3,
        warmup_ratio=0.0,
        eval_every=10,
        checkpoint_every=100,
        max_seq_len=64,
    )
    out = train_loop(model, data, data[:8], TrainConfig(settings, 0, "gpu", tmp_path, 0))
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp32 masters, bf16 compute
    assert out.curve[-1].loss < out.curve[0].loss


def test_on_cuda_a_batch_goes_through_in_one_pass_of_whole_rows():
    """A small model's step on a GPU is bound by kernel launches: passes are sized from the device's free
    memory (not the CPU's 512 MiB) and rows do not share their prefix (its own pass adds launches)."""
    from ladder.rungs import train
    from ladder.rungs.train import device as train_device

    device = torch.device("cuda")
    assert train_device.pass_memory(device) >= train_device.PASS_MEMORY and not train.shares_prefix(device)
    rows = [train.TrainExample([1] * 20 + [2, 3], 20), train.TrainExample([1] * 20 + [4, 5], 20)]
    ids, _, labels = train.collate(rows, 0, device)
    assert train.shared_prefix_length(ids, labels) == 0
    assert train.shared_prefix_length(ids.cpu(), labels.cpu()) == 19
    assert train.planned_prefix(train.SUPERVISED, rows, device) == 0


@pytest.mark.parametrize("offload", ["0", "1"])
def test_fsdp2_on_cuda_with_mixed_precision_and_cpu_offload(tmp_path, offload):
    """torchrun over every GPU here (one is enough: FSDP2 asked for shards one process too): bf16 compute with fp32
    gradient reduction, the master weights fp32, with and without the shards offloaded to host memory; the curve
    follows one process's (bf16 autocast) within bf16's precision, and the weights rank 0 gathers are fp32."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    worker = Path(__file__).parent / "ddp_worker.py"
    env = {**os.environ, "LADDER_TEST_DEVICE": "cuda", "LADDER_TEST_STEPS": "8", "LADDER_TEST_CPU_OFFLOAD": offload}
    one, sharded = tmp_path / "one", tmp_path / "sharded"
    for folder in (one, sharded):
        folder.mkdir()
    subprocess.run([sys.executable, str(worker), str(one)], check=True, env=env, timeout=600)
    gpus = str(torch.cuda.device_count())
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", gpus, "--master_port", "29571"]
    subprocess.run(
        [*launch, str(worker), str(sharded)], check=True, env={**env, "LADDER_TEST_STRATEGY": "fsdp"}, timeout=600
    )
    curves = [[p["loss"] for p in json.loads((f / "curve.json").read_text())] for f in (one, sharded)]
    assert len(curves[0]) == len(curves[1]) == 8 and curves[1][-1] < curves[1][0]
    assert max(abs(a - b) for a, b in zip(*curves)) < 0.05
    weights = torch.load(sharded / "weights.pt")
    assert all(v.dtype == torch.float32 for v in weights.values())
