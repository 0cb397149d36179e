"""The eval step: put a candidate to the backend on one split, through the result cache.

This is the only code that reads held-out examples. It returns model outputs (never scores): scoring
happens afterwards from the outputs, so cached outputs are always re-scored by the current metrics.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import ladder
from ladder.backends.base import Backend, Formatter, GenerateRequest, ScoreRequest
from ladder.cache import ResultCache, cache_key
from ladder.data import Example
from ladder.rungs.base import Candidate, Selection
from ladder.spec import TaskSpec
from ladder.text import short_hash


@dataclass(frozen=True)
class ExampleOutput:
    output: str
    prompt_tokens: int
    completion_tokens: int
    label_logprobs: dict[str, float] | None = None
    label_token_counts: dict[str, int] | None = None


@dataclass(frozen=True)
class SplitOutputs:
    outputs: list[ExampleOutput]
    prompt_hashes: list[str]
    wall_s: float  # model time (as measured when the outputs were computed)
    cached: bool
    key: str
    selections: list[Selection]  # per example: demonstrations and retrieved passages
    selection_s: float  # time to select demonstrations / retrieve passages, measured now


def _common_prefix(texts: list[str]) -> str:
    return os.path.commonprefix(texts) if texts else ""


def run_eval(
    candidate: Candidate,
    examples: list[Example],
    backend: Backend,
    formatter: Formatter,
    spec: TaskSpec,
    cache: ResultCache,
) -> SplitOutputs:
    backend = candidate.backend or backend  # a trained rung evaluates its own weights
    started = time.perf_counter()
    selections = candidate.select([ex.input for ex in examples])
    selection_s = time.perf_counter() - started
    conversations = [candidate.messages(ex.input, sel) for ex, sel in zip(examples, selections)]
    prompts = [formatter.prompt(messages) for messages in conversations]
    prompt_hashes = [short_hash(p, 16) for p in prompts]
    labels = spec.output.labels if spec.output.kind == "label" else None
    loglik = labels is not None and spec.generation.label_scoring == "loglik"
    # The assistant's turn renders the same after any conversation, so one rendering serves all.
    completions = [formatter.completion(conversations[0], label) for label in labels] if loglik and examples else []
    stop = [formatter.end_of_turn] if formatter.end_of_turn else []
    json_stop = not loglik and spec.output.kind == "json" and spec.generation.stop_at_json_end
    key = cache_key(
        {
            "ladder": ladder.__version__,
            "backend": backend.identity(),
            "mode": "loglik" if loglik else "generate",
            "prompts": prompt_hashes,
            "completions": completions,
            "max_new_tokens": None if loglik else spec.generation.max_new_tokens,
            "stop": None if loglik else stop,
            "stop_at_json_end": json_stop,
            "ids": [ex.id for ex in examples],
        }
    )
    hit = cache.get(key)
    if hit is not None:
        outputs = [ExampleOutput(**o) for o in hit["outputs"]]
        return SplitOutputs(outputs, prompt_hashes, hit["wall_s"], True, key, selections, selection_s)

    prefix = _common_prefix(prompts)
    start = time.perf_counter()
    if loglik:
        assert labels is not None
        scored = backend.score_choices([ScoreRequest(p, completions, prefix=prefix) for p in prompts])
        outputs = []
        for result in scored:
            best = max(range(len(labels)), key=lambda j: (result.logprobs[j], -j))  # ties: label order
            outputs.append(
                ExampleOutput(
                    output=labels[best],
                    prompt_tokens=result.prompt_tokens,
                    completion_tokens=result.token_counts[best],
                    label_logprobs=dict(zip(labels, result.logprobs)),
                    label_token_counts=dict(zip(labels, result.token_counts)),
                )
            )
    else:
        requests = [
            GenerateRequest(p, spec.generation.max_new_tokens, stop, prefix=prefix, stop_at_json_end=json_stop)
            for p in prompts
        ]
        generated = backend.generate(requests)
        outputs = [ExampleOutput(g.text, g.prompt_tokens, g.completion_tokens) for g in generated]
    wall = time.perf_counter() - start
    cache.put(key, {"outputs": [o.__dict__ for o in outputs], "wall_s": wall, "n": len(outputs)})
    return SplitOutputs(outputs, prompt_hashes, wall, False, key, selections, selection_s)
