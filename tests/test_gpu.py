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
