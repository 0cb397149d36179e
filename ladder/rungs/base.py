"""What a rung builds: a candidate (how every example will be put to the model)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ladder.backends.base import Message
from ladder.data import Example
from ladder.spec import TaskSpec


@dataclass(frozen=True)
class Demo:
    id: str
    input: str
    target: str


@dataclass(frozen=True)
class BuildContext:
    spec: TaskSpec
    train: list[Example]
    dev: list[Example]  # for early stopping in training rungs; prompt rungs ignore it
    work_dir: Path | None = None


@dataclass(frozen=True)
class Candidate:
    """A rung's candidate: instruction, demonstrations (as prior chat turns) and the input template.

    ``prefix_messages`` is the part shared by every example, so backends can compute it once.
    """

    rung: str
    kind: str
    instruction: str
    input_template: str
    demos: tuple[Demo, ...] = ()
    settings: dict = field(default_factory=dict)

    def user_message(self, text: str) -> str:
        # The template is the only thing substituted into: data never goes through str.format, and the
        # inserted text is not scanned again, so braces in data are safe.
        return self.input_template.replace("{input}", text)

    def prefix_messages(self) -> list[Message]:
        messages: list[Message] = [{"role": "system", "content": self.instruction}]
        for demo in self.demos:
            messages.append({"role": "user", "content": self.user_message(demo.input)})
            messages.append({"role": "assistant", "content": demo.target})
        return messages

    def messages(self, text: str) -> list[Message]:
        return self.prefix_messages() + [{"role": "user", "content": self.user_message(text)}]


RungBuilder = Callable[..., Candidate]


def rng_for(seed: int, rung: str, purpose: str) -> random.Random:
    """An independent random stream per (seed, rung name, purpose): running a subset of rungs, or
    adding one, never changes the choices another rung makes."""
    digest = hashlib.sha256(f"{seed}/{rung}/{purpose}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))
