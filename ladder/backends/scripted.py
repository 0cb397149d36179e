"""A deterministic scripted backend for unit tests (no model, no torch).

``responder(prompt_text) -> answer`` decides what the "model" says. Scoring gives the completion that
starts with the answer the highest log-probability, the others a fixed lower value derived from their
text, so results are reproducible. Tokens are counted as whitespace-separated words.
"""

from __future__ import annotations

import copy
import hashlib
import random
import re
from collections.abc import Callable

from ladder.backends.base import (
    Artifact,
    ChatFormatter,
    ChoiceScores,
    Formatter,
    GenerateRequest,
    Generation,
    PlainFormatter,
    ScoreRequest,
    artifact_identity,
    chatml,
)
from ladder.record import ModelIdentity

_LAST_USER = re.compile(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", re.S)


def last_user_message(prompt: str) -> str:
    found = _LAST_USER.findall(prompt)
    return found[-1] if found else prompt.rstrip("\n").rsplit("\n", 1)[-1]


def echo_label_responder(labels: list[str] | None = None) -> Callable[[str], str]:
    """Answers with the first label mentioned in the last user message, else 'unknown'."""

    def respond(prompt: str) -> str:
        text = last_user_message(prompt).lower()
        for label in labels or []:
            if label.lower() in text:
                return label
        return "unknown"

    return respond


class ScriptedBackend:
    name = "scripted"

    def __init__(
        self,
        responder: Callable[[str], str] | None = None,
        labels: list[str] | None = None,
        sampler: Callable[[str, random.Random], str] | None = None,
    ):
        self.responder = responder or echo_label_responder(labels)
        # with temperature > 0, ``sampler(prompt, rng)`` answers instead, rng seeded by the request's seed
        self.sampler = sampler
        self.calls = {"score": 0, "generate": 0}  # requests seen, so tests can observe cache hits

    def formatter(self, format: str) -> Formatter:
        return ChatFormatter(chatml, "<|im_end|>") if format in ("chat", "auto") else PlainFormatter()

    artifact: Artifact | None = None

    def identity(self) -> ModelIdentity:
        return artifact_identity(
            ModelIdentity(
                **{
                    "backend": self.name,
                    "name": "scripted",
                    "weights_sha256": "scripted",
                    "tokenizer_sha256": "scripted",
                    "dtype": "none",
                    "device": "none",
                }
            ),
            self.artifact,
        )

    def close(self) -> None:
        """Nothing to give back: the weights go with the object."""

    def serving(self, artifact: Artifact | None) -> ScriptedBackend:
        """Trained weights change nothing the script says; only the identity (cache keys) follows them."""
        if artifact is None:
            return self
        view = copy.copy(self)
        view.artifact = artifact
        return view

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    @staticmethod
    def _text(prompt) -> str:
        return prompt if isinstance(prompt, str) else " ".join(map(str, prompt))

    def score_choices(self, requests: list[ScoreRequest]) -> list[ChoiceScores]:
        self.calls["score"] += len(requests)
        results = []
        for request in requests:
            prompt = self._text(request.prompt)
            answer = self.responder(prompt)
            logprobs = []
            for choice in request.choices:
                if answer and choice.startswith(answer) and choice[len(answer) :] in ("", "<|im_end|>", "\n"):
                    logprobs.append(-0.1)
                else:
                    digest = int(hashlib.sha256(choice.encode()).hexdigest()[:4], 16)
                    logprobs.append(-2.0 - digest / 65535.0)
            counts = [max(1, self.count_tokens(c)) for c in request.choices]
            results.append(ChoiceScores(logprobs, counts, self.count_tokens(prompt)))
        return results

    def generate(self, requests: list[GenerateRequest]) -> list[Generation]:
        self.calls["generate"] += len(requests)
        out = []
        for request in requests:
            prompt = self._text(request.prompt)
            if request.temperature > 0 and self.sampler is not None:
                text = self.sampler(prompt, random.Random(request.seed))
            else:
                text = self.responder(prompt)
            words = text.split()[: request.max_new_tokens]
            out.append(Generation(" ".join(words), self.count_tokens(prompt), len(words)))
        return out
