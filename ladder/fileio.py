"""Atomic, durable file writes: a reader sees the old file or the new one, never half of either, and a
write that returned survives a crash (the file and its folder entry are fsync'd). Content hashes of files
(models, embedders), cached beside them."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from ladder.errors import LadderError


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically. A folder that cannot be written (read-only, full disk) is a
    one-line LadderError naming the path; the file that was there is left as it was."""
    try:
        _write(path, text)
    except OSError as exc:
        raise LadderError(f"{path}: cannot write ({exc.strerror or exc}); what was saved before is intact") from None


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems do not fsync folders
    finally:
        os.close(fd)


def read_json(path: Path, what: str) -> object:
    """A JSON file, or a one-line LadderError naming it: unreadable, not UTF-8, or invalid (with the line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LadderError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise LadderError(f"{path}: {what} is not UTF-8 text ({exc.reason})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LadderError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_files(files: list[Path]) -> str:
    """sha256 over (name, content hash) of each file; content hashes cached in a sidecar."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.name.encode())
        digest.update(cached_file_hash(path).encode())
    return digest.hexdigest()


def cached_file_hash(path: Path) -> str:
    """sha256 of one file, cached in a ``.ladder-hashes.json`` sidecar keyed by (name, size, mtime)."""
    stat = path.stat()
    sidecar = path.parent / ".ladder-hashes.json"
    key = f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"
    try:
        known = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return known[key]
    value = _sha256_file(path)
    known[key] = value
    try:
        atomic_write_text(sidecar, json.dumps(known, indent=1))
    except OSError:
        pass  # a read-only model folder: hash again next time
    return value


def cache_key(parts: dict) -> str:
    """The content key of JSON-able ``parts``: the same parts, in any order, give the same key."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
