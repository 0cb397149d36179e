"""``policy.sequential``: a rung's dev split measured in chunks, in order, until an anytime-valid confidence
sequence decides (``scoring/sequential.py``); ``ladder resolve`` walks further with the same chunk."""

from __future__ import annotations

SEQUENTIAL_CHUNK = 16  # dev examples evaluated between looks (policy.sequential)


def sequential_dev(measure, dev, metric: str, threshold: float, alpha: float, say, name: str):
    """policy.sequential: dev in chunks, in order, until the confidence sequence decides (or dev runs out). Returns
    the outputs and records of the examples evaluated (whole chunks) and the sequence's decision."""
    from ladder.run.evaluate import SplitOutputs
    from ladder.scoring.sequential import decide_sequentially

    parts, records = [], []
    decision = decide_sequentially([], threshold, alpha)
    for first in range(0, len(dev), SEQUENTIAL_CHUNK):
        outputs, chunk = measure(dev[first : first + SEQUENTIAL_CHUNK])
        parts.append(outputs)
        records += chunk
        decision = decide_sequentially([r.scores[metric] for r in records], threshold, alpha)
        if decision.verdict != "undecided":
            say(
                f"[{name}] dev: the confidence sequence decided ({decision.verdict}) after {decision.n} of {len(dev)} "
                "examples"
            )
            break
    merged = SplitOutputs(
        outputs=[o for p in parts for o in p.outputs],
        prompt_hashes=[h for p in parts for h in p.prompt_hashes],
        wall_s=sum(p.wall_s for p in parts),
        cached=all(p.cached for p in parts),
        key="+".join(p.key for p in parts),
        selections=[x for p in parts for x in p.selections],
        selection_s=sum(p.selection_s for p in parts),
        prefix_tokens=min((p.prefix_tokens for p in parts), default=0),
    )
    return merged, records, decision
