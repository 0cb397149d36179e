"""What a rung builds: a candidate (how every example will be put to the model)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ladder.backends.base import Artifact, Message
from ladder.data.splits import Example
from ladder.spec import TaskSpec

if TYPE_CHECKING:
    from ladder.backends.hf.model import HFModel as BaseModel
    from ladder.data.corpus import Corpus, Document
    from ladder.data.splits import PreferenceRow
    from ladder.metrics import JudgeOptions
    from ladder.record import JudgeVerdict, TrainingRecord
    from ladder.retrieval.embedder import Embedder
    from ladder.retrieval.retriever import Retriever
    from ladder.run.evaluate import SplitOutputs


@dataclass(frozen=True)
class Passage:
    id: str  # chunk id, "<doc id>#<n>"
    text: str


@dataclass(frozen=True)
class Demo:
    id: str
    input: str
    target: str
    passages: tuple[Passage, ...] = ()  # in the rag rung, a demonstration shows its own retrieved context


@dataclass(frozen=True)
class Selection:
    """What one example gets besides its input: demonstrations and retrieved passages."""

    demos: tuple[Demo, ...] = ()
    passages: tuple[Passage, ...] = ()
    retrieved: tuple[str, ...] | None = None  # the retriever's top-k chunk ids (before the token budget)


@dataclass
class BuildContext:
    """What a rung may use: train (and dev, for early stopping in training rungs), data.unlabeled and
    data.preferences, the corpus, a token counter of the model being evaluated. Never the test split, never a
    backend. What a rung needs from the run it asks for here, and the run (``run/context.py``) supplies it:

    - ``base_model()``: the task's base model as trained rungs need it (tokenizer, prompt encoding, weights on
      request), loaded once; ``train_device()``: where they train (``device``; ``None`` picks CUDA if present);
    - ``answers(...)``: another rung's (or model's) answers on train or unlabeled inputs (distill, preference),
      through the assessment's backend and result cache;
    - ``measure_dev(candidate, examples)``: the task's target metric of a candidate (its artifact) on dev
      examples, measured by the assessment's own eval step and backend (early stopping on a dev metric).

    Embedder and retriever are built once and shared by every rung that needs them; so are candidates
    (``candidate(name)``)."""

    spec: TaskSpec
    train: list[Example]
    dev: list[Example]
    work_dir: Path | None = None
    corpus: Corpus | None = None
    count_tokens: Callable[[str], int] = lambda text: len(text.split())
    task_dir: Path | None = None
    device: str | None = None
    # called by trained rungs after every optimizer step with (rung name, training state): progress, or a
    # deliberate interruption (raise KeyboardInterrupt) at a chosen step
    on_train_step: Callable[[str, object], None] | None = None
    unlabeled: list[Example] = field(default_factory=list)
    preferences: list[PreferenceRow] = field(default_factory=list)
    domain_text: list[Document] = field(default_factory=list)  # data.domain_text (the continued rung)
    # (candidate, examples, teacher_model, teacher_url) -> the candidate's outputs on those inputs (never test)
    answer: Callable[[Candidate, list[Example], str | None, str | None], SplitOutputs] | None = None
    # (candidate, dev examples) -> the target metric's mean, through the assessment's eval step and backend
    measure: Callable[[Candidate, list[Example]], float] | None = None
    # (candidate, examples, samples, temperature) -> that many sampled answers per input (never test)
    sample: Callable[[Candidate, list[Example], int, float], SplitOutputs] | None = None
    # (judge options, [(input, answer, reference)]) -> the judge's verdicts, through the run's judge step
    grade: Callable[[JudgeOptions, list[tuple[str, str, str | None]]], list[JudgeVerdict]] | None = None
    # () -> the identity of the judge the options name (for the record)
    judge_identity: Callable[[JudgeOptions], str] | None = None
    # () -> the task's base model for training (backends/hf/model.HFModel), called once
    load_base: Callable[[], BaseModel] | None = None
    # (rung spec, context) -> its candidate: how a rung gets another rung's candidate (``rungs.build_candidate``)
    build: Callable[[object, BuildContext], Candidate] | None = None
    _shared: dict = field(default_factory=dict, repr=False)

    def embedder(self) -> Embedder:
        if "embedder" not in self._shared:
            from ladder.data.corpus import resolve_embedder
            from ladder.retrieval.embedder import Embedder

            ref = self.corpus.embedder if self.corpus is not None else resolve_embedder(self.spec.embedder)
            self._shared["embedder"] = Embedder(ref)
        return self._shared["embedder"]

    def candidate(self, name: str) -> Candidate:
        """The candidate of the task's rung ``name``: the one this assessment built, else built now (a trained
        rung's finished training is reused from the store)."""
        built = self._shared.setdefault("candidates", {})
        if name not in built:
            from ladder.spec import rung_name

            if self.build is None:
                from ladder.errors import LadderError

                raise LadderError(
                    f"a rung needs the candidate of {name!r}, and nothing builds rungs here "
                    "(run it through `ladder assess` or `ladder train`)"
                )
            rung = next(r for r in self.spec.rungs if rung_name(r) == name)
            built[name] = self.build(rung, self)
        return built[name]

    def remember(self, candidate: Candidate) -> None:
        self._shared.setdefault("candidates", {})[candidate.rung] = candidate

    def answers(
        self, candidate: Candidate, examples: list[Example], model: str | None = None, url: str | None = None
    ) -> SplitOutputs:
        if self.answer is None:
            from ladder.errors import LadderError

            raise LadderError(
                f"rung needs the answers of {candidate.rung!r}, but nothing serves models here "
                "(run it through `ladder assess`)"
            )
        return self.answer(candidate, examples, model, url)

    def sampled(self, candidate: Candidate, examples: list[Example], samples: int, temperature: float) -> SplitOutputs:
        if self.sample is None:
            from ladder.errors import LadderError

            raise LadderError(
                f"rung needs sampled answers of {candidate.rung!r}, and nothing serves models here "
                "(run it through `ladder assess` or `ladder train`)"
            )
        return self.sample(candidate, examples, samples, temperature)

    def judged(self, options: JudgeOptions, items: list[tuple[str, str, str | None]]) -> list[JudgeVerdict]:
        if self.grade is None:
            from ladder.errors import LadderError

            raise LadderError("a rung needs a judge, and nothing serves models here (run it through `ladder assess`)")
        return self.grade(options, items)

    def measure_dev(self, candidate: Candidate, examples: list[Example]) -> float:
        if self.measure is None:
            from ladder.errors import LadderError

            raise LadderError(
                f"rung {candidate.rung!r}: early_stopping: dev_metric measures dev through the "
                "assessment's backend, and nothing serves models here (run it through `ladder assess` "
                "or `ladder train`)"
            )
        return self.measure(candidate, examples)

    def base_model(self) -> BaseModel:
        if "base_model" not in self._shared:
            if self.load_base is None:
                from ladder.errors import LadderError

                raise LadderError(
                    "a trained rung needs the task's base model, and nothing loads models here "
                    "(run it through `ladder assess` or `ladder train`)"
                )
            self._shared["base_model"] = self.load_base()
        return self._shared["base_model"]

    def train_device(self) -> str:
        from ladder.backends.hardware import pick_device

        return pick_device(self.device)

    def retriever(self) -> Retriever:
        if "retriever" not in self._shared:
            from ladder.retrieval.retriever import load_or_build

            assert self.corpus is not None and self.spec.corpus is not None
            self._shared["retriever"] = load_or_build(self.corpus, self.spec.corpus, self.embedder())
        return self._shared["retriever"]


Selector = Callable[[list[str]], list[Selection]]


@dataclass(frozen=True)
class Candidate:
    """A rung's candidate, as data: instruction, demonstrations (as prior chat turns), the input template,
    for rungs that vary per example (similar demonstrations, retrieval) a selector run on a batch of
    inputs, and for trained rungs the artifact (adapter or model folder) every backend can serve."""

    rung: str
    kind: str
    instruction: str
    input_template: str
    demos: tuple[Demo, ...] = ()
    settings: dict = field(default_factory=dict)
    selector: Selector | None = field(default=None, compare=False)
    artifact: Artifact | None = None  # trained weights to evaluate with, if any
    training: TrainingRecord | None = field(default=None, compare=False)  # cost and curve of the training
    top_k: int | None = None  # retrieved chunks per input (rag): the k its retrieval is scored at (recall@k, mrr@k)

    def user_message(self, text: str, passages: tuple[Passage, ...] = ()) -> str:
        # The template is the only thing substituted into: data never goes through str.format, and the
        # inserted text is not scanned again, so braces in data are safe.
        message = self.input_template.replace("{input}", text)
        if passages:
            context = "\n\n".join(f"[{i}] {p.text}" for i, p in enumerate(passages, start=1))
            message = f"Context:\n{context}\n\n{message}"
        return message

    def select(self, inputs: list[str]) -> list[Selection]:
        if self.selector is None:
            return [Selection(self.demos)] * len(inputs)
        return self.selector(inputs)

    def messages(self, text: str, selection: Selection | None = None) -> list[Message]:
        selection = selection or Selection(self.demos)
        messages: list[Message] = [{"role": "system", "content": self.instruction}]
        for demo in selection.demos:
            messages.append({"role": "user", "content": self.user_message(demo.input, demo.passages)})
            messages.append({"role": "assistant", "content": demo.target})
        messages.append({"role": "user", "content": self.user_message(text, selection.passages)})
        return messages


RungBuilder = Callable[..., Candidate]


def rng_for(seed: int, rung: str, purpose: str) -> random.Random:
    """An independent random stream per (seed, rung name, purpose): running a subset of rungs, or
    adding one, never changes the choices another rung makes."""
    digest = hashlib.sha256(f"{seed}/{rung}/{purpose}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))
