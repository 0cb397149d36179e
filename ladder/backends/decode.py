"""Greedy decoding for the transformers backend, near the memory floor of a CPU decode step.

``transformers.generate`` spends most of a CPU decoding step on work that is not arithmetic (profiled on
us-address few-shot, 16 rows, SmolLM2-135M: ``torch.cat`` growing the key/value cache was 48% of the
time, as much as every matmul together), and one long answer holds a whole batch of short ones. Here:

- **one shared prefix, attended once**: the instruction + demonstrations (688 of 716 tokens on
  us-address few-shot) are kept once, ``(kv_heads, P, dim)``, not copied per row; each step attends to
  them with the rows folded into the query dimension (one matmul for all rows), and to each row's own
  tokens in a preallocated buffer; one softmax over both parts (cascade attention);
- **a preallocated (static) cache**: each row's own tokens go into slots of a fixed buffer, written in
  place (no concatenation, nothing reallocated per step); the padding mask is updated in place;
- **continuous batching**: a row that finishes hands its slot to the next prompt in the queue (its prompt
  prefilled alone, over the shared prefix), so a long answer no longer holds the short ones; when the
  queue is empty and half the slots are idle, the buffers are compacted;
- **the output layer only for the last position** of each prefill, and one row per slot at each step;
- **slots from memory**: as many rows as fit a share of the available memory, capped where a step stops
  being bound by reading the weights.

The decoder layers, norms, rotary embedding and output layer are the model's own modules (any decoder
whose layers take ``position_embeddings`` and a cache, as Llama, Mistral, Qwen2/3 do in transformers 5),
and the attention runs through ladder's registered attention function, so the arithmetic per token is
the same as ``generate``'s: greedy outputs equal (tested on the real model). Sampling, a 4-bit base and
models loaded without ladder's attention keep the ``generate`` path.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from ladder.backends.base import json_value_end

MAX_SLOTS = 32  # past this, a CPU decode step of a small model is bound by arithmetic, not by the weights


@dataclass
class Row:
    """One request in flight: its slot, its prompt tokens after the shared prefix, what it generated."""

    index: int  # position in the caller's list
    suffix: list[int]
    max_new: int
    stops: tuple[str, ...]
    json_end: bool
    generated: list[int] = field(default_factory=list)
    ended_by_eos: bool = False


class SlotCache:
    """The key/value cache transformers' attention layers write to: per layer, a ``(slots, kv_heads, width,
    dim)`` buffer; each row writes its step's key/value at its own column. ``update`` returns the whole
    buffer (the mask hides unwritten columns); the shared prefix lives beside it, once."""

    def __init__(self, layers: int, slots: int, kv_heads: int, width: int, dim: int, dtype, device):
        shape = (slots, kv_heads, width, dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.rows = torch.arange(slots, device=device)
        self.cols = torch.zeros(slots, dtype=torch.long, device=device)

    def update(self, key, value, layer_idx, *args, **kwargs):
        k, v = self.keys[layer_idx], self.values[layer_idx]
        k[self.rows, :, self.cols] = key[:, :, 0]
        v[self.rows, :, self.cols] = value[:, :, 0]
        return k, v

    def keep(self, slots: torch.Tensor) -> None:
        self.keys = [k.index_select(0, slots) for k in self.keys]
        self.values = [v.index_select(0, slots) for v in self.values]
        self.rows = torch.arange(len(slots), device=slots.device)
        self.cols = self.cols.index_select(0, slots)


def cascade_attention(module, query, key, value, mask, prefix, scaling):
    """Attention of one new token per row over the shared prefix ``(kv, P, d)`` and the row's own
    buffer ``(rows, kv, width, d)`` (``mask`` adds -inf to unwritten columns): one softmax over both."""
    rows, heads, _, dim = query.shape
    kv = key.shape[1]
    groups = heads // kv
    q = query.reshape(rows, kv, groups, dim)  # head h = kv_head * groups + r
    own = torch.matmul(q, key.transpose(-1, -2)) * scaling + mask  # (rows, kv, groups, width)
    if prefix is not None:
        pk, pv = prefix
        folded = q.permute(1, 0, 2, 3).reshape(kv, rows * groups, dim)
        shared = torch.matmul(folded, pk.transpose(-1, -2)) * scaling  # (kv, rows*groups, P)
        shared = shared.reshape(kv, rows, groups, -1).permute(1, 0, 2, 3)
        scores = torch.cat([shared, own], dim=-1)
    else:
        scores = own
    probs = torch.softmax(scores.float(), dim=-1).to(value.dtype)
    out = torch.matmul(probs[..., scores.shape[-1] - key.shape[2]:], value)
    if prefix is not None:
        n = pk.shape[1]
        mixed = probs[..., :n].permute(1, 0, 2, 3).reshape(kv, rows * groups, n)
        out = out + torch.matmul(mixed, pv).reshape(kv, rows, groups, dim).permute(1, 0, 2, 3)
    return out.reshape(rows, heads, 1, dim).transpose(1, 2).contiguous(), None


def supported(model) -> bool:
    """The model's layers can be driven step by step here (ladder's attention function is in place)."""
    from ladder.backends.attention import NAME

    inner = getattr(model, "model", None)
    return (getattr(model.config, "_attn_implementation", None) == NAME and inner is not None
            and hasattr(inner, "layers") and hasattr(inner, "rotary_emb") and hasattr(inner, "embed_tokens")
            and not getattr(model.config, "sliding_window", None) and not getattr(model, "is_loaded_in_4bit", False))


def slots_for(model, n_requests: int, width: int, prefix_len: int, dtype, floor: int) -> int:
    """Rows decoded together: as many as a quarter of the available memory holds (their key/value
    buffers and activations), at least ``floor`` (the configured batch size), at most ``MAX_SLOTS``."""
    import psutil

    config = model.config
    dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * dim * torch.finfo(dtype).bits // 8
    per_row = per_token * (width + prefix_len) + 4 * config.vocab_size * 4  # + one row of fp32 logits, softmaxed
    fit = int(psutil.virtual_memory().available * 0.25 // max(per_row, 1))
    return max(1, min(n_requests, max(floor, min(fit, MAX_SLOTS))))


class Decoder:
    def __init__(self, backend, prefix: list[int], rows: list[Row], eos: list[int], slots: int):
        self.backend = backend
        self.model = backend.model
        self.inner = self.model.model
        self.tokenizer = backend.tokenizer
        self.device = backend.device
        self.eos = set(eos)
        self.queue = list(rows)
        self.n_prefix = len(prefix)
        self.slots = slots
        self.width = max(len(r.suffix) + r.max_new for r in rows)
        config = self.model.config
        self.layers = self.inner.layers[: config.num_hidden_layers]
        self.prefix_cache = backend._prefix_cache(tuple(prefix)) if prefix else None
        self.prefix = self._prefix_per_layer()
        dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        dtype = next(self.model.parameters()).dtype
        self.cache = SlotCache(len(self.layers), slots, config.num_key_value_heads, self.width, dim, dtype, self.device)
        self.mask = torch.full((slots, 1, 1, self.width), torch.finfo(dtype).min, dtype=dtype, device=self.device)
        self.active: list[Row | None] = [None] * slots
        self.next_token = torch.zeros(slots, dtype=torch.long, device=self.device)

    def _prefix_per_layer(self):
        if self.prefix_cache is None:
            return [None] * len(self.layers)
        out = []
        for layer in self.prefix_cache.layers[: len(self.layers)]:
            out.append((layer.keys[0], layer.values[0]))  # (kv, P, dim): batch 1, kept once
        return out

    # -- prefill: one prompt into one slot --------------------------------------------------------
    def _fill(self, slot: int, row: Row) -> None:
        past = copy.deepcopy(self.prefix_cache) if self.prefix_cache is not None else None
        ids = torch.tensor([row.suffix], device=self.device)
        positions = torch.arange(self.n_prefix, self.n_prefix + len(row.suffix), device=self.device)[None]
        out = self.inner(input_ids=ids, position_ids=positions, past_key_values=past, use_cache=True)
        cache = out.past_key_values
        n = len(row.suffix)
        for i, layer in enumerate(cache.layers[: len(self.layers)]):
            self.cache.keys[i][slot, :, :n] = layer.keys[0, :, self.n_prefix :]
            self.cache.values[i][slot, :, :n] = layer.values[0, :, self.n_prefix :]
        self.mask[slot].fill_(torch.finfo(self.mask.dtype).min)
        self.mask[slot, 0, 0, :n] = 0
        self.cache.cols[slot] = n
        token = int(self.backend._logits(out.last_hidden_state[0, -1:]).argmax(-1))
        self.active[slot] = row
        self._take(slot, token)

    # -- one step for every slot ------------------------------------------------------------------
    def _step(self) -> None:
        cache = self.cache
        hidden = self.inner.embed_tokens(self.next_token[:, None])
        positions = (self.n_prefix + cache.cols)[:, None]
        self.mask[cache.rows, 0, 0, cache.cols] = 0  # the column this step writes becomes visible
        embeddings = self.inner.rotary_emb(hidden, position_ids=positions)
        for i, layer in enumerate(self.layers):
            hidden = layer(hidden, attention_mask=self.mask, position_embeddings=embeddings, position_ids=positions,
                           past_key_values=cache, use_cache=True, ladder_prefix=self.prefix[i])
        hidden = self.inner.norm(hidden)
        tokens = self.backend._logits(hidden[:, 0]).argmax(-1).tolist()
        cache.cols += 1
        cache.cols.clamp_(max=self.width - 1)  # an idle slot (waiting for a refill) writes in place
        for slot, token in enumerate(tokens):
            if self.active[slot] is not None:
                self._take(slot, token)

    def _take(self, slot: int, token: int) -> None:
        row = self.active[slot]
        row.generated.append(token)
        self.next_token[slot] = token
        if token in self.eos:
            row.ended_by_eos = True
            self.active[slot] = None
        elif len(row.generated) >= row.max_new or self._stopped(row):
            self.active[slot] = None

    def _stopped(self, row: Row) -> bool:
        if not row.stops and not row.json_end:
            return False
        text = self.tokenizer.decode(row.generated, skip_special_tokens=True)
        return any(s in text for s in row.stops) or (row.json_end and json_value_end(text) >= 0)

    def _refill(self) -> None:
        for slot in range(len(self.active)):
            while self.active[slot] is None and self.queue:
                self._fill(slot, self.queue.pop(0))
        live = [s for s, row in enumerate(self.active) if row is not None]
        if not self.queue and live and len(live) <= len(self.active) // 2:
            keep = torch.tensor(live, device=self.device)
            self.cache.keep(keep)
            self.mask = self.mask.index_select(0, keep)
            self.next_token = self.next_token.index_select(0, keep)
            self.active = [self.active[s] for s in live]

    def run(self) -> None:
        with torch.inference_mode():
            self._refill()
            while any(row is not None for row in self.active):
                self._step()
                self._refill()
