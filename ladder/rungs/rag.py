"""RAG: the top-k corpus chunks for each input, placed before the question under a token budget.

Passages go in rank order while they fit the budget (in the evaluated model's tokens); a passage that
does not fit whole is cut to what fits, and nothing after it is added, so the prompt never overflows.
Demonstrations (``fewshot_k``) can be combined with retrieval: each demonstration shows the passages
retrieved for its own question, so the model sees how context is used (demonstrations without context
teach a small model to ignore it, or to copy a demonstration's answer).
"""

from __future__ import annotations

from dataclasses import replace

from ladder.rungs.base import BuildContext, Candidate, Demo, Passage, Selection
from ladder.rungs.fewshot import demo_picker
from ladder.spec import RagRungSpec, rung_name


def fit_budget(texts: list[tuple[str, str]], budget: int, count) -> tuple[Passage, ...]:
    """Keep (id, text) passages in order within `budget` tokens (counted with the model's tokenizer)."""
    kept: list[Passage] = []
    used = 0
    for chunk_id, text in texts:
        cost = count(f"[{len(kept) + 1}] {text}\n\n")
        if used + cost <= budget:
            kept.append(Passage(chunk_id, text))
            used += cost
            continue
        room = budget - used
        if room > 8:  # cut the passage to what fits, at a word boundary (binary search on words)
            words = text.split()
            lo, hi = 0, len(words)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if count(f"[{len(kept) + 1}] {' '.join(words[:mid])}\n\n") <= room:
                    lo = mid
                else:
                    hi = mid - 1
            if lo:
                kept.append(Passage(chunk_id, " ".join(words[:lo])))
        break
    return tuple(kept)


def build_rag(rung: RagRungSpec, ctx: BuildContext) -> Candidate:
    name = rung_name(rung)
    spec = ctx.spec
    retriever = ctx.retriever()
    demos, picker = demo_picker(ctx, name, rung.fewshot_k, rung.selection)

    def fit(found) -> tuple[Passage, ...]:
        return fit_budget([(h.chunk.id, h.chunk.text) for h in found], rung.context_tokens, ctx.count_tokens)

    def with_context(groups: list[tuple[Demo, ...]]) -> list[tuple[Demo, ...]]:
        """Each demonstration with the passages retrieved for its own question (one search for all)."""
        unique = list({d.input: None for group in groups for d in group})
        found = dict(zip(unique, retriever.search(unique, rung.top_k, rung.mode))) if unique else {}
        return [tuple(replace(d, passages=fit(found[d.input])) for d in group) for group in groups]

    (demos,) = with_context([demos])

    def selector(inputs: list[str]) -> list[Selection]:
        hits = retriever.search(inputs, rung.top_k, rung.mode)
        per_input = with_context(picker(inputs)) if picker is not None else [demos] * len(inputs)
        return [
            Selection(chosen, fit(found), tuple(h.chunk.id for h in found)) for found, chosen in zip(hits, per_input)
        ]

    info = retriever.info
    settings = {
        "top_k": rung.top_k,
        "mode": rung.mode,
        "context_tokens": rung.context_tokens,
        "fewshot_k": rung.fewshot_k,
        "selection": rung.selection,
        "index": info.index_kind,
        "chunks": info.chunks,
        "index_key": info.key[:16],
        "index_cached": info.cached,
        "index_s": round(info.seconds, 3),
    }
    return Candidate(
        name, "rag", spec.prompt.instruction, spec.prompt.input_template, demos, settings, selector, top_k=rung.top_k
    )
