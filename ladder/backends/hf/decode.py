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
  being bound by reading the weights;
- **prompt-lookup drafts** (``lookup``, 4 on a CPU): a row whose last 1-3 tokens occur earlier in its prompt (its
  own input first, then the demonstrations) proposes the tokens that followed them; one pass checks every row's
  drafts and keeps those the model itself picks, so the text is the greedy text in fewer passes; where too few
  drafts are kept (short free answers) it stops drafting. Measured in ``bench/lookup.py`` (docs/benchmarks.md);
- **weights laid out once for the CPU's matmul kernel** (``packed_linears``): on a CPU in fp32 every linear
  layer and the output layer run through oneDNN with their weights reordered once per run, not packed
  again inside every call (measured on 2 AVX2 cores, 64 rows: the 576x49152 output layer 76 -> 127
  GFLOP/s, the decoder's linear layers 101-103 -> 111-122).

The decoder layers, norms, rotary embedding and output layer are the model's own modules (any decoder
whose layers take ``position_embeddings`` and a cache, as Llama, Mistral, Qwen2/3 do in transformers 5),
and the attention runs through ladder's registered attention function, so the arithmetic per token is
the same as ``generate``'s: greedy outputs equal (tested on the real model). Sampling, a 4-bit base and
models loaded without ladder's attention keep the ``generate`` path.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from ladder.backends.base import json_value_end
from ladder.backends.hardware import cpu_has_native_bf16
from ladder.backends.hf import ATTENTION

PACK_WEIGHTS = True  # packed_linears on CPU (bench/ceiling.py turns it off to measure the loop without it)
MAX_SLOTS = 64  # measured on 2 AVX2 cores: 16 -> 32 -> 64 slots, 1.04 -> 1.26 -> 1.50 us-address examples/s
LOOKUP_NGRAM = 3  # prompt-lookup drafts: the longest n-gram of a row's last tokens looked up in its prompt
# Where drafts pay (bench/lookup.py): us-address's 96-token JSON answers keep 56% of them, 1.14x at 64 rows and 1.36x
# at 16; quiz-facts' answers (24 tokens at most) keep 33-40%, 0.76x drafting throughout. So a row drafts only when it
# may answer at least LOOKUP_MIN_NEW tokens, and drafting stops for the rest of a call once LOOKUP_TRIAL drafted
# tokens were checked and fewer than LOOKUP_KEEP of them kept.
LOOKUP_MIN_NEW, LOOKUP_TRIAL, LOOKUP_KEEP = 32, 64, 0.45


@dataclass
class Row:
    """One request in flight: its prompt tokens after the shared prefix, what it generated."""

    suffix: list[int]
    max_new: int
    stops: tuple[str, ...]
    json_end: bool
    generated: list[int] = field(default_factory=list)
    ended_by_eos: bool = False
    seen: dict[tuple[int, ...], int] = field(default_factory=dict)  # n-gram -> where it last ended (suffix+generated)
    indexed: int = 0  # tokens of suffix + generated whose ending n-grams are in ``seen``


class SlotCache:
    """The key/value cache transformers' attention layers write to: per layer, a ``(slots, kv_heads, width,
    dim)`` buffer. A forward pass runs over some slots (``rows``); each of them writes its tokens' keys and
    values at its own columns (``cols``: ``(rows, tokens)``), and ``update`` returns those slots' whole
    buffers (the mask hides what they have not written). The shared prefix lives beside it, once."""

    def __init__(self, layers: int, slots: int, kv_heads: int, width: int, dim: int, dtype, device):
        shape = (slots, kv_heads, width, dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.rows: torch.Tensor | None = None  # None: every slot
        self.cols = torch.zeros((slots, 1), dtype=torch.long, device=device)

    def update(self, key, value, layer_idx, *args, **kwargs):
        k, v = self.keys[layer_idx], self.values[layer_idx]
        rows = torch.arange(k.shape[0], device=k.device) if self.rows is None else self.rows
        k[rows[:, None], :, self.cols] = key.transpose(1, 2)  # (rows, tokens, kv, dim) into their columns
        v[rows[:, None], :, self.cols] = value.transpose(1, 2)
        if self.rows is None:
            return k, v
        return k.index_select(0, rows), v.index_select(0, rows)

    def keep(self, slots: torch.Tensor) -> None:
        self.keys = [k.index_select(0, slots) for k in self.keys]
        self.values = [v.index_select(0, slots) for v in self.values]


def supported(model) -> bool:
    """The model's layers can be driven step by step here (ladder's attention function is in place)."""

    inner = getattr(model, "model", None)
    return (
        getattr(model.config, "_attn_implementation", None) == ATTENTION
        and inner is not None
        and hasattr(inner, "layers")
        and hasattr(inner, "rotary_emb")
        and hasattr(inner, "embed_tokens")
        and not getattr(model.config, "sliding_window", None)
        and not getattr(model, "is_loaded_in_4bit", False)
    )


def head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def slots_for(model, n_requests: int, width: int, prefix_len: int, dtype, floor: int) -> int:
    """Rows decoded together: as many as a quarter of the available memory holds (their key/value
    buffers and activations), at least ``floor`` (the configured batch size), at most ``MAX_SLOTS``."""
    import psutil

    config = model.config
    per_token = (
        2 * config.num_hidden_layers * config.num_key_value_heads * head_dim(config) * torch.finfo(dtype).bits // 8
    )
    per_row = per_token * (width + prefix_len) + 4 * config.vocab_size * 4  # + one row of fp32 logits, softmaxed
    fit = int(psutil.virtual_memory().available * 0.25 // max(per_row, 1))
    return max(1, min(n_requests, max(floor, min(fit, MAX_SLOTS))))


def _packed_forward(packed, bias, x):
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


@contextlib.contextmanager
def packed_linears(modules):
    """While inside, every ``nn.Linear`` among ``modules`` (and their children) computes with its weight
    reordered once into oneDNN's blocked layout, instead of MKL packing it again inside every call. CPU,
    oneDNN available, fp32 weights, or bf16 weights on a processor with native bf16 (there the products
    are bit-identical to ``F.linear``'s and ran 1.0-1.9x faster: 16/64 rows, 309-409 GFLOP/s against
    fp32's 181-214 packed, avx512_bf16 EPYC); otherwise nothing changes. The reordered copies (as large as
    the weights) live only inside. fp32 products are the same up to the order of additions (as between
    batch sizes)."""
    linears = [m for module in modules for m in module.modules() if type(m) is torch.nn.Linear]
    dtypes = {m.weight.dtype for m in linears}
    usable = (
        PACK_WEIGHTS
        and linears
        and torch.backends.mkldnn.is_available()
        and all(m.weight.device.type == "cpu" for m in linears)
        and (dtypes == {torch.float32} or (dtypes == {torch.bfloat16} and cpu_has_native_bf16()))
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    )
    if not usable:
        yield
        return
    try:
        for m in linears:
            packed = torch.ops.mkldnn._reorder_linear_weight(m.weight.detach())
            bias = None if m.bias is None else m.bias.detach()
            m.forward = lambda x, packed=packed, bias=bias: _packed_forward(packed, bias, x)
        yield
    finally:
        for m in linears:
            m.__dict__.pop("forward", None)


def ngram_index(tokens: list[int], start: int, end: int, index: dict[tuple[int, ...], int]) -> None:
    """Record in ``index`` every n-gram (n <= LOOKUP_NGRAM) of ``tokens`` that ends at a position in [start, end),
    mapped to the position after it (a later occurrence replaces an earlier one)."""
    for e in range(start, end):
        for n in range(1, min(LOOKUP_NGRAM, e + 1) + 1):
            index[tuple(tokens[e - n + 1 : e + 1])] = e + 1


def propose(row: Row, prefix: list[int], prefix_index: dict[tuple[int, ...], int], room: int) -> list[int]:
    """A prompt-lookup draft of at most ``room`` tokens: what followed the latest earlier occurrence of the row's last
    n-gram (longest n first), in its own prompt and answer, else in the shared ``prefix`` (``prefix_index`` its
    n-grams, ``ngram_index``)."""
    if room <= 0:
        return []
    own = row.suffix + row.generated
    ngram_index(own, row.indexed, len(own) - 1, row.seen)  # every n-gram ending before the last token
    row.indexed = max(row.indexed, len(own) - 1)
    for n in range(min(LOOKUP_NGRAM, len(own)), 0, -1):
        tail = tuple(own[-n:])
        if tail in row.seen:
            return own[row.seen[tail] : row.seen[tail] + room]
        if tail in prefix_index:
            return prefix[prefix_index[tail] : prefix_index[tail] + room]
    return []


class Decoder:
    """``lookup`` > 0: prompt-lookup drafts (Saxena 2023): a row whose last tokens also occur earlier in its prompt or
    answer proposes up to ``lookup`` tokens that followed them there; one forward pass checks them all, and the row
    keeps the drafts the model itself predicts plus the model's next token, so the text is the greedy text."""

    def __init__(self, backend, prefix: list[int], rows: list[Row], eos: list[int], slots: int, lookup: int = 0):
        self.backend = backend
        self.model = backend.model
        self.inner = self.model.model
        self.tokenizer = backend.tokenizer
        self.device = backend.device
        self.eos = set(eos)
        self.queue = list(rows)
        self.n_prefix = len(prefix)
        self.lookup = lookup
        self.drafted = self.accepted = self.passes = 0  # drafts proposed and kept; forward passes of the steps
        self.prefix_ids, self.prefix_index = list(prefix), {}
        if lookup:
            ngram_index(self.prefix_ids, 0, len(prefix), self.prefix_index)
        self.width = max(len(r.suffix) + r.max_new for r in rows) + lookup  # room past the end for drafts
        config = self.model.config
        self.layers = self.inner.layers[: config.num_hidden_layers]
        self.prefix = [None] * len(self.layers)
        if prefix:
            cache = backend.prefix_cache(tuple(prefix))
            self.prefix = [(layer.keys[0], layer.values[0]) for layer in cache.layers[: len(self.layers)]]  # (kv, P, d)
        self.dtype = next(self.model.parameters()).dtype
        self.blocked = torch.finfo(self.dtype).min  # the mask's value where a token may not look
        self.cache = SlotCache(
            len(self.layers), slots, config.num_key_value_heads, self.width, head_dim(config), self.dtype, self.device
        )
        self.mask = torch.full((slots, 1, 1, self.width), self.blocked, dtype=self.dtype, device=self.device)
        self.active: list[Row | None] = [None] * slots
        self.next_token = torch.zeros(slots, dtype=torch.long, device=self.device)

    def _forward(self, tokens: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The model's own layers over ``tokens`` (rows, L) at ``positions``; the last hidden states."""
        hidden = self.inner.embed_tokens(tokens)
        embeddings = self.inner.rotary_emb(hidden, position_ids=positions)
        for i, layer in enumerate(self.layers):
            hidden = layer(
                hidden,
                attention_mask=mask,
                position_embeddings=embeddings,
                position_ids=positions,
                past_key_values=self.cache,
                use_cache=True,
                ladder_prefix=self.prefix[i],
            )
        return self.inner.norm(hidden)

    # -- prefill: new prompts into free slots, together ---------------------------------------------
    def _fill(self, slots: list[int], rows: list[Row]) -> None:
        length = max(len(r.suffix) for r in rows)
        tokens = torch.zeros((len(rows), length), dtype=torch.long, device=self.device)
        lengths = torch.tensor([len(r.suffix) for r in rows], device=self.device)
        for b, row in enumerate(rows):
            tokens[b, : len(row.suffix)] = torch.tensor(row.suffix)
        cols = torch.arange(length, device=self.device)
        # token i sees the row's tokens up to i; a padding token sees itself only (no row without a key)
        allowed = (cols[None, None, :] <= cols[None, :, None]) & (cols[None, None, :] < lengths[:, None, None])
        allowed |= torch.eye(length, dtype=torch.bool, device=self.device)[None]
        mask = torch.full((len(rows), 1, length, self.width), self.blocked, dtype=self.dtype, device=self.device)
        mask[:, 0, :, :length].masked_fill_(allowed, 0)
        index = torch.tensor(slots, device=self.device)
        self.cache.rows, self.cache.cols = index, cols[None].expand(len(rows), -1)
        hidden = self._forward(tokens, (self.n_prefix + cols)[None].expand(len(rows), -1), mask)
        self.cache.rows = None
        last = hidden[torch.arange(len(rows), device=self.device), lengths - 1]
        first = self.backend.logits(last).argmax(-1).tolist()
        self.mask[index] = self.blocked
        for b, (slot, row) in enumerate(zip(slots, rows)):
            self.mask[slot, 0, 0, : len(row.suffix)] = 0
            self.active[slot] = row
            self.steps[slot] = len(row.suffix)
            self._take(slot, first[b])

    # -- one token for every slot -------------------------------------------------------------------
    def _step(self) -> None:
        if self.drafted >= LOOKUP_TRIAL and self.accepted < LOOKUP_KEEP * self.drafted:
            self.lookup = 0  # the drafts do not pay here: the plain step from now on
        if self.lookup:  # every live row in one pass, its drafts after its next token (measured faster than a pass
            # for the rows with drafts and another for the rest: 1.15x against 1.09x at 64 rows, 1.36x against 1.19x at 16)
            drafts = {slot: self._draft(row) for slot, row in enumerate(self.active) if row is not None}
            if any(drafts.values()):
                self._verify(list(drafts), list(drafts.values()))
                return
        self.passes += 1
        cols = torch.tensor(self.steps, device=self.device)[:, None].clamp_(max=self.width - 1)
        self.cache.cols = cols
        rows = torch.arange(len(self.active), device=self.device)
        self.mask[rows, 0, 0, cols[:, 0]] = 0  # the column this step writes becomes visible
        hidden = self._forward(self.next_token[:, None], self.n_prefix + cols, self.mask)
        tokens = self.backend.logits(hidden[:, 0]).argmax(-1).tolist()
        for slot, token in enumerate(tokens):
            if self.active[slot] is not None:
                self.steps[slot] += 1
                self._take(slot, token)

    def _draft(self, row: Row | None) -> list[int]:
        if row is None or row.max_new < LOOKUP_MIN_NEW:
            return []
        return propose(row, self.prefix_ids, self.prefix_index, min(self.lookup, row.max_new - len(row.generated) - 1))

    def _verify(self, slots: list[int], drafts: list[list[int]]) -> None:
        """The next token and the drafts of the rows in ``slots`` in one forward pass (``(rows, 1 + longest draft)``,
        each position seeing the row's tokens before it); a row keeps its drafts up to the first the model would not
        have chosen, then the model's own token there. Keys and values of rejected drafts stay masked (overwritten
        later)."""
        self.passes += 1
        index = torch.tensor(slots, device=self.device)
        length = 1 + max(len(d) for d in drafts)
        tokens = torch.zeros((len(slots), length), dtype=torch.long, device=self.device)
        tokens[:, 0] = self.next_token[index]
        for b, draft in enumerate(drafts):
            if draft:
                tokens[b, 1 : 1 + len(draft)] = torch.tensor(draft)
        steps = torch.tensor([self.steps[s] for s in slots], device=self.device)
        cols = (steps[:, None] + torch.arange(length, device=self.device)).clamp_(max=self.width - 1)
        rows = torch.arange(len(slots), device=self.device)[:, None]
        mask = self.mask[index].expand(-1, -1, length, -1).clone()
        for j in range(length):  # position j sees the columns of positions 0..j
            mask[rows, 0, j, cols[:, : j + 1]] = 0
        self.cache.rows, self.cache.cols = index, cols
        hidden = self._forward(tokens, self.n_prefix + cols, mask)
        self.cache.rows = None
        predicted = self.backend.logits(hidden).argmax(-1).tolist()
        for slot, draft, chosen in zip(slots, drafts, predicted):
            kept = 0
            while kept < len(draft) and draft[kept] == chosen[kept]:
                kept += 1
            self.drafted, self.accepted = self.drafted + len(draft), self.accepted + kept
            for j in range(kept + 1):  # the inputs at these columns were the row's real tokens: theirs stay visible
                self.mask[slot, 0, 0, self.steps[slot]] = 0
                self.steps[slot] += 1
                self._take(slot, chosen[j])
                if self.active[slot] is None:
                    break

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
        while self.queue:
            free = [s for s, row in enumerate(self.active) if row is None]
            if not free:
                break
            taken, self.queue = self.queue[: len(free)], self.queue[len(free) :]
            self._fill(free[: len(taken)], taken)
        live = [s for s, row in enumerate(self.active) if row is not None]
        if not self.queue and live and len(live) <= len(self.active) // 2:
            keep = torch.tensor(live, device=self.device)
            self.cache.keep(keep)
            self.mask = self.mask.index_select(0, keep)
            self.next_token = self.next_token.index_select(0, keep)
            self.active = [self.active[s] for s in live]
            self.steps = [self.steps[s] for s in live]

    def run(self) -> None:
        self.steps = [0] * len(self.active)  # per slot: the column its next token goes to
        with torch.inference_mode(), packed_linears([*self.layers, self.model.get_output_embeddings()]):
            self._refill()
            while any(row is not None for row in self.active):
                self._step()
                self._refill()
