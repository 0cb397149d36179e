"""The training forward pass where it touches Hugging Face internals: rows that share a prefix see one copy of
its keys and values (a ``DynamicCache`` whose layers are expanded views), and the output layer run only where
an answer token is predicted. Checked against the transformers versions pyproject.toml allows in ``tests/test_hf_internals.py``."""

from __future__ import annotations

import torch


def hidden_states(model, ids: torch.Tensor, mask: torch.Tensor, shared: int) -> torch.Tensor:
    """The decoder's last hidden states of every row after the first ``shared`` tokens (all rows begin with
    them): the prefix goes through the model once, as one row, and every row's own tokens attend to its keys
    and values, so its activations are computed and kept once. ``shared`` 0: the plain batched pass."""
    decoder = model.get_decoder()
    if not shared:
        return decoder(input_ids=ids, attention_mask=mask).last_hidden_state
    cache = decoder(input_ids=ids[:1, :shared], use_cache=True).past_key_values
    for layer in cache.layers:  # one row's keys and values, seen by every row (a view: nothing copied)
        layer.keys = layer.keys.expand(ids.shape[0], -1, -1, -1)
        layer.values = layer.values.expand(ids.shape[0], -1, -1, -1)
    positions = torch.arange(shared, ids.shape[1], device=ids.device)[None].expand(ids.shape[0], -1)
    return decoder(
        input_ids=ids[:, shared:], attention_mask=mask, past_key_values=cache, position_ids=positions, use_cache=True
    ).last_hidden_state


def output_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """fp32 logits of the chosen hidden states (the output layer over those positions only)."""
    return model.get_output_embeddings()(hidden).float()


def decoder_blocks(model) -> list[torch.nn.Module]:
    """The transformer blocks of a causal LM (a peft model's too), in order: the units FSDP2 shards and
    activation checkpointing recomputes."""
    return list(model.get_decoder().layers)


def checkpoint_activations(model) -> None:
    """Each block's activations recomputed in the backward pass instead of kept (torch.utils.checkpoint without
    re-entrance, so frozen inputs need no gradient)."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
