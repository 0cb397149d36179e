"""What a rung may ask of the run, supplied in one place for every command that builds rungs (assess,
resolve, train, check-data): another rung's answers, the target metric on dev through the assessment's
own eval step and backend, and the task's base model for training. A rung never holds a backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ladder.backends.base import Backend, Formatter
from ladder.data.splits import Example
from ladder.paths import result_cache_dir
from ladder.run.cache import ResultCache
from ladder.run.evaluate import SplitOutputs, run_eval
from ladder.rungs import build_candidate
from ladder.rungs.base import BuildContext, Candidate
from ladder.spec import TaskFile, TaskSpec

Say = Callable[[str], None]


def answerer(task: TaskFile, backend: Backend, formatter: Formatter, cache: ResultCache, say: Say):
    """How a rung gets another rung's answers on train or unlabeled inputs (a distill rung's teacher, a
    preference rung's negatives): the eval step with this assessment's backend and result cache, or with
    another model (``teacher_model`` served by transformers, ``teacher_url`` by the openai backend), made
    for the call and closed after it."""
    spec = task.spec

    def answer(
        candidate: Candidate, examples: list[Example], model: str | None = None, url: str | None = None
    ) -> SplitOutputs:
        splits = "+".join(dict.fromkeys(ex.split for ex in examples))
        if model is None and url is None:
            say(f"[{candidate.rung}] answering {len(examples)} {splits} inputs for a rung that learns from them")
            return run_eval(candidate, examples, backend, formatter, spec, cache)
        from ladder.backends import open_backend

        name = "openai" if url else "transformers"
        say(f"[{candidate.rung}] answering {len(examples)} {splits} inputs with {model or spec.model} ({name})")
        with open_backend(
            name,
            model or spec.model,
            base_dir=task.path.parent,
            serving=spec.serving,
            batch_size=spec.generation.batch_size,
            **({"base_url": url} if url else {}),
        ) as other:
            return run_eval(candidate, examples, other, other.formatter(spec.prompt.format), spec, cache)

    return answer


def sampler(task: TaskFile, backend: Backend, formatter: Formatter, cache: ResultCache, say: Say):
    """How a rung gets several sampled answers per input (RLAIF): the eval step with the task's generation settings
    but ``samples`` answers at ``temperature`` (each seeded by the task's seed, the example and the sample), cached."""
    spec = task.spec

    def sample(candidate: Candidate, examples: list[Example], samples: int, temperature: float) -> SplitOutputs:
        generation = spec.generation.model_copy(
            update={"samples": samples, "temperature": temperature, "label_scoring": "generate"}
        )
        say(f"[{candidate.rung}] sampling {samples} answers for each of {len(examples)} inputs")
        return run_eval(
            candidate, examples, backend, formatter, spec.model_copy(update={"generation": generation}), cache
        )

    return sample


def dev_measurer(backend: Backend, formatter: Formatter, spec: TaskSpec) -> Callable[[Candidate, list[Example]], float]:
    """(candidate, dev examples) -> the target metric's mean: the eval step and scorer of the assessment, through
    its backend serving the candidate's artifact. Nothing is cached (weights mid-training are seen once)."""
    from ladder.metrics import scorers

    scorer = scorers(spec)[spec.target.metric]
    uncached = ResultCache(result_cache_dir(), enabled=False)

    def measure(candidate: Candidate, examples: list[Example]) -> float:
        served = backend.serving(candidate.artifact)
        outputs = run_eval(candidate, examples, served, formatter, spec, uncached).outputs
        return sum(scorer.score(o.output, ex.references) for o, ex in zip(outputs, examples)) / len(examples)

    return measure


def base_loader(spec: TaskSpec, task_dir: Path | None):
    """() -> the task's base model as training needs it (tokenizer first; weights when training asks)."""

    def load():
        from ladder.backends.hf.model import HFModel, resolve_model

        return HFModel(resolve_model(spec.model, task_dir))

    return load


def build_context(
    task: TaskFile,
    train: list[Example],
    dev: list[Example],
    backend: Backend | None = None,
    cache: ResultCache | None = None,
    say: Say | None = None,
    judges=None,
    **fields,
) -> BuildContext:
    """The rungs' context for ``task``: with a ``backend``, rungs may ask for answers and dev measurements
    through it (and its result ``cache``); the base model loads from the task's ``model`` either way.
    ``judges``: the run's judge step (``run/judge.Judges``; one is made when none is given). ``fields``: the rest of
    ``BuildContext`` (work_dir, corpus, device, unlabeled, preferences...)."""
    spec = task.spec
    ctx = BuildContext(
        spec=spec,
        train=train,
        dev=dev,
        task_dir=task.path.parent,
        load_base=base_loader(spec, task.path.parent),
        build=build_candidate,
        **fields,
    )
    if backend is not None:
        from ladder.run.judge import Item, Judges

        formatter = backend.formatter(spec.prompt.format)
        cache = cache or ResultCache(result_cache_dir())
        say = say or (lambda _msg: None)
        ctx.count_tokens = backend.count_tokens
        ctx.answer = answerer(task, backend, formatter, cache, say)
        ctx.sample = sampler(task, backend, formatter, cache, say)
        ctx.measure = dev_measurer(backend, formatter, spec)
        graders = judges if judges is not None else Judges(task, backend, cache, say)
        ctx.grade = lambda options, items: graders.grade_with(options, [Item(*it) for it in items], "pairs")
        ctx.judge_identity = graders.options_identity
    return ctx


def _from_option(task: TaskFile, exc: Exception) -> Exception:
    """A model error about a model that came from --model, not the file, names the option."""
    from ladder.errors import LadderError

    if task.model_override and str(exc).startswith("model:"):
        return LadderError(f"--{exc}")
    return exc


def task_tokenizer(task: TaskFile):
    """The task's model folder read for its tokenizer and chat template alone (``HFModel``: no weights, no torch
    where the folder has a tokenizer.json)."""
    from ladder.backends.hf.model import HFModel, resolve_model
    from ladder.errors import LadderError

    try:
        return HFModel(resolve_model(task.spec.model, task.path.parent))
    except LadderError as exc:
        raise _from_option(task, exc) from None


def task_backend(task: TaskFile, name: str | None = None, **options: Any) -> Backend:
    """The task's model served by backend ``name`` (default: the task's ``serving.backend``; ``auto`` resolved),
    with the task's serving settings, batch size and labels; ``options``: a backend's own (``base_url``,
    ``lora_ranks``). The caller closes it."""
    from ladder.backends import create_backend
    from ladder.errors import LadderError

    spec = task.spec
    try:
        return create_backend(
            name or spec.serving.backend,
            spec.model,
            base_dir=task.path.parent,
            batch_size=spec.generation.batch_size,
            labels=spec.output.labels,
            serving=spec.serving,
            **options,
        )
    except LadderError as exc:
        raise _from_option(task, exc) from None
