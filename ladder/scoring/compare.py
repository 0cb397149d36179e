"""From model outputs to what the policy and the gate read: per-example scores, split summaries with
intervals and per-call latencies, and paired comparisons on the same example ids.

``assess`` and ``gate`` share ``compare_by_id``: the same pairing, the same tests, the same record type.
Imports no model code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from ladder.data.corpus import doc_of
from ladder.errors import LadderError
from ladder.metrics import Scorer, valid_output
from ladder.record import Estimate, ExampleRecord, JudgeVerdict, PairedComparison, RungResult, SplitResult
from ladder.scoring.stats import estimate, paired

if TYPE_CHECKING:
    from ladder.data.splits import Example
    from ladder.run.evaluate import SplitOutputs
    from ladder.spec import OutputSpec


def score_examples(
    split_outputs: SplitOutputs,
    examples: list[Example],
    metrics: dict[str, Scorer],
    split: str,
    static_demos: tuple[Any, ...],
    output: OutputSpec,
    judged: dict[str, list[list[JudgeVerdict]]] | None = None,
) -> list[ExampleRecord]:
    """One record per example: its output(s), a score per metric (the mean over samples, if several),
    and how many answers were not of the declared form. ``judged``: the judge metrics' scores, graded by the
    judge step (metric -> per example, a score per answer)."""
    records = []
    for i, (ex, out, prompt_hash, sel) in enumerate(
        zip(examples, split_outputs.outputs, split_outputs.prompt_hashes, split_outputs.selections)
    ):
        answers = out.samples or [out.output]
        scores = {
            m: sum(v.score for v in judged[m][i]) / len(judged[m][i])
            if s.judge is not None and judged is not None
            else sum(s.score(a, ex.references) for a in answers) / len(answers)
            for m, s in metrics.items()
        }
        means = None
        if out.label_logprobs is not None and out.label_token_counts is not None:
            means = {k: v / max(1, out.label_token_counts[k]) for k, v in out.label_logprobs.items()}
        records.append(
            ExampleRecord(
                id=ex.id,
                split=split,  # type: ignore[arg-type]
                prompt_hash=prompt_hash,
                prompt_tokens=out.prompt_tokens,
                completion_tokens=out.completion_tokens,
                output=out.output,
                target=ex.target,
                label_logprobs=out.label_logprobs,
                label_logprob_means=means,
                scores=scores,
                demo_ids=None if sel.demos == static_demos else [d.id for d in sel.demos],
                retrieved=list(sel.retrieved) if sel.retrieved is not None else None,
                passages=len(sel.passages) if sel.retrieved is not None else None,
                latency_s=out.latency_s,
                samples=out.samples,
                invalid=sum(not valid_output(a, output.kind, output.labels, ex.target) for a in answers),
                judge_invalid={m: sum(v.invalid for v in per[i]) for m, per in judged.items()} if judged else None,
            )
        )
    return records


def merge_repeats(repeats: list[list[ExampleRecord]]) -> list[ExampleRecord]:
    """One record per example from K independent evaluations (same examples, same order): the first repeat's
    record, with every repeat's scores averaged (the example stays the unit: intervals and gates cluster by it),
    and the other repeats' answers and scores kept."""
    first, rest = repeats[0], repeats[1:]
    if not rest:
        return first
    merged = []
    for i, record in enumerate(first):
        others = [r[i] for r in rest]
        assert all(o.id == record.id for o in others)
        every = [record.scores] + [o.scores for o in others]
        merged.append(
            record.model_copy(
                update={
                    "scores": {m: sum(s[m] for s in every) / len(every) for m in record.scores},
                    "repeat_outputs": [o.output for o in others],
                    "repeat_scores": [o.scores for o in others],
                }
            )
        )
    return merged


def flakiness(records: list[ExampleRecord]) -> dict[str, float]:
    """Per metric, the share of examples whose score was not the same in every repeat (empty: one repeat)."""
    repeated = [r for r in records if r.repeat_scores]
    if not repeated:
        return {}

    def changed(r: ExampleRecord, metric: str) -> bool:
        values = {s[metric] for s in r.repeat_scores or []}
        # the mean over all K (the first repeat included) equals the others' one value only when none changed
        return len(values) > 1 or abs(next(iter(values)) - r.scores[metric]) > 1e-9

    return {m: sum(changed(r, m) for r in repeated) / len(repeated) for m in repeated[0].scores}


def is_binary(binary: bool, scores: Iterable[float]) -> bool:
    """Wilson / McNemar apply to yes/no scores: a binary metric whose scores are all 0 or 1 (a mean over
    several samples is not, and gets the bootstrap)."""
    return binary and all(s in (0.0, 1.0) for s in scores)


def measured_binary(result: SplitResult, metric: str) -> bool:
    """Whether a recorded split's metric was measured as yes/no (its interval is Wilson's): what the gate
    and the comparison report read, so a record needs no metric plugin to be compared."""
    return result.metrics[metric].method == "wilson"


def _retrieval_scores(
    records: list[ExampleRecord], examples: list[Example], k: int | None, seed: int
) -> dict[str, Estimate]:
    """recall@k (the gold document among the top-k chunks' documents) and MRR@k, where the data names it."""
    pairs = [(r, ex) for r, ex in zip(records, examples) if r.retrieved is not None and ex.doc_id is not None]
    if not pairs or not k:
        return {}
    recall, rr = [], []
    for record, ex in pairs:
        docs = [doc_of(c) for c in record.retrieved or []]
        rank = docs.index(ex.doc_id) + 1 if ex.doc_id in docs else None
        recall.append(1.0 if rank else 0.0)
        rr.append(1.0 / rank if rank else 0.0)
    return {f"recall@{k}": estimate(recall, True, seed=seed), f"mrr@{k}": estimate(rr, False, seed=seed)}


def summarize_split(
    records: list[ExampleRecord],
    split_outputs: SplitOutputs,
    examples: list[Example],
    metrics: dict[str, Scorer],
    seed: int,
    top_k: int | None,
) -> SplitResult:
    n = len(records)
    summaries = {}
    for m, scorer in metrics.items():
        scores = [r.scores[m] for r in records]
        summaries[m] = estimate(scores, is_binary(scorer.binary, scores), seed=seed)
    wall = split_outputs.wall_s + split_outputs.selection_s
    per_call_selection = split_outputs.selection_s / n if n else 0.0
    latencies = np.asarray([r.latency_s + per_call_selection for r in records] or [0.0])
    return SplitResult(
        n=n,
        metrics=summaries,
        wall_s=split_outputs.wall_s,
        selection_s=split_outputs.selection_s,
        retrieval=_retrieval_scores(records, examples, top_k, seed),
        latency_s_per_example=wall / n if n else 0.0,
        latency_p50_s=float(np.quantile(latencies, 0.5)),
        latency_p95_s=float(np.quantile(latencies, 0.95)),
        examples_per_s=n / wall if wall > 0 else 0.0,
        prompt_tokens_per_call=sum(r.prompt_tokens for r in records) / n if n else 0.0,
        completion_tokens_per_call=sum(r.completion_tokens for r in records) / n if n else 0.0,
        cached=split_outputs.cached,
        cache_key=split_outputs.key,
        invalid_share=sum(r.invalid / len(r.samples or [r.output]) for r in records) / n if n else 0.0,
        shared_prefix_tokens=split_outputs.prefix_tokens,
        scored_tokens_per_call=(
            sum(sum((o.label_token_counts or {}).values()) for o in split_outputs.outputs) / n if n else 0.0
        ),
    )


def compare_by_id(
    baseline: dict[str, float], candidate: dict[str, float], metric: str, name: str, seed: int, binary: bool
) -> PairedComparison:
    """Paired comparison of candidate against baseline on the same example ids (baseline's order).
    The ids must be the same set: a comparison on different examples is not paired."""
    if set(baseline) != set(candidate):
        missing = sorted(set(baseline) - set(candidate))
        extra = sorted(set(candidate) - set(baseline))
        detail = "; ".join(
            part
            for part in (
                f"{len(missing)} baseline id(s) missing, e.g. {missing[0]!r}" if missing else "",
                f"{len(extra)} id(s) not in the baseline, e.g. {extra[0]!r}" if extra else "",
            )
            if part
        )
        raise LadderError(f"{metric}: not the same examples as {name!r} ({detail})")
    ids = list(baseline)
    a, b = [baseline[i] for i in ids], [candidate[i] for i in ids]
    cmp = paired(a, b, is_binary(binary, a + b), seed)
    return cmp.model_copy(update={"baseline": name, "metric": metric})


def split_scores(examples: list[ExampleRecord], split: str, metric: str) -> dict[str, float]:
    return {r.id: r.scores[metric] for r in examples if r.split == split}


def compare_with_earlier(
    examples: list[ExampleRecord],
    splits: dict[str, SplitResult],
    earlier: list[RungResult],
    metrics: dict[str, Scorer],
    seed: int,
    common: bool = False,
) -> dict[str, SplitResult]:
    """The split results with paired comparisons against every earlier rung measured on the same
    examples, every metric, dev and test: the policy reads dev, the report shows both. ``common``
    (policy.sequential, where each rung stops at its own number of dev examples): pair on the examples both
    measured."""
    out = {}
    for split, result in splits.items():
        comparisons = []
        for previous in earlier:
            for m, scorer in metrics.items():
                mine, theirs = split_scores(examples, split, m), split_scores(previous.examples, split, m)
                if common:
                    shared = [i for i in theirs if i in mine]
                    mine, theirs = {i: mine[i] for i in shared}, {i: theirs[i] for i in shared}
                if not mine or set(mine) != set(theirs):
                    continue  # not the same examples (e.g. another --limit): not comparable
                comparisons.append(compare_by_id(theirs, mine, m, previous.name, seed, scorer.binary))
        out[split] = result.model_copy(update={"comparisons": comparisons})
    return out
