"""Data checks from what the caller measured with the task's model (no model code here): examples the
tokenizer would truncate, and suspected label errors from class probabilities (cleanlab's confident learning)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from ladder.data.checks import check, ref
from ladder.data.report import DataCheck, DataFinding

if TYPE_CHECKING:
    import numpy as np  # imported where the arithmetic runs: loading the checks costs nothing

    from ladder.data.splits import Example


def truncation_check(
    rungs: Iterable[tuple[str, int]], examples: list[Example], length: Callable[[Example], int]
) -> DataCheck:
    """Train and dev examples (prompt + answer, in model tokens) longer than a trained rung's max_seq_len:
    training drops their prompt's first tokens."""
    rungs = list(rungs)
    lengths = {ref(ex): length(ex) for ex in examples} if rungs else {}
    findings = []
    parts = []
    for name, max_len in rungs:
        over = [ex for ex in examples if lengths[ref(ex)] > max_len]
        parts.append(f"{name} (max_seq_len {max_len}): {len(over)} of {len(examples)}")
        findings += [
            DataFinding(
                examples=[ref(ex)],
                where=ex.source,
                score=float(lengths[ref(ex)]),
                detail=f"{lengths[ref(ex)]} tokens > {name}'s max_seq_len {max_len}",
            )
            for ex in over
        ]
    findings.sort(key=lambda f: -(f.score or 0))
    if not rungs:
        return check("truncation", "Truncated in training", [], "no trained rung")
    longest = max(lengths.values()) if lengths else 0
    summary = "examples truncated by " + "; ".join(parts) + f" (the longest is {longest} tokens)"
    return check("truncation", "Truncated in training", findings, summary)


def recalibrate(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Class probabilities rescaled so that their mean over the examples equals the given labels' shares (one
    step of prior correction, Saerens et al. 2002): a small model's label log-likelihoods carry a strong prior
    for some labels (short or frequent words) that would otherwise flag every example of the others."""
    import numpy as np

    shares = np.bincount(given, minlength=probs.shape[1]) / len(given)
    scaled = probs * (shares / np.maximum(probs.mean(axis=0), 1e-12))
    return np.asarray(scaled / np.maximum(scaled.sum(axis=1, keepdims=True), 1e-12))


def label_issue_check(
    examples: list[Example],
    probabilities: Sequence[Sequence[float]] | np.ndarray,
    labels: list[str],
    source: str,
    calibrate: bool = True,
) -> DataCheck:
    """Suspected label errors by confident learning (cleanlab's find_label_issues) over out-of-sample class
    probabilities, ranked by self-confidence (the least confident given labels first)."""
    import numpy as np

    from ladder.extras import require

    require(["checks"], "the label-error check (confident learning)")
    from cleanlab.filter import find_label_issues

    index = {label: i for i, label in enumerate(labels)}
    given = np.asarray([index[ex.target] for ex in examples], dtype=int)
    if len(set(given.tolist())) < 2 or len(given) < 2 * len(labels):
        return check(
            "label_issues",
            "Suspected label errors",
            [],
            f"not computed: {len(given)} examples over {len(set(given.tolist()))} labels are too few for "
            "confident learning (it estimates a per-label threshold)",
        )
    raw = np.asarray(probabilities, dtype=float)
    probs = recalibrate(raw, given) if calibrate else raw
    try:
        ranked = find_label_issues(labels=given, pred_probs=probs, return_indices_ranked_by="self_confidence")
    except (ValueError, IndexError) as exc:  # cleanlab refuses degenerate inputs: say so, lose nothing else
        return check("label_issues", "Suspected label errors", [], f"not computed: cleanlab: {exc}")
    findings = []
    for i in ranked:
        ex, p = examples[i], probs[i]
        suggested = labels[int(p.argmax())]
        findings.append(
            DataFinding(
                examples=[ref(ex)],
                where=ex.source,
                score=round(float(1 - p[given[i]]), 4),
                detail=f"labelled {ex.target!r}; the model puts {p[given[i]]:.2f} on it and {p.max():.2f} on {suggested!r}: "
                f"{ex.input[:70]!r}",
            )
        )
    agree = float((probs.argmax(axis=1) == given).mean()) if len(given) else 0.0
    how = (
        f"recalibrated to the label shares: the model agrees with {float((raw.argmax(axis=1) == given).mean()):.0%} "
        f"of the given labels before, {agree:.0%} after"
        if calibrate
        else f"the model agrees with {agree:.0%} of them"
    )
    summary = (
        f"{len(findings)} of {len(examples)} labels look wrong by confident learning on {source} ({how}; "
        "review the top of the list: where the model agrees with few labels, it is often the one that is wrong)"
    )
    return check("label_issues", "Suspected label errors", findings, summary)
