"""Progress of long work (training steps, eval batches, index builds, model conversion), reported to
whatever display the caller installed: the CLI installs a rich bar on a terminal and plain lines
elsewhere (``display.progress_reporter``); library use and tests stay silent (the default).

Work code only says what it is doing::

    with progress.track("[lora] training", total=steps, unit="step") as bar:
        bar.advance(1, loss=0.41, tokens_per_s=812.0)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar

T = TypeVar("T")


class Bar(Protocol):
    def advance(self, n: int = 1, **fields: float | str) -> None: ...


class Reporter(Protocol):
    def start(self, description: str, total: int | None, unit: str, completed: int = 0) -> Bar: ...

    def finish(self, bar: Bar) -> None: ...


class _Silent:
    def advance(self, n: int = 1, **fields: float | str) -> None:
        pass


class SilentReporter:
    def start(self, description: str, total: int | None, unit: str, completed: int = 0) -> Bar:
        return _Silent()

    def finish(self, bar: Bar) -> None:
        pass


_reporter: Reporter = SilentReporter()


@contextmanager
def reporting(reporter: Reporter) -> Iterator[Reporter]:
    """Install ``reporter`` for the work done inside (the CLI's one display)."""
    global _reporter
    previous, _reporter = _reporter, reporter
    try:
        yield reporter
    finally:
        _reporter = previous


@contextmanager
def track(description: str, total: int | None, unit: str = "item", completed: int = 0) -> Iterator[Bar]:
    bar = _reporter.start(description, total, unit, completed)
    try:
        yield bar
    finally:
        _reporter.finish(bar)


def iterate(items: Iterable[T], description: str, total: int | None = None, unit: str = "item") -> Iterator[T]:
    """``items``, advancing one bar as they are consumed (for a library's own loop, e.g. GGUF conversion)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with track(description, total, unit) as bar:
        for item in items:
            yield item
            bar.advance(1)
