"""Attention for batched decoding of grouped-query models on the transformers backend.

transformers' ``sdpa`` attention copies the whole key/value cache ``heads / kv_heads`` times on every
decoding step whenever an attention mask is present (it always is in a padded batch): torch's
``enable_gqa`` is only used without a mask. For SmolLM2 (9 query heads over 3 key/value heads) that copy
took about half of the few-shot generation time on CPU (profiled: 13 of 29 s of ``generate``).

``ladder_sdpa`` computes the same attention without the copy when one token is decoded: the query heads
that share a key/value head become rows of one query block, ``(batch, kv_heads, group, dim)``, and the
padding mask ``(batch, 1, 1, length)`` broadcasts over them. Everything else (prompt processing,
training, models without grouped heads) goes to transformers' own ``sdpa`` unchanged. Same arithmetic,
same kernel: tests check the outputs equal the stock implementation's.

Called with ``ladder_prefix`` (by ``decode.Decoder``), it attends over a shared prefix kept once and the
rows' own slot buffers instead (``decode.cascade_attention``).
"""

from __future__ import annotations

import torch

NAME = "ladder_sdpa"


def grouped_decode_sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if "ladder_prefix" in kwargs:  # ladder's own decoding loop (decode.py): shared prefix + slot buffers
        from ladder.backends.hf.decode import cascade_attention

        return cascade_attention(module, query, key, value, attention_mask, kwargs["ladder_prefix"], scaling)
    groups = getattr(module, "num_key_value_groups", 1)
    batch, heads, q_len, dim = query.shape
    mask_ok = attention_mask is None or (attention_mask.dim() == 4 and attention_mask.shape[1] == 1)
    if groups == 1 or q_len != 1 or not mask_ok or kwargs.get("position_bias") is not None or kwargs.get("cache") is not None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
    grouped = query.reshape(batch, key.shape[1], groups, dim)  # head h = kv_head * groups + r
    out = torch.nn.functional.scaled_dot_product_attention(
        grouped, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling
    )
    return out.reshape(batch, heads, 1, dim).transpose(1, 2).contiguous(), None


def register() -> str:
    """Register ``ladder_sdpa`` with transformers (idempotent); returns the name to load models with."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, grouped_decode_sdpa)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME
