"""One assessment at a time per store (``$LADDER_HOME``): the result cache, training checkpoints and
indexes are shared, and two runs computing the same thing at once would waste the machine and race on
checkpoints. A second ``ladder assess`` on the same store waits, and says who holds it.

An advisory ``flock`` on ``$LADDER_HOME/lock``: the kernel releases it when the holder exits, however it
exits (kill -9 included), so a stale lock cannot outlive its process. The holder writes who it is
(pid, command, since) into the file for the one waiting.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ladder.errors import LadderError


def _holder(fd: int) -> str:
    try:
        raw = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"pid {raw['pid']} ({raw['command']}, since {raw['since']})"
    except (OSError, ValueError, KeyError):
        return "another process"


@contextmanager
def store_lock(home: Path, say: Callable[[str], None] | None = None) -> Iterator[None]:
    path = home / "lock"
    try:
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise LadderError(f"{path}: cannot open the store's lock ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if say:
                say(
                    f"waiting: {_holder(fd)} is using {home} (one assessment at a time per store; "
                    "set LADDER_HOME to use another)"
                )
            fcntl.flock(fd, fcntl.LOCK_EX)
        me = {
            "pid": os.getpid(),
            "command": " ".join(["ladder", *sys.argv[1:3]]),
            "since": _dt.datetime.now().isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
