"""Few-shot: k demonstrations from the train split as prior chat turns.

- ``random`` draws k examples;
- ``stratified`` balances them over labels (round-robin over the label set, each label's examples in
  random order), then shuffles their order so no label pattern leaks into position;
- ``similar`` gives each input the k training examples nearest to it (task embedder, cosine), the
  nearest last, closest to the question.
Each rung has its own random stream (seed + rung name).
"""

from __future__ import annotations

from collections.abc import Callable

from ladder.errors import LadderError
from ladder.rungs.base import BuildContext, Candidate, Demo, Selection, rng_for
from ladder.spec import FewShotRungSpec, rung_name

DemoPicker = Callable[[list[str]], list[tuple[Demo, ...]]]


def _demo(ex) -> Demo:
    return Demo(ex.id, ex.input, ex.target)


def static_demos(ctx: BuildContext, name: str, k: int, selection: str) -> tuple[Demo, ...]:
    spec = ctx.spec
    rng = rng_for(spec.seed, name, "demos")
    if selection == "random":
        return tuple(_demo(ex) for ex in rng.sample(ctx.train, k))
    # stratified: the spec guarantees a label output (TaskSpec rejects it otherwise)
    by_label = {label: [ex for ex in ctx.train if ex.target == label] for label in spec.output.labels or []}
    for pool in by_label.values():
        rng.shuffle(pool)
    chosen = []
    while len(chosen) < k and any(by_label.values()):
        for label in by_label:
            if by_label[label] and len(chosen) < k:
                chosen.append(by_label[label].pop())
    rng.shuffle(chosen)
    return tuple(_demo(ex) for ex in chosen)


def similar_picker(ctx: BuildContext, k: int) -> DemoPicker:
    embedder = ctx.embedder()
    pool = ctx.train
    pool_vectors = embedder.encode_cached([ex.input for ex in pool])

    def pick(inputs: list[str]) -> list[tuple[Demo, ...]]:
        sims = embedder.encode_cached(inputs) @ pool_vectors.T
        out = []
        for row in sims:
            nearest = sorted(range(len(pool)), key=lambda j: (-row[j], j))[:k]
            out.append(tuple(_demo(pool[j]) for j in reversed(nearest)))
        return out

    return pick


def demo_picker(ctx: BuildContext, name: str, k: int, selection: str) -> tuple[tuple[Demo, ...], DemoPicker | None]:
    """(static demonstrations, per-input picker or None)."""
    if k > len(ctx.train):
        raise LadderError(f"rungs[{name}]: {k} demonstrations asked, the train split has {len(ctx.train)}")
    if k == 0:
        return (), None
    if selection == "similar":
        return (), similar_picker(ctx, k)
    return static_demos(ctx, name, k, selection), None


def build_fewshot(rung: FewShotRungSpec, ctx: BuildContext) -> Candidate:
    name = rung_name(rung)
    spec = ctx.spec
    demos, picker = demo_picker(ctx, name, rung.k, rung.selection)
    selector = None
    if picker is not None:

        def selector(inputs: list[str]) -> list[Selection]:
            return [Selection(d) for d in picker(inputs)]

    settings = {"k": rung.k, "selection": rung.selection}
    return Candidate(name, "fewshot", spec.prompt.instruction, spec.prompt.input_template, demos, settings, selector)
