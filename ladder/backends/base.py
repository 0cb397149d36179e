"""The backend protocol and the prompt formatters.

A backend accepts rendered prompts (text, or token ids) so that a remote OpenAI-compatible server can
implement the same protocol: ``score_choices`` (log-likelihood of each completion after a prompt) and
``generate`` (greedy decoding up to a stop). Rendering chat messages to text is the formatter's job;
the rendered text is what the result cache is keyed on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, TypedDict, Union

from ladder.record import ModelIdentity


class Message(TypedDict):
    role: str  # "system" | "user" | "assistant"
    content: str


Prompt = Union[str, Sequence[int]]


@dataclass(frozen=True)
class ScoreRequest:
    """Score each completion after ``prompt``. ``prefix`` is a leading part of ``prompt`` shared by many
    requests (instruction + demonstrations): a backend may compute it once."""

    prompt: Prompt
    choices: Sequence[str]
    prefix: Prompt = ""


@dataclass(frozen=True)
class ChoiceScores:
    logprobs: list[float]  # sum of token log-probabilities per choice
    token_counts: list[int]  # tokens per choice (so the per-token mean is logprobs / counts)
    prompt_tokens: int


@dataclass(frozen=True)
class GenerateRequest:
    prompt: Prompt
    max_new_tokens: int
    stop: Sequence[str] = ()
    prefix: Prompt = ""
    stop_at_json_end: bool = False  # stop once the top-level JSON object or array has closed
    temperature: float = 0.0  # 0: greedy; above: sample
    top_p: float = 1.0
    seed: int = 0  # sampling seed of this request


def json_value_end(text: str) -> int:
    """Index just past the first complete top-level JSON object or array in `text` (brackets inside
    strings and escaped quotes are skipped), or -1 while it is still open or has not started. The first
    ``{`` or ``[`` opens it; an array of objects ends at its ``]``, not at its first ``}``."""
    depth, in_string, escaped, started = 0, False, False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = started
        elif ch in "{[":
            depth += 1
            started = True
        elif ch in "}]" and started:
            depth -= 1
            if depth == 0:
                return i + 1
    return -1


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Artifact:
    """Trained weights a candidate is served with: a peft LoRA adapter folder, or a whole model folder
    (full fine-tune) of the base model's architecture and tokenizer. Every backend knows how to serve
    one; the hash is over the folder's content, so it names the weights, not where they lie."""

    kind: Literal["adapter", "model"]
    path: Path
    sha256: str
    bytes: int
    rank: int | None = None  # LoRA rank (an engine that hot-swaps adapters sizes its slots by it)
    quantized: bool = False  # QLoRA: the base runs in 4-bit and the adapter stays unmerged


def artifact_identity(base: ModelIdentity, artifact: Artifact | None) -> ModelIdentity:
    """A backend's identity when it serves ``artifact``: the weights are the artifact's (what a cache
    key must change with), the base's hash stays beside them."""
    if artifact is None:
        return base
    return base.model_copy(
        update={
            "weights_sha256": artifact.sha256,
            "base_weights_sha256": base.weights_sha256,
            "artifact": artifact.kind,
            **({"quantized": True} if artifact.quantized else {}),
        }
    )


class Formatter(Protocol):
    """Renders a conversation to the text a model sees."""

    end_of_turn: str
    format: str  # "chat" or "plain": what the task's prompt.format (``auto`` included) became for this model

    def prompt(self, messages: list[Message]) -> str:
        """The conversation followed by the opening of the assistant's turn."""

    def completion(self, messages: list[Message], answer: str) -> str:
        """The text the assistant's ``answer`` adds after ``prompt(messages)``, up to and including the
        end-of-turn marker (so a label that is a prefix of another is not favoured)."""


class Backend(Protocol):
    name: str

    def formatter(self, format: str) -> Formatter: ...

    def identity(self) -> ModelIdentity:
        """What determines this backend's outputs besides the prompts: model/tokenizer hashes, dtype..."""

    def count_tokens(self, text: str) -> int: ...

    def score_choices(self, requests: list[ScoreRequest]) -> list[ChoiceScores]: ...

    def generate(self, requests: list[GenerateRequest]) -> list[Generation]: ...

    def serving(self, artifact: Artifact | None) -> Backend:
        """This backend over trained weights (``None``: the base model). Cheap to call: weights load
        when the first request needs them, so a result-cache hit loads none."""

    def close(self) -> None:
        """Give back what the backend holds (a vllm engine's memory, a server process). Idempotent."""


def template_fingerprint(formatter: Formatter) -> str:
    """The prompt format as a hash: a fixed conversation (system, user, an answer) rendered by ``formatter``. A
    trained rung records the one it trained with; serving must render the same (the adapter certificate)."""
    import hashlib

    messages: list[Message] = [
        {"role": "system", "content": "<<instruction>>"},
        {"role": "user", "content": "<<input>>"},
    ]
    text = formatter.prompt(messages) + "\x00" + formatter.completion(messages, "<<answer>>")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ChatFormatter:
    """Uses a chat template (``apply(messages, add_generation_prompt) -> str``)."""

    format = "chat"

    def __init__(self, apply: Callable[[list[Message], bool], str], end_of_turn: str):
        self._apply = apply
        self.end_of_turn = end_of_turn

    def prompt(self, messages: list[Message]) -> str:
        return self._apply(messages, True)

    def completion(self, messages: list[Message], answer: str) -> str:
        head = self.prompt(messages)
        full = self._apply(list(messages) + [{"role": "assistant", "content": answer}], False)
        if not full.startswith(head):
            raise ValueError("chat template renders the prompt differently when an answer follows it")
        tail = full[len(head) :]
        end = tail.find(self.end_of_turn, len(answer)) if self.end_of_turn else -1
        return tail[: end + len(self.end_of_turn)] if end >= 0 else tail


class PlainFormatter:
    """For models without a chat template: instruction, then ``user\\nanswer`` blocks, blank-line separated."""

    end_of_turn = "\n"
    format = "plain"

    def _render(self, messages: list[Message]) -> str:
        parts: list[str] = []
        for message in messages:
            if message["role"] == "system":
                parts.append(message["content"] + "\n\n")
            elif message["role"] == "user":
                parts.append(message["content"] + "\n")
            else:
                parts.append(message["content"] + "\n\n")
        return "".join(parts)

    def prompt(self, messages: list[Message]) -> str:
        return self._render(messages)

    def completion(self, messages: list[Message], answer: str) -> str:
        return answer + self.end_of_turn


def chatml(messages: list[Message], add_generation_prompt: bool) -> str:
    """A ChatML renderer (the format of SmolLM2's template), for the scripted backend."""
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


Encoded = list[tuple[list[int], list[list[int]]]]  # per request: prompt ids, each choice's ids


def label_prefix_queries(encoded: Encoded) -> list[tuple[int, tuple[int, ...], list[int]]]:
    """Scoring labels from next-token log-probabilities: one query per distinct (request, label prefix),
    asking for the log-probabilities of exactly the tokens that may follow it. Bare prompts come first, so
    a server with prefix caching finds each prompt cached for the longer queries."""
    queries: dict[tuple[int, tuple[int, ...]], set[int]] = {}
    for r, (_, choices) in enumerate(encoded):
        for choice in choices:
            for t in range(len(choice)):
                queries.setdefault((r, tuple(choice[:t])), set()).add(choice[t])
    keys = sorted(queries, key=lambda key: (len(key[1]), key[0]))
    return [(r, prefix, sorted(queries[(r, prefix)])) for r, prefix in keys]


def label_path_sums(encoded: Encoded, found: dict[tuple[int, tuple[int, ...]], dict[int, float]]) -> list[list[float]]:
    """Each label's log-probability: the sum of its tokens' next-token log-probabilities along its path."""
    return [
        [float(sum(found[(r, tuple(choice[:t]))][choice[t]] for t in range(len(choice)))) for choice in choices]
        for r, (_, choices) in enumerate(encoded)
    ]


def finish_generation(
    request: GenerateRequest, text: str, prompt_tokens: int, used: int, count: Callable[[str], int]
) -> Generation:
    """The same end for every backend's decoded text: cut at the close of the first JSON value (counting
    only the tokens up to it, ``count`` being the model's tokenizer) and at the first stop string."""
    if request.stop_at_json_end:
        end = json_value_end(text)
        if end >= 0:
            text = text[:end]
            used = min(used, count(text))
    for stop in request.stop:
        cut = text.find(stop)
        if cut >= 0:
            text = text[:cut]
    return Generation(text.strip(), prompt_tokens, used)
