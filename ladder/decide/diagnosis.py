"""What kind of gap is left after the prompt-side rungs (prompt, few-shot, retrieval), with its evidence.

- behaviour / format: outputs outside the label set or not parsing, a large gap between the lenient score
  (the answer extracted from the output) and the strict one, a significant few-shot gain: demonstrations
  already move the model, so training on the train split (lora) is likely to move it further;
- knowledge: a significant retrieval gain, answers right when retrieval found the gold document and wrong
  when it did not, many examples wrong whatever the demonstrations that retrieval then fixes (the
  "unknown" share, after SliCK, Gekhman et al. 2024): retrieval, not fine-tuning, is the lever, and
  fine-tuning on facts the model does not know teaches it to make facts up.

Pure: reads the record's rungs (and the examples' gold documents); imports no model code.
"""

from __future__ import annotations

from collections.abc import Sequence

from ladder.data.corpus import doc_of
from ladder.metrics import extractor, scorers
from ladder.record import Diagnosis, Evidence, ExampleRecord, PairedComparison, Recommendation, RungResult
from ladder.record.run import GapKind, PointsTo
from ladder.scoring.format import interval_text, p_text
from ladder.spec import TaskSpec

PROMPT_SIDE = ("prompt", "fewshot", "rag")
INVALID = 0.10  # share of outputs not of the declared form
LENIENT = 0.05  # lenient minus strict, target metric
RECALL = 0.15  # right-when-found minus right-when-missed
UNKNOWN_FIXED = 0.30  # share of the unknown examples that retrieval answers
UNKNOWN_TEXT = 0.50  # free-text answers wrong whatever the demonstrations, no retrieval measured
RIGHT = 0.5  # a graded score at or above this counts as right


def _dev(rung: RungResult) -> list[ExampleRecord]:
    return [r for r in rung.examples if r.split == "dev"]


def _comparison(rung: RungResult, baseline: str, metric: str) -> PairedComparison | None:
    return next((c for c in rung.splits["dev"].comparisons if c.baseline == baseline and c.metric == metric), None)


def _p(p: float) -> str:
    return p_text(p)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def diagnose(spec: TaskSpec, rungs: list[RungResult], gold_docs: dict[str, str], alpha: float) -> Diagnosis | None:
    side = [r for r in rungs if r.type in PROMPT_SIDE]
    if not side:
        return None
    metric = spec.target.metric
    best = max(side, key=lambda r: (r.splits["dev"].deciding(metric).mean, -side.index(r)))
    mean = best.splits["dev"].deciding(metric).mean
    gap = spec.target.threshold - mean
    if best.decision.status == "meets":
        return Diagnosis(
            kind="none", best_rung=best.name, gap=gap, advice=f"{best.name} meets the target: no gap to diagnose"
        )
    evidence: list[Evidence] = []

    invalid = best.splits["dev"].invalid_share
    loglik = spec.output.kind == "label" and spec.generation.label_scoring == "loglik"
    if not loglik and spec.output.kind != "text":
        what = "outside the label set" if spec.output.kind == "label" else "not JSON of the target's kind"
        evidence.append(
            Evidence(
                signal="invalid_outputs",
                points_to="behaviour" if invalid >= INVALID else "neither",
                value=invalid,
                text=f"{invalid:.0%} of {best.name}'s dev outputs are {what}",
            )
        )

    step = {"label": "first_label", "json": "first_json"}.get(spec.output.kind)
    if step is not None and not loglik:
        extract = extractor(step, spec.output.labels)
        scorer = scorers(spec)[metric]
        records = _dev(best)
        strict = _mean([r.scores[metric] for r in records])
        lenient = _mean([scorer.score(extract(r.output), (r.target,)) for r in records])
        evidence.append(
            Evidence(
                signal="lenient_gap",
                points_to="behaviour" if lenient - strict >= LENIENT else "neither",
                value=lenient - strict,
                text=f"{best.name}'s dev {metric} is {strict:.3f} as written and {lenient:.3f} with the answer extracted "
                f"({'the first label mentioned' if spec.output.kind == 'label' else 'the first JSON in the output'})",
            )
        )

    def gain(signal: str, rung: RungResult, baseline: RungResult, points_to: PointsTo, meaning: str) -> None:
        cmp = _comparison(rung, baseline.name, metric)
        if cmp is None:
            return
        gained = cmp.delta > 0 and cmp.p_value < alpha
        evidence.append(
            Evidence(
                signal=signal,
                points_to=points_to if gained else "neither",
                value=cmp.delta,
                text=f"{rung.name} vs {baseline.name}: {cmp.delta:+.3f} {interval_text(cmp.low, cmp.high, signed=True)} on dev "
                f"({cmp.method}, {_p(cmp.p_value)}): {meaning.format('do' if gained else 'do not measurably')}",
            )
        )

    by_type = {r.type: r for r in side}
    if "fewshot" in by_type and "prompt" in by_type:
        gain(
            "fewshot_gain",
            by_type["fewshot"],
            by_type["prompt"],
            "behaviour",
            "demonstrations {} change what the model answers",
        )
    rag = by_type.get("rag")
    plain = [r for r in side if r.type != "rag"]
    if rag is not None and plain:
        before = max(plain, key=lambda r: r.splits["dev"].metrics[metric].mean)
        gain("rag_gain", rag, before, "knowledge", "retrieved passages {} supply what the model lacks")
        found: list[bool] = []
        missed: list[bool] = []
        for r in _dev(rag):
            gold = gold_docs.get(r.id)
            if gold is not None and r.retrieved is not None:
                (found if gold in {doc_of(c) for c in r.retrieved} else missed).append(r.scores[metric] >= RIGHT)
        if len(found) >= 5 and len(missed) >= 5:
            diff = _mean(found) - _mean(missed)
            evidence.append(
                Evidence(
                    signal="recall_follows",
                    points_to="knowledge" if diff >= RECALL else "neither",
                    value=diff,
                    text=f"with retrieval, {_mean(found):.0%} of dev answers are right when the gold document was retrieved "
                    f"({len(found)}) and {_mean(missed):.0%} when it was not ({len(missed)})",
                )
            )

    if plain:
        right = {
            name: {r.id: r.scores[metric] >= RIGHT for r in _dev(rung)} for name, rung in ((p.name, p) for p in plain)
        }
        ids = set.intersection(*(set(v) for v in right.values()))
        unknown = sorted(i for i in ids if not any(v[i] for v in right.values()))
        share = len(unknown) / len(ids) if ids else 0.0
        names = " and ".join(right)
        text = f"{share:.0%} of dev examples are wrong under {names} (without retrieval, whatever the demonstrations)"
        points: PointsTo = "neither"
        fixed = None
        if rag is not None and unknown:
            rag_right = {r.id: r.scores[metric] >= RIGHT for r in _dev(rag)}
            fixed = _mean([rag_right[i] for i in unknown if i in rag_right])
            text += f"; retrieval answers {fixed:.0%} of them"
            points = "knowledge" if fixed >= UNKNOWN_FIXED else "neither"
        elif rag is None and spec.output.kind == "text" and share >= UNKNOWN_TEXT:
            points = "knowledge"
            text += ": free-text answers the model does not know"
        evidence.append(Evidence(signal="unknown_share", points_to=points, value=share, text=text))

    behaviour = [e for e in evidence if e.points_to == "behaviour"]
    knowledge = [e for e in evidence if e.points_to == "knowledge"]
    kind: GapKind
    if behaviour and knowledge:
        kind, advice = (
            "mixed",
            (
                "retrieval supplies missing facts and fine-tuning (lora) the form of the answers; "
                "keep retrieval in the prompt of a trained rung"
            ),
        )
    elif behaviour:
        kind, advice = (
            "behaviour",
            (
                "demonstrations or extraction already move the score, so training on the train "
                "split (lora) is likely to close more of it"
            ),
        )
    elif knowledge:
        kind, advice = (
            "knowledge",
            (
                "retrieval, not fine-tuning, is the lever (a better corpus, "
                "recall@k, more passages); fine-tuning on facts the model does not know teaches it "
                "to make them up (Gekhman et al. 2024)"
            ),
        )
    else:
        kind, advice = "unclear", "no signal says which kind of gap this is: the next rung is an experiment"
    return Diagnosis(kind=kind, best_rung=best.name, gap=gap, evidence=evidence, advice=advice)


def gap_kind(kind: str, bold: bool = False) -> str:
    """The diagnosis as words after "the gap (after RUNG)": "looks like behaviour", "is of no clear kind"."""
    words = {"mixed": "both behaviour and knowledge", "unclear": "of no clear kind"}.get(kind, kind)
    if bold:
        words = f"**{words}**"
    return f"is {words}" if kind == "unclear" else f"looks like {words}"


def advise(recommendation: Recommendation, diagnosis: Diagnosis | None, trained: bool = False) -> Recommendation:
    """The recommendation with the diagnosis in it: one reason, and where no rung meets the target and the next
    rung is the first trained one (``trained``: one was measured already), what the diagnosis says of it."""
    if diagnosis is None or diagnosis.kind == "none":
        return recommendation
    signals = "; ".join(e.text for e in diagnosis.evidence if e.points_to != "neither") or "no signal either way"
    reasons = [*recommendation.reasons, f"the gap after {diagnosis.best_rung} {gap_kind(diagnosis.kind)}: {signals}"]
    summary = recommendation.summary
    if trained:
        pass  # a trained rung was measured: the prompt-side evidence no longer predicts the next one
    elif (
        not recommendation.met
        and diagnosis.kind == "knowledge"
        and recommendation.next_rung in ("lora", "preference", "full")
    ):
        summary += (
            f"; but the gap looks like missing knowledge, which {recommendation.next_rung} is unlikely to "
            "close: improve retrieval first"
        )
    elif (
        not recommendation.met
        and diagnosis.kind in ("behaviour", "mixed")
        and recommendation.next_rung in ("lora", "preference", "full")
    ):
        summary += f"; the gap {gap_kind(diagnosis.kind)}, which {recommendation.next_rung} is likely to help with"
    return recommendation.model_copy(update={"summary": summary, "reasons": reasons})
