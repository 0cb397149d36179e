"""A subprocess for the crash tests (tests/test_crash.py): `ladder assess` on a task with a scripted backend that
takes a few milliseconds a prompt, so a kill lands mid-run. ``crash-rename N``: the process dies (os._exit, no
clean-up) between writing its N-th batch file and renaming it into place."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ladder.backends.scripted import ScriptedBackend
from ladder.run.assess import assess
from ladder.spec import load_task

KEYWORDS = {"raining": "weather", "song": "music", "table": "booking"}


def responder(prompt: str) -> str:
    time.sleep(0.01)
    tail = prompt.rsplit("Text: ", 1)[-1]
    return next((label for word, label in KEYWORDS.items() if word in tail and "3" not in tail), "weather")


def main() -> None:
    task, out = sys.argv[1], Path(sys.argv[2])
    if len(sys.argv) > 3 and sys.argv[3] == "crash-rename":
        nth, real, seen = int(sys.argv[4]), os.replace, [0]

        def replace(src, dst):
            if Path(dst).name.startswith("batch-"):
                seen[0] += 1
                if seen[0] == nth:
                    os._exit(137)  # the batch file is written and fsync'd under its temporary name, not renamed
            real(src, dst)

        os.replace = replace
    assess(load_task(task), backend=ScriptedBackend(responder=responder), out_dir=out, exhaustive=True)


if __name__ == "__main__":
    main()
