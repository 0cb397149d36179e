"""Per-example metrics, each a score in [0, 1]. Definitions are repeated in the README.

- ``exact_match`` / ``accuracy``: prediction == target after ``ladder.text.normalize``
  (Unicode NFKC, case-fold, trimmed, whitespace collapsed); a target that is a JSON object or array is
  compared as canonical JSON (keys sorted), so key order and spacing do not matter.
- ``token_f1``: SQuAD-style F1 over answer tokens (normalize, strip punctuation and articles).
  With several acceptable answers (``data.alternatives_field``), both take the best over them.
- ``json_valid``: the trimmed output parses as JSON of the target's kind (an object, or an array).
- ``json_field_f1``: F1 of (key path, normalized value) pairs between output and target (objects or
  arrays; array items share their parent's path); invalid JSON scores 0; both empty scores 1.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from ladder.registry import Registry
from ladder.text import normalize, squad_tokens


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[str, str], float]
    binary: bool  # scores are 0/1: Wilson interval and McNemar test; otherwise bootstrap
    multi_reference: bool = False  # with several acceptable answers, the best over them counts

    def score(self, prediction: str, references: tuple[str, ...]) -> float:
        if self.multi_reference:
            return max(self.fn(prediction, ref) for ref in references)
        return self.fn(prediction, references[0])


METRICS: Registry[Metric] = Registry("metric")


def _metric(name: str, binary: bool, multi_reference: bool = False):
    def decorator(fn: Callable[[str, str], float]) -> Callable[[str, str], float]:
        METRICS.register(name)(Metric(name, fn, binary, multi_reference))
        return fn

    return decorator


@_metric("exact_match", binary=True, multi_reference=True)
def exact_match(prediction: str, target: str) -> float:
    gold = parse_json(target) if target.lstrip()[:1] in ("{", "[") else None
    if gold is not None:  # JSON targets compare as canonical JSON: key order and spacing do not matter
        pred = parse_json(prediction)
        return float(pred is not None and _canonical(pred) == _canonical(gold))
    return float(normalize(prediction) == normalize(target))


def _canonical(obj: dict | list) -> str:
    return normalize(json.dumps(obj, sort_keys=True, ensure_ascii=False))


METRICS.register("accuracy")(Metric("accuracy", exact_match, binary=True, multi_reference=True))


@_metric("token_f1", binary=False, multi_reference=True)
def token_f1(prediction: str, target: str) -> float:
    pred, gold = squad_tokens(prediction), squad_tokens(target)
    if not pred or not gold:
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def parse_json(text: str) -> dict | list | None:
    """A JSON object or array, or None (anything else, or not JSON)."""
    try:
        value = json.loads(text.strip())
    except (json.JSONDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, (dict, list)) else None


def same_json_kind(prediction: str, target: str) -> bool:
    """The output parses as JSON of the target's kind (object for an object target, array for an array)."""
    pred, gold = parse_json(prediction), parse_json(target)
    return pred is not None and (gold is None or isinstance(pred, type(gold)))


@_metric("json_valid", binary=True)
def json_valid(prediction: str, target: str) -> float:
    return float(same_json_kind(prediction, target))


def _pairs(obj: object, prefix: str = "") -> Counter:
    pairs: Counter = Counter()
    if isinstance(obj, dict):
        for key, value in obj.items():
            pairs += _pairs(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, list):
        for value in obj:  # list items share their parent's path: order does not matter
            pairs += _pairs(value, prefix + "[]")
    else:
        text = obj if isinstance(obj, str) else json.dumps(obj)
        pairs[(prefix, normalize(text))] += 1
    return pairs


@_metric("json_field_f1", binary=False)
def json_field_f1(prediction: str, target: str) -> float:
    pred, gold = parse_json(prediction), parse_json(target)
    if pred is None or gold is None or not isinstance(pred, type(gold)):
        return 0.0
    p, g = _pairs(pred), _pairs(gold)
    if not p and not g:
        return 1.0
    common = sum((p & g).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(p.values()), common / sum(g.values())
    return 2 * precision * recall / (precision + recall)


def valid_output(answer: str, kind: str, labels: list[str] | None, target: str) -> bool:
    """Whether an answer has the form the task declares: one of the labels (after normalization), JSON of
    the target's kind; free text is always valid. An invalid answer scores 0 on most metrics; counting
    it apart says whether a rung fails at the task or at its format."""
    if kind == "label":
        return normalize(answer) in {normalize(label) for label in labels or []}
    if kind == "json":
        return same_json_kind(answer, target)
    return True
