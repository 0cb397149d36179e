"""Few-shot: k demonstrations from the train split as prior chat turns.

``random`` draws k examples; ``stratified`` balances them over labels (round-robin over the label set,
each label's examples in random order), then shuffles their order so no label pattern leaks into
position. Each rung has its own random stream (seed + rung name).
"""

from __future__ import annotations

from ladder.errors import LadderError
from ladder.rungs import RUNGS
from ladder.rungs.base import BuildContext, Candidate, Demo, rng_for
from ladder.spec import FewShotRungSpec, rung_name


@RUNGS.register("fewshot")
def build_fewshot(rung: FewShotRungSpec, ctx: BuildContext) -> Candidate:
    name = rung_name(rung)
    spec = ctx.spec
    if rung.k > len(ctx.train):
        raise LadderError(f"rungs[{name}].k: {rung.k} demonstrations asked, the train split has {len(ctx.train)}")
    rng = rng_for(spec.seed, name, "demos")
    if rung.selection == "random":
        chosen = rng.sample(ctx.train, rung.k)
    else:
        if spec.output.kind != "label":
            raise LadderError(f"rungs[{name}].selection: 'stratified' needs output.kind 'label'; use 'random'")
        by_label = {label: [ex for ex in ctx.train if ex.target == label] for label in spec.output.labels or []}
        for pool in by_label.values():
            rng.shuffle(pool)
        chosen = []
        while len(chosen) < rung.k and any(by_label.values()):
            for label in by_label:
                if by_label[label] and len(chosen) < rung.k:
                    chosen.append(by_label[label].pop())
        rng.shuffle(chosen)
    demos = tuple(Demo(ex.id, ex.input, ex.target) for ex in chosen)
    settings = {"k": rung.k, "selection": rung.selection}
    return Candidate(name, "fewshot", spec.prompt.instruction, spec.prompt.input_template, demos, settings)
