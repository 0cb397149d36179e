"""MaskDropout (ladder.rungs.train): nn.Dropout's semantics with a cheaper CPU mask."""

from __future__ import annotations

import pytest
import torch

from ladder.rungs.train import MaskDropout, cpu_dropout


def test_mask_dropout_drops_p_of_the_values_scales_the_rest_and_masks_the_gradient_alike():
    torch.manual_seed(0)
    drop = MaskDropout(0.3)
    x = torch.ones(200_000, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert kept.float().mean().item() == pytest.approx(0.7, abs=0.005)
    assert torch.allclose(y[kept], torch.full_like(y[kept], 32768 / (32768 - round(0.3 * 32768))))
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)  # the expectation is kept
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept)  # the gradient flows where the value was kept, scaled the same
    # every element of a 4-lane word is independent: neighbours are not dropped together
    pairs = torch.stack([~kept[0::2], ~kept[1::2]])
    assert pairs.all(0).float().mean().item() == pytest.approx(0.09, abs=0.005)
    drop.eval()
    z = torch.randn(5, 7)
    assert drop(z) is z
    assert MaskDropout(0.0).train()(z) is z


def test_mask_dropout_follows_torchs_generator_and_keeps_the_shape_and_dtype():
    drop = MaskDropout(0.1)
    x = torch.randn(3, 5, 7, dtype=torch.bfloat16)
    torch.manual_seed(1)
    a = drop(x)
    torch.manual_seed(1)
    b = drop(x)
    assert torch.equal(a, b) and a.shape == x.shape and a.dtype == x.dtype


def test_cpu_dropout_swaps_every_dropout_of_a_model_and_nothing_else():
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 4),
        torch.nn.Dropout(0.1),
        torch.nn.ModuleDict({"a": torch.nn.Dropout(0.05), "b": torch.nn.Dropout(0.0)}),
    )
    assert cpu_dropout(model) == 2
    assert isinstance(model[1], MaskDropout) and isinstance(model[2]["a"], MaskDropout)
    assert type(model[2]["b"]) is torch.nn.Dropout and isinstance(model[0], torch.nn.Linear)
