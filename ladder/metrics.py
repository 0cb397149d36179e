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

import functools
import importlib.metadata
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ladder.errors import LadderError
from ladder.registry import Registry
from ladder.text import normalize, squad_tokens

ENTRY_POINT_GROUP = "ladder.metrics"


@dataclass(frozen=True)
class Metric:
    """A kind of metric. ``fn(prediction, target)`` returns a score in [0, 1]; with an ``options`` model,
    ``fn(prediction, target, options)`` receives the task's validated options."""

    name: str
    fn: Callable[..., float]
    binary: bool  # scores are 0/1: Wilson interval and McNemar test; otherwise bootstrap
    multi_reference: bool = False  # with several acceptable answers, the best over them counts
    options: type[BaseModel] | None = None
    description: str = ""

    def score(self, prediction: str, references: tuple[str, ...], options: BaseModel | None = None) -> float:
        if self.options is not None:
            opts = options if options is not None else self.options()
            fn: Callable[[str, str], float] = lambda p, t: self.fn(p, t, opts)  # noqa: E731
        else:
            fn = self.fn
        if self.multi_reference:
            return max(fn(prediction, ref) for ref in references)
        return fn(prediction, references[0])


class _MetricRegistry(Registry[Metric]):
    """The built-in metrics, plus those of installed plugins (loaded once, on first use)."""

    def __init__(self) -> None:
        super().__init__("metric")
        self._plugins_loaded = False

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            where = f"metric plugin {entry.name!r} ({entry.value}"
            where += f", package {entry.dist.name})" if entry.dist is not None else ")"
            try:
                metric = entry.load()
            except Exception as exc:  # a broken plugin names itself, and stops nothing else
                raise LadderError(f"{where}: cannot be loaded: {type(exc).__name__}: {exc}") from None
            if not isinstance(metric, Metric):
                raise LadderError(f"{where}: is a {type(metric).__name__}, not a ladder.metrics.Metric")
            if metric.name != entry.name:
                raise LadderError(f"{where}: the entry point's name and the Metric's name ({metric.name!r}) differ")
            if entry.name in self._items:
                raise LadderError(f"{where}: metric {entry.name!r} is already registered (built in or another plugin)")
            self._items[entry.name] = metric

    def get(self, name: str) -> Metric:
        if name not in self._items:
            self._load_plugins()
        return super().get(name)

    def names(self) -> list[str]:
        self._load_plugins()
        return super().names()

    def __contains__(self, name: object) -> bool:
        if name not in self._items:
            self._load_plugins()
        return name in self._items


METRICS = _MetricRegistry()


def _metric(name: str, binary: bool, multi_reference: bool = False, options: type[BaseModel] | None = None):
    def decorator(fn: Callable[..., float]) -> Callable[..., float]:
        METRICS.register(name)(Metric(name, fn, binary, multi_reference, options, (fn.__doc__ or "").strip()))
        return fn

    return decorator


def _f1(pred: Counter, gold: Counter) -> float:
    if not pred and not gold:
        return 1.0
    common = sum((pred & gold).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(pred.values()), common / sum(gold.values())
    return 2 * precision * recall / (precision + recall)


@_metric("exact_match", binary=True, multi_reference=True)
def exact_match(prediction: str, target: str) -> float:
    """The output equals the target after normalization (JSON targets as canonical JSON)."""
    gold = parse_json(target) if target.lstrip()[:1] in ("{", "[") else None
    if gold is not None:  # JSON targets compare as canonical JSON: key order and spacing do not matter
        pred = parse_json(prediction)
        return float(pred is not None and _canonical(pred) == _canonical(gold))
    return float(normalize(prediction) == normalize(target))


def _canonical(obj: dict | list) -> str:
    return normalize(json.dumps(obj, sort_keys=True, ensure_ascii=False))


METRICS.register("accuracy")(Metric("accuracy", exact_match, binary=True, multi_reference=True,
                                    description="exact_match, by its name for label tasks."))


@_metric("token_f1", binary=False, multi_reference=True)
def token_f1(prediction: str, target: str) -> float:
    """SQuAD-style F1 over answer tokens."""
    pred, gold = squad_tokens(prediction), squad_tokens(target)
    if not pred or not gold:
        return float(pred == gold)
    return _f1(Counter(pred), Counter(gold))


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
    """The output parses as JSON of the target's kind."""
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
    """F1 of (key path, normalized value) pairs."""
    pred, gold = parse_json(prediction), parse_json(target)
    if pred is None or gold is None or not isinstance(pred, type(gold)):
        return 0.0
    return _f1(_pairs(pred), _pairs(gold))


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def compiles(pattern: str | None) -> str | None:
    """The pattern, if it is a regular expression (a ValueError saying why not otherwise)."""
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
    return pattern


class ItemsOptions(_Options):
    separator: str = Field(default=",", min_length=1, description="What separates the items (ignored with item_pattern).")
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


@_metric("items_f1", binary=False, multi_reference=True, options=ItemsOptions)
def items_f1(prediction: str, target: str, options: ItemsOptions) -> float:
    """F1 over the items of a delimited list (set, or multiset)."""
    pred, gold = list_items(prediction, options), list_items(target, options)
    if not options.multiset:
        pred, gold = list(dict.fromkeys(pred)), list(dict.fromkeys(gold))
    return _f1(Counter(pred), Counter(gold))


class RougeOptions(_Options):
    use_stemmer: bool = Field(default=False, description="Porter-stem words before matching (English).")


@functools.lru_cache(maxsize=4)
def _rouge_scorer(use_stemmer: bool):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)


@_metric("rouge_l", binary=False, multi_reference=True, options=RougeOptions)
def rouge_l(prediction: str, target: str, options: RougeOptions) -> float:
    """ROUGE-L F-measure (rouge-score)."""
    return float(_rouge_scorer(options.use_stemmer).score(target, prediction)["rougeL"].fmeasure)


class ChrfOptions(_Options):
    char_order: int = Field(default=6, ge=1, le=12)
    word_order: int = Field(default=0, ge=0, le=4, description="0: chrF; 2: chrF++.")
    beta: float = Field(default=2.0, gt=0)


@functools.lru_cache(maxsize=4)
def _chrf(char_order: int, word_order: int, beta: float):
    from sacrebleu.metrics import CHRF

    return CHRF(char_order=char_order, word_order=word_order, beta=beta)


@_metric("chrf", binary=False, multi_reference=True, options=ChrfOptions)
def chrf(prediction: str, target: str, options: ChrfOptions) -> float:
    """chrF (sacrebleu), in [0, 1]."""
    return _chrf(options.char_order, options.word_order, options.beta).sentence_score(prediction, [target]).score / 100


_NUMBER = re.compile(r"[-+−]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")
_CURRENCY = "$€£¥₹"


def read_number(text: str) -> float | None:
    """The text as one number ("1,234.5", "$12", "40%", "-3e2"), or None."""
    text = normalize(text).strip(" .").replace("−", "-")
    text = text.strip(_CURRENCY + "%").strip()
    if not _NUMBER.fullmatch(text) or ("," in text and not re.fullmatch(r"[-+]?\d{1,3}(,\d{3})*(\.\d+)?", text)):
        return None
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class NumericOptions(_Options):
    abs_tol: float = Field(default=0.0, ge=0, description="Accepted absolute difference.")
    rel_tol: float = Field(default=0.0, ge=0, description="Accepted difference relative to the target.")


@_metric("numeric_match", binary=True, multi_reference=True, options=NumericOptions)
def numeric_match(prediction: str, target: str, options: NumericOptions) -> float:
    """The output, read as a number, is within tolerance of the target."""
    pred, gold = read_number(prediction), read_number(target)
    if pred is None or gold is None:
        return 0.0
    return float(math.isclose(pred, gold, rel_tol=options.rel_tol, abs_tol=options.abs_tol))


# --- lenient scoring: an extraction step before the metric ---


def first_label(text: str, labels: list[str]) -> str | None:
    """The label mentioned first in the text (whole words, after normalization; the longest at a tie)."""
    norm = normalize(text)
    best: tuple[int, int, str] | None = None
    for label in labels:
        found = re.search(rf"(?<!\w){re.escape(normalize(label))}(?!\w)", norm)
        if found and (best is None or (found.start(), -len(label)) < best[:2]):
            best = (found.start(), -len(label), label)
    return best[2] if best else None


def first_json(text: str) -> str | None:
    """The first JSON object or array inside the text (e.g. after 'Here is the JSON:' or in a code fence)."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[{\[]", text):
        try:
            value, _end = decoder.raw_decode(text, match.start())
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(value, (dict, list)) and value:
            return json.dumps(value, ensure_ascii=False)
    return None


def first_number(text: str) -> str | None:
    found = _NUMBER.search(text.replace("−", "-"))
    return found.group(0) if found else None


def extractor(extract: object, labels: list[str] | None) -> Callable[[str], str]:
    """The extraction step a metric entry names: what it finds, or the output unchanged when it finds
    nothing (so a lenient score is never below the strict one for that reason)."""
    if extract == "first_label":
        find: Callable[[str], str | None] = lambda t: first_label(t, labels or [])  # noqa: E731
    elif extract == "first_json":
        find = first_json
    elif extract == "first_number":
        find = first_number
    else:
        pattern = re.compile(getattr(extract, "regex"))

        def find(text: str) -> str | None:
            found = pattern.search(text)
            return None if found is None else (found.group(1) if pattern.groups else found.group(0))

    return lambda text: (lambda got: text if got is None else got)(find(text))


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
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = "unknown option" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        raise ValueError(f"options.{where}: {msg}") from None


def scorers(spec) -> dict[str, Scorer]:
    """The task's metrics by the names the record uses, in the task's order."""
    labels = spec.output.labels
    out = {}
    for entry in spec.metrics:
        metric = METRICS.get(entry.metric)
        extract = extractor(entry.extract, labels) if entry.extract is not None else None
        out[entry.name] = Scorer(entry.name, metric, metric_options(metric, entry.options), extract)
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
