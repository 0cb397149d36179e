"""Work kept under everything it is computed from, so an unchanged re-run does none of it (nor imports what it needs).

The one store is the run's result cache (``run.cache.ResultCache``: ``get(key)`` / ``put(key, value)`` of JSON-able
dicts); the pure packages take it as a ``Store`` and never know where it lives. A key holds the inputs, the versions
of the libraries that compute, and the digest of ladder's own code that does (``code_digest``): a change to either
is a miss, never a stale hit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Protocol

from ladder.fileio import cache_key


class Store(Protocol):
    def get(self, key: str) -> dict | None: ...

    def put(self, key: str, value: dict) -> None: ...


def code_digest(*files: str) -> str:
    """sha256 over the source of ladder's modules (their ``__file__``) that compute a kept result."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(Path(file).read_bytes())
    return digest.hexdigest()


def _version(library: str) -> str | None:
    """Its installed version; None where it is not installed (``compute`` then says which extra installs it)."""
    try:
        return version(library)
    except PackageNotFoundError:
        return None


def remembered(
    store: Store | None, parts: dict, libraries: tuple[str, ...], code: tuple[str, ...], compute: Callable[[], dict]
) -> dict:
    """``compute()``, or what it gave before for the same ``parts``, ``libraries`` (installed versions) and ``code``
    (module files); without a store, always computed."""
    if store is None:
        return compute()
    key = cache_key(
        {
            **parts,
            "libraries": {name: _version(name) for name in libraries},
            "code": code_digest(*code),
        }
    )
    hit = store.get(key)
    if hit is not None:
        return hit
    value = compute()
    store.put(key, value)
    return value
