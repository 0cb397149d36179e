"""Per-example metrics, each a score in [0, 1]. Definitions are repeated in the README.

- ``exact_match`` / ``accuracy``: prediction == target after ``ladder.text.normalize``
  (Unicode NFKC, case-fold, trimmed, whitespace collapsed); a target that is a JSON object or array is
  compared as canonical JSON (keys sorted), so key order and spacing do not matter.
- ``token_f1``: SQuAD-style F1 over answer tokens (normalize, strip punctuation and articles).
  With several acceptable answers (``data.alternatives_field``), both take the best over them.
- ``json_valid``: the trimmed output parses as JSON of the target's kind (an object, or an array).
- ``json_field_f1``: F1 of (key path, normalized value) pairs between output and target (objects or
  arrays; array items share their parent's path); invalid JSON scores 0; both empty scores 1.
- ``items_f1``: F1 over the items of a delimited list (``separator``, or the matches of ``item_pattern``),
  each item normalized; as sets, or as multisets with ``multiset: true``; both empty scores 1.
- ``rouge_l``: ROUGE-L F-measure (Google's ``rouge-score``: lower-cased ASCII word tokens, optional
  Porter stemming); ``chrf``: chrF (``sacrebleu``; chrF++ with ``word_order: 2``), divided by 100.
- ``numeric_match``: the output, read as one number (thousands separators, currency and % signs
  ignored), is within ``abs_tol`` or ``rel_tol`` of the target's number.

A task names metrics, never a Python path: installed packages add metrics through the entry-point group
``ladder.metrics`` (the entry point's name is the metric's name; its object a ``Metric``). A metric entry
in task.yaml may carry ``options`` (checked against the metric's own options model) and an ``extract``
step (``first_label``, ``first_json``, ``first_number`` or ``{regex: ...}``) applied to the output before
scoring: the lenient score, reported beside the strict one, so a format problem shows as the gap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ladder.errors import problem
from ladder.metrics.builtin import (  # the built-in metrics register themselves on import
    ChrfOptions,
    ItemsOptions,
    NumericOptions,
    RougeOptions,
    exact_match,
    json_field_f1,
    json_valid,
    parse_json,
    read_number,
    same_json_kind,
    token_f1,
)
from ladder.metrics.extract import extractor, first_json, first_label, first_number
from ladder.metrics.judge import JudgeOptions, judge_messages, parse_verdict  # registers `judge`
from ladder.metrics.registry import (
    ENTRY_POINT_GROUP,
    METRICS,
    Metric,
    compiles,
    register_metric,
)
from ladder.text import normalize

if TYPE_CHECKING:
    from ladder.spec import TaskSpec  # the task language is above its metrics

__all__ = [
    "ENTRY_POINT_GROUP",
    "METRICS",
    "ChrfOptions",
    "ItemsOptions",
    "JudgeOptions",
    "Metric",
    "NumericOptions",
    "RougeOptions",
    "Scorer",
    "compiles",
    "exact_match",
    "extractor",
    "first_json",
    "first_label",
    "first_number",
    "json_field_f1",
    "json_valid",
    "judge_messages",
    "metric_options",
    "parse_json",
    "parse_verdict",
    "read_number",
    "register_metric",
    "same_json_kind",
    "scorers",
    "token_f1",
    "valid_output",
]


@dataclass(frozen=True)
class Scorer:
    """One metric as a task configured it: its name in the record, the metric, its options, and the
    extraction step (lenient scoring) if any."""

    name: str
    metric: Metric
    options: BaseModel | None = None
    extract: Callable[[str], str] | None = None

    @property
    def binary(self) -> bool:
        return self.metric.binary

    @property
    def judge(self) -> JudgeOptions | None:
        """The judge's options when a judge model grades this metric (its scores come with the outputs)."""
        return self.options if isinstance(self.options, JudgeOptions) else None

    def score(self, prediction: str, references: tuple[str, ...]) -> float:
        if self.extract is not None:
            prediction = self.extract(prediction)
        return self.metric.score(prediction, references, self.options)


def metric_options(metric: Metric, given: dict[str, Any]) -> BaseModel | None:
    """The metric's options, validated (raises ValueError naming the option)."""
    if metric.options is None:
        if given:
            raise ValueError(f"metric {metric.name!r} takes no options (got {', '.join(sorted(given))})")
        return None
    try:
        return metric.options.model_validate(given)
    except ValidationError as exc:
        where, msg = problem(exc.errors()[0], unknown="unknown option")
        raise ValueError(f"options.{where}: {msg}") from None


def scorers(spec: TaskSpec) -> dict[str, Scorer]:
    """The task's metrics by the names the record uses, in the task's order."""
    labels = spec.output.labels
    out: dict[str, Scorer] = {}
    for entry in spec.metrics:
        metric = METRICS.get(entry.metric)
        extract = extractor(entry.extract, labels) if entry.extract is not None else None
        name = entry.name or entry.metric  # MetricSpec names every entry when it validates
        out[name] = Scorer(name, metric, metric_options(metric, entry.options), extract)
    return out


def valid_output(answer: str, kind: str, labels: list[str] | None, target: str) -> bool:
    """Whether an answer has the form the task declares: one of the labels (after normalization), JSON of
    the target's kind; free text is always valid. An invalid answer scores 0 on most metrics; counting
    it apart says whether a rung fails at the task or at its format."""
    if kind == "label":
        return normalize(answer) in {normalize(label) for label in labels or []}
    if kind == "json":
        return same_json_kind(answer, target)
    return True
