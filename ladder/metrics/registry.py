"""The metric registry: built-in metrics, plus those installed packages add through the ``ladder.metrics``
entry-point group (loaded once, on first use)."""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from ladder.errors import LadderError
from ladder.registry import Registry

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


def register_metric(
    name: str, binary: bool, multi_reference: bool = False, options: type[BaseModel] | None = None
) -> Callable[[Callable[..., float]], Callable[..., float]]:
    def decorator(fn: Callable[..., float]) -> Callable[..., float]:
        METRICS.register(name)(Metric(name, fn, binary, multi_reference, options, (fn.__doc__ or "").strip()))
        return fn

    return decorator


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def compiles(pattern: str | None) -> str | None:
    """The pattern, if it is a regular expression (a ValueError saying why not otherwise)."""
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
    return pattern
