"""Label scoring on the transformers backend: every choice of every request by its summed log-probability.

- the prefix shared by all examples (instruction + demonstrations) is run once and its key/value cache reused for
  every batch;
- each example's own prompt tokens are computed once, and all of its candidate labels are scored in the same
  forward pass: the labels laid side by side after the prompt with a block attention mask (each label sees the
  prefix, the prompt and itself, never another label) and position ids that restart after the prompt, so every
  label is scored exactly as if it were alone;
- the output layer runs only at the positions whose next token is a label token;
- ``dtype: cascade``: every example in bf16 first, and again in fp32 where bf16's best label leads the next by less
  than ``CASCADE_MARGIN``: the labels are fp32's.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from ladder.backends.base import ChoiceScores, ScoreRequest
from ladder.errors import LadderError

# How far ahead, in nats of summed log-probability, bf16's best label must be for its choice to stand. Measured
# (bench/cascade.py, SNIPS, every split, prompt/fewshot/lora rungs, SmolLM2-135M and Gemma 3 270M: 4,158 examples),
# bf16 moved one label's score against another's by at most MEASURED_LEAD_ERROR; the margin is about twice that,
# and the cascade's labels equalled fp32's on all 4,158. An empirical bound, not a proof; and it seldom pays on
# these small models (their labels are close: 23-91% of examples went back to fp32; 0.73-1.23x fp32's speed), so
# the cascade is asked for by name (``serving.dtype: cascade``), never picked by ``auto``. docs/benchmarks.md.
MEASURED_LEAD_ERROR = 0.96
CASCADE_MARGIN = 2.0


def _lead(logprobs: list[float]) -> float:
    """How far the best label's log-probability is ahead of the next (infinite with one label)."""
    if len(logprobs) < 2:
        return float("inf")
    first, second = sorted(logprobs, reverse=True)[:2]
    return first - second


def score_choices(backend, requests: list[ScoreRequest]) -> list[ChoiceScores]:
    """``backend``: a ``TransformersBackend`` (its model, tokenizer, prefix caches, batch size and cascade)."""
    encoded: list[tuple[int, list[int], list[list[int]]]] = []
    for index, request in enumerate(requests):
        choices = [backend.hf.encode_continuation(c) for c in request.choices]
        if any(not c for c in choices):
            raise LadderError("a choice encodes to no tokens")
        ids = backend.hf.encode(request.prompt)
        backend.hf.check_fits(len(ids), max(len(c) for c in choices))
        encoded.append((index, ids, choices))
    if not backend.cascade:
        return _score(backend, requests, encoded, backend.model)
    # the cascade: every example in bf16; where its best label leads the next by less than bf16 could
    # have moved them (CASCADE_MARGIN), the example again in fp32, whose answer is the answer of record
    results = _score(backend, requests, encoded, backend.draft)
    unsure = [i for i, r in enumerate(results) if _lead(r.logprobs) < CASCADE_MARGIN]
    if unsure:
        exact = _score(
            backend, [requests[i] for i in unsure], [(k, *encoded[i][1:]) for k, i in enumerate(unsure)], backend.model
        )
        for i, scores in zip(unsure, exact):
            results[i] = scores
    backend.cascade_counts["scored"] += len(requests)
    backend.cascade_counts["exact"] += len(unsure)
    return results


def _score(backend, requests: Sequence[ScoreRequest], encoded, model) -> list[ChoiceScores]:
    results: list[ChoiceScores | None] = [None] * len(requests)
    for shared, items in backend.by_shared_prefix(requests, encoded):
        cache = backend.prefix_cache(tuple(shared), model) if shared else None
        items.sort(key=lambda it: len(it[1]) + sum(len(c) for c in it[2]))
        for start in range(0, len(items), backend.batch_size):
            batch = items[start : start + backend.batch_size]
            scored = _score_batch(backend, batch, len(shared), cache, model)
            for index, scores in zip((it[0] for it in batch), scored):
                results[index] = scores
    return results  # type: ignore[return-value]


def _score_batch(backend, batch, shared_len: int, cache, model) -> list[ChoiceScores]:
    rows_ids, rows_pos, rows_block, targets = [], [], [], []
    for b, (_, ids, choices) in enumerate(batch):
        suffix = ids[shared_len:]
        tokens, positions, blocks = list(suffix), list(range(shared_len, len(ids))), [-1] * len(suffix)
        row_targets = []
        for j, choice in enumerate(choices):
            start = len(tokens)
            tokens += choice
            positions += range(len(ids), len(ids) + len(choice))
            blocks += [j] * len(choice)
            # the token before choice token t (t=0: the prompt's last token) predicts it
            row_targets.append(
                [(b, (len(suffix) - 1) if t == 0 else start + t - 1, tok) for t, tok in enumerate(choice)]
            )
        rows_ids.append(tokens)
        rows_pos.append(positions)
        rows_block.append(blocks)
        targets.append(row_targets)
    width = max(len(r) for r in rows_ids)
    bsz = len(batch)
    pad = backend.hf.pad_token_id if backend.hf.pad_token_id is not None else 0
    input_ids = torch.full((bsz, width), pad, dtype=torch.long)
    position_ids = torch.zeros((bsz, width), dtype=torch.long)
    allowed = torch.zeros((bsz, width, shared_len + width), dtype=torch.bool)
    allowed[:, :, :shared_len] = True
    for b in range(bsz):
        n = len(rows_ids[b])
        input_ids[b, :n] = torch.tensor(rows_ids[b])
        position_ids[b, :n] = torch.tensor(rows_pos[b])
        position_ids[b, n:] = rows_pos[b][-1]
        block = torch.tensor(rows_block[b])
        causal = torch.tril(torch.ones((n, n), dtype=torch.bool))
        same = (block[None, :] == -1) | (block[None, :] == block[:, None])
        allowed[b, :n, shared_len : shared_len + n] = causal & same
        idx = torch.arange(n, width)
        allowed[b, idx, shared_len + idx] = True  # padding rows attend to themselves only (no NaN)
    dtype = next(model.parameters()).dtype
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    mask = mask[:, None].to(backend.device)

    with torch.inference_mode():
        past = None
        if cache is not None:
            past = copy.deepcopy(cache)
            past.batch_repeat_interleave(bsz)
        hidden = model.get_decoder()(
            input_ids=input_ids.to(backend.device),
            attention_mask=mask,
            position_ids=position_ids.to(backend.device),
            past_key_values=past,
            use_cache=past is not None,
        ).last_hidden_state
        flat = [t for row in targets for choice in row for t in choice]
        rows = torch.tensor([t[0] for t in flat], device=backend.device)
        cols = torch.tensor([t[1] for t in flat], device=backend.device)
        wanted = torch.tensor([t[2] for t in flat], device=backend.device)
        logits = backend.logits(hidden[rows, cols], model).float()
        token_logprobs = torch.log_softmax(logits, dim=-1).gather(1, wanted[:, None])[:, 0].cpu().tolist()
    out, k = [], 0
    for _, ids, choices in batch:
        sums = []
        for choice in choices:
            sums.append(float(sum(token_logprobs[k : k + len(choice)])))
            k += len(choice)
        out.append(ChoiceScores(sums, [len(c) for c in choices], len(ids)))
    return out
