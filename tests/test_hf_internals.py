"""The Hugging Face internals ladder relies on, all of them in backends/hf/, checked against the transformers
versions pyproject.toml allows: a transformers release outside that range, or one that moved an internal, fails
here by name instead of somewhere deep in a training step or a decoding loop."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import transformers
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("5.16.1", "5.20")  # [from, before): the releases these internals were checked against


def test_the_installed_transformers_is_one_the_internals_were_checked_against():
    pinned = re.search(r'"transformers>=([\d.]+),<([\d.]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned is not None and pinned.groups() == CHECKED  # the pin and this test move together
    assert Version(CHECKED[0]) <= Version(transformers.__version__) < Version(CHECKED[1])


def test_the_internals_ladder_uses_are_where_it_looks_for_them():
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers import AttentionInterface, DynamicCache
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    assert callable(sdpa_attention_forward) and callable(sdpa_mask)  # backends/hf/attention.py
    assert hasattr(AttentionInterface, "register") and hasattr(AttentionMaskInterface, "register")
    assert hasattr(gguf_utils, "tqdm")  # backends/hf/model.py swaps the GGUF conversion's bar for ladder's
    cache = DynamicCache()
    cache.update(torch.zeros(1, 1, 2, 4), torch.zeros(1, 1, 2, 4), 0)
    layer = cache.layers[0]  # backends/hf/forward.py expands each layer's keys and values in place
    assert layer.keys.shape == (1, 1, 2, 4) and layer.values.shape == (1, 1, 2, 4)


@pytest.fixture(scope="module")
def tiny_model():
    """A two-layer Llama with grouped-query attention and random weights (nothing is downloaded)."""
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval()


def test_rows_sharing_a_prefix_get_the_hidden_states_of_the_plain_pass(tiny_model):
    from ladder.backends.hf.forward import hidden_states, output_logits

    shared = 6
    ids = torch.randint(0, 64, (3, 10))
    ids[:, :shared] = ids[0, :shared]  # every row begins with the same six tokens
    mask = torch.ones_like(ids)
    with torch.no_grad():
        plain = hidden_states(tiny_model, ids, mask, 0)
        once = hidden_states(tiny_model, ids, mask, shared)
        assert once.shape == (3, 10 - shared, 32)
        assert torch.allclose(once, plain[:, shared:], atol=1e-5)
        logits = output_logits(tiny_model, once[:, -1])
    assert logits.dtype == torch.float32 and logits.shape == (3, 64)
