"""The built-in metrics (definitions in ``ladder/metrics/__init__.py``)."""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from typing import Any

from pydantic import Field, field_validator

from ladder.metrics.registry import METRICS, Metric, Options, compiles, register_metric
from ladder.text import normalize, squad_tokens


def _f1(pred: Counter[Any], gold: Counter[Any]) -> float:
    if not pred and not gold:
        return 1.0
    common = sum((pred & gold).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(pred.values()), common / sum(gold.values())
    return 2 * precision * recall / (precision + recall)


@register_metric("exact_match", binary=True, multi_reference=True)
def exact_match(prediction: str, target: str) -> float:
    """The output equals the target after normalization (JSON targets as canonical JSON)."""
    gold = parse_json(target) if target.lstrip()[:1] in ("{", "[") else None
    if gold is not None:  # JSON targets compare as canonical JSON: key order and spacing do not matter
        pred = parse_json(prediction)
        return float(pred is not None and _canonical(pred) == _canonical(gold))
    return float(normalize(prediction) == normalize(target))


def _canonical(obj: dict[str, Any] | list[Any]) -> str:
    return normalize(json.dumps(obj, sort_keys=True, ensure_ascii=False))


METRICS.register("accuracy")(
    Metric(
        "accuracy",
        exact_match,
        binary=True,
        multi_reference=True,
        description="exact_match, by its name for label tasks.",
    )
)


@register_metric("token_f1", binary=False, multi_reference=True)
def token_f1(prediction: str, target: str) -> float:
    """SQuAD-style F1 over answer tokens."""
    pred, gold = squad_tokens(prediction), squad_tokens(target)
    if not pred or not gold:
        return float(pred == gold)
    return _f1(Counter(pred), Counter(gold))


def parse_json(text: str) -> dict[str, Any] | list[Any] | None:
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


@register_metric("json_valid", binary=True)
def json_valid(prediction: str, target: str) -> float:
    """The output parses as JSON of the target's kind."""
    return float(same_json_kind(prediction, target))


def _pairs(obj: object, prefix: str = "") -> Counter[tuple[str, str]]:
    pairs: Counter[tuple[str, str]] = Counter()
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


@register_metric("json_field_f1", binary=False)
def json_field_f1(prediction: str, target: str) -> float:
    """F1 of (key path, normalized value) pairs."""
    pred, gold = parse_json(prediction), parse_json(target)
    if pred is None or gold is None or not isinstance(pred, type(gold)):
        return 0.0
    return _f1(_pairs(pred), _pairs(gold))


class ItemsOptions(Options):
    separator: str = Field(
        default=",", min_length=1, description="What separates the items (ignored with item_pattern)."
    )
    item_pattern: str | None = Field(
        default=None, description="A regular expression: the items are its matches (group 1 when it has a group)."
    )
    multiset: bool = Field(default=False, description="Count repeated items (multiset F1) instead of a set.")

    @field_validator("item_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        return compiles(value)


def list_items(text: str, options: ItemsOptions) -> list[str]:
    """The normalized, non-empty items of a delimited list (trailing punctuation and 'and' dropped)."""
    if options.item_pattern:
        found = re.finditer(options.item_pattern, text)
        raw = [m.group(1) if m.re.groups else m.group(0) for m in found]
    else:
        raw = text.split(options.separator)
    items = []
    for item in raw:
        item = normalize(item).strip(" .;:!?\"'()[]")
        item = re.sub(r"^(and|or)\s+", "", item)
        if item:
            items.append(item)
    return items


@register_metric("items_f1", binary=False, multi_reference=True, options=ItemsOptions)
def items_f1(prediction: str, target: str, options: ItemsOptions) -> float:
    """F1 over the items of a delimited list (set, or multiset)."""
    pred, gold = list_items(prediction, options), list_items(target, options)
    if not options.multiset:
        pred, gold = list(dict.fromkeys(pred)), list(dict.fromkeys(gold))
    return _f1(Counter(pred), Counter(gold))


class RougeOptions(Options):
    use_stemmer: bool = Field(default=False, description="Porter-stem words before matching (English).")


@functools.lru_cache(maxsize=4)
def _rouge_scorer(use_stemmer: bool) -> Any:  # rouge_score ships no types
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)


@register_metric("rouge_l", binary=False, multi_reference=True, options=RougeOptions)
def rouge_l(prediction: str, target: str, options: RougeOptions) -> float:
    """ROUGE-L F-measure (rouge-score)."""
    return float(_rouge_scorer(options.use_stemmer).score(target, prediction)["rougeL"].fmeasure)


class ChrfOptions(Options):
    char_order: int = Field(default=6, ge=1, le=12)
    word_order: int = Field(default=0, ge=0, le=4, description="0: chrF; 2: chrF++.")
    beta: float = Field(default=2.0, gt=0)


@functools.lru_cache(maxsize=4)
def _chrf(char_order: int, word_order: int, beta: float) -> Any:  # sacrebleu's CHRF
    from sacrebleu.metrics.chrf import CHRF

    return CHRF(char_order=char_order, word_order=word_order, beta=beta)  # type: ignore[arg-type]  # any beta > 0 works


@register_metric("chrf", binary=False, multi_reference=True, options=ChrfOptions)
def chrf(prediction: str, target: str, options: ChrfOptions) -> float:
    """chrF (sacrebleu), in [0, 1]."""
    return (
        float(_chrf(options.char_order, options.word_order, options.beta).sentence_score(prediction, [target]).score)
        / 100
    )


NUMBER = re.compile(r"[-+−]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")

_CURRENCY = "$€£¥₹"


def read_number(text: str) -> float | None:
    """The text as one number ("1,234.5", "$12", "40%", "-3e2"), or None."""
    text = normalize(text).strip(" .").replace("−", "-")
    text = text.strip(_CURRENCY + "%").strip()
    if not NUMBER.fullmatch(text) or ("," in text and not re.fullmatch(r"[-+]?\d{1,3}(,\d{3})*(\.\d+)?", text)):
        return None
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class NumericOptions(Options):
    abs_tol: float = Field(default=0.0, ge=0, description="Accepted absolute difference.")
    rel_tol: float = Field(default=0.0, ge=0, description="Accepted difference relative to the target.")


@register_metric("numeric_match", binary=True, multi_reference=True, options=NumericOptions)
def numeric_match(prediction: str, target: str, options: NumericOptions) -> float:
    """The output, read as a number, is within tolerance of the target."""
    pred, gold = read_number(prediction), read_number(target)
    if pred is None or gold is None:
        return 0.0
    return float(math.isclose(pred, gold, rel_tol=options.rel_tol, abs_tol=options.abs_tol))


# --- lenient scoring: an extraction step before the metric ---
