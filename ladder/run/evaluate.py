"""The eval step: put a candidate to the backend on one split, through the result cache.

This is the only code that reads held-out examples. It returns model outputs (never scores): scoring
happens afterwards from the outputs, so cached outputs are always re-scored by the current metrics.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, replace

import ladder
from ladder import progress
from ladder.backends.base import Backend, Formatter, GenerateRequest, ScoreRequest
from ladder.backends.models import content_identity
from ladder.data.splits import Example
from ladder.fileio import cache_key
from ladder.record import TokenTimes
from ladder.run.cache import ResultCache
from ladder.rungs.base import Candidate, Selection
from ladder.spec import TaskSpec
from ladder.text import short_hash


@dataclass(frozen=True)
class ExampleOutput:
    output: str  # the first (or only) answer
    prompt_tokens: int
    completion_tokens: int  # per answer (the mean over samples)
    label_logprobs: dict[str, float] | None = None
    label_token_counts: dict[str, int] | None = None
    latency_s: float = 0.0  # wall time of the batch that answered it: how long this call waited
    samples: list[str] | None = None  # every sampled answer, when generation.samples > 1


@dataclass(frozen=True)
class SplitOutputs:
    outputs: list[ExampleOutput]
    prompt_hashes: list[str]
    wall_s: float  # model time (as measured when the outputs were computed)
    cached: bool
    key: str
    selections: list[Selection]  # per example: demonstrations and retrieved passages
    selection_s: float  # time to select demonstrations / retrieve passages, measured now
    prefix_tokens: int = 0  # tokens of the prefix every prompt shares (computed once per batch by the backend)


def sample_seed(seed: int, example_id: str, sample: int, repeat: int = 0) -> int:
    """The sampling seed of one answer: the task's generation seed, the example, the sample index and the repeat
    (``assess --repeats``; repeat 0 keeps the seeds every earlier run used)."""
    return int(short_hash(f"{seed}/{example_id}/{sample}" + (f"/repeat-{repeat}" if repeat else ""), 8), 16)


def _common_prefix(texts: list[str]) -> str:
    return os.path.commonprefix(texts) if texts else ""


def run_eval(
    candidate: Candidate,
    examples: list[Example],
    backend: Backend,
    formatter: Formatter,
    spec: TaskSpec,
    cache: ResultCache,
    repeat: int = 0,
) -> SplitOutputs:
    """``repeat`` > 0: an independent re-evaluation (``assess --repeats``): never read from or written to the result
    cache (a repeat served from the cache is not a repeat), other batches (the examples in a shuffled order, so
    padding and batch-mates change) and, when sampling, other seeds."""
    backend = backend.serving(candidate.artifact)  # a trained rung's weights, served by the same backend
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
            "backend": content_identity(backend.identity()),
            "mode": "loglik" if loglik else "generate",
            "prompts": prompt_hashes,
            "completions": completions,
            "max_new_tokens": None if loglik else spec.generation.max_new_tokens,
            "stop": None if loglik else stop,
            "stop_at_json_end": json_stop,
            # sampling settings change outputs; greedy keys stay as they were
            **(
                {
                    "temperature": spec.generation.temperature,
                    "top_p": spec.generation.top_p,
                    "sampling_seed": spec.generation.seed,
                    "samples": spec.generation.samples,
                }
                if not loglik and spec.generation.temperature > 0
                else {}
            ),
            "record": 2,  # outputs carry per-batch latency
            "ids": [ex.id for ex in examples],
        }
    )
    prefix = _common_prefix(prompts)
    prefix_tokens = backend.count_tokens(prefix) if prefix else 0
    hit = None if repeat else cache.get(key)  # a repeat served from the cache would not be a repeat
    if hit is not None:
        outputs = [ExampleOutput(**o) for o in hit["outputs"]]
        return SplitOutputs(outputs, prompt_hashes, hit["wall_s"], True, key, selections, selection_s, prefix_tokens)

    started = time.perf_counter()
    # An interrupted run left finished batches: reuse them, compute the rest.
    answered: dict[int, ExampleOutput] = {}
    earlier_wall = 0.0
    for batch in [] if repeat else cache.batches(key):
        answered.update({i: ExampleOutput(**o) for i, o in zip(batch["indices"], batch["outputs"])})
        earlier_wall += batch["wall_s"]
    # The eval step hands the backend one batch at a time (prompts of similar length together; a repeat
    # shuffles them, so its batches and padding differ), so each example's latency is the wall time of the
    # batch that answered it, as a batched server's caller sees, and each finished batch is saved at once.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    if repeat:
        random.Random(f"{spec.seed}/repeat-{repeat}").shuffle(order)
    todo = [i for i in order if i not in answered]
    size = spec.generation.batch_size
    split = examples[0].split if examples else ""
    label = f"[{candidate.rung}] {split}" + (f" repeat {repeat + 1}" if repeat else "")
    with progress.track(label, total=len(prompts), unit="ex", completed=len(answered)) as bar:
        for first in range(0, len(todo), size):
            batch = todo[first : first + size]
            batch_start = time.perf_counter()
            if loglik:
                assert labels is not None
                outputs = _score_labels(backend, [prompts[i] for i in batch], completions, labels, prefix)
            else:
                outputs = _generate(
                    backend,
                    [prompts[i] for i in batch],
                    [examples[i].id for i in batch],
                    spec,
                    stop,
                    prefix,
                    json_stop,
                    repeat,
                )
            latency = time.perf_counter() - batch_start
            outputs = [replace(o, latency_s=latency) for o in outputs]
            answered.update(zip(batch, outputs))
            if not repeat:
                cache.put_batch(
                    key, batch[0], {"indices": batch, "outputs": [o.__dict__ for o in outputs], "wall_s": latency}
                )
            bar.advance(len(batch))
    outputs = [answered[i] for i in range(len(prompts))]
    wall = earlier_wall + time.perf_counter() - started
    if repeat:
        return SplitOutputs(
            outputs, prompt_hashes, wall, False, f"{key}/repeat-{repeat}", selections, selection_s, prefix_tokens
        )
    cache.put(key, {"outputs": [o.__dict__ for o in outputs], "wall_s": wall, "n": len(outputs)})
    return SplitOutputs(outputs, prompt_hashes, wall, False, key, selections, selection_s, prefix_tokens)


def _score_labels(
    backend: Backend, prompts: list[str], completions: list[str], labels: list[str], prefix: str
) -> list[ExampleOutput]:
    outputs = []
    for result in backend.score_choices([ScoreRequest(p, completions, prefix=prefix) for p in prompts]):
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
    return outputs


def _generate(
    backend: Backend,
    prompts: list[str],
    ids: list[str],
    spec: TaskSpec,
    stop: list[str],
    prefix: str,
    json_stop: bool,
    repeat: int = 0,
) -> list[ExampleOutput]:
    gen = spec.generation
    requests = [
        GenerateRequest(
            p,
            gen.max_new_tokens,
            stop,
            prefix=prefix,
            stop_at_json_end=json_stop,
            temperature=gen.temperature,
            top_p=gen.top_p,
            seed=sample_seed(gen.seed, example_id, s, repeat),
        )
        for p, example_id in zip(prompts, ids)
        for s in range(gen.samples)
    ]
    generated = backend.generate(requests)
    outputs = []
    for j in range(len(prompts)):
        mine = generated[j * gen.samples : (j + 1) * gen.samples]
        outputs.append(
            ExampleOutput(
                output=mine[0].text,
                prompt_tokens=mine[0].prompt_tokens,
                completion_tokens=round(sum(g.completion_tokens for g in mine) / len(mine)),
                samples=[g.text for g in mine] if gen.samples > 1 else None,
            )
        )
    return outputs


PROBE_PROMPTS = 16  # dev inputs in the probe (the prefill rate comes from 8 and from 16 of them)
PROBE_NEW_TOKENS = 16  # the most tokens decoded per row in the decode probe
PROBE_REPEATS = 3


def measure_token_times(backend: Backend, formatter: Formatter, spec: TaskSpec, dev: list[Example]) -> TokenTimes:
    """Seconds per prompt token and per completion token of the base model through the run's backend, measured
    once per run on a fixed probe, so a rung's cost per call is its token counts times these, not the wall time of
    whenever it happened to run (two rungs serving the same prompt once differed by 64% under machine load).

    The probe: the task's zero-shot prompts of the first dev inputs, the way the task is answered. Prefill: half of
    them and all of them (by label scoring where the task scores labels, else with one new token); the extra time
    over the extra tokens is the rate, so what a call to the backend costs whatever its size (setting up a batch,
    packing weights) cancels. Decode (generation tasks): up to ``PROBE_NEW_TOKENS`` new tokens against one, over
    the extra tokens; what the larger prefill took beyond its tokens is the cost of a backend call (a batch),
    shared by the calls of a batch. ``PROBE_REPEATS`` times each after a warm-up; the medians are the rates, their
    spread the noise. Label scoring counts its label tokens at the prefill rate (they are scored in the same pass)."""
    base = backend.serving(None)
    zero_shot = Candidate("probe", "prompt", spec.prompt.instruction, spec.prompt.input_template)
    conversations = [zero_shot.messages(ex.input) for ex in dev[:PROBE_PROMPTS]]
    prompts = [formatter.prompt(c) for c in conversations]
    loglik = spec.output.kind == "label" and spec.output.labels and spec.generation.label_scoring == "loglik"
    half = max(1, len(prompts) // 2)

    def prefill(rows: list[str]) -> tuple[float, int]:
        started = time.perf_counter()
        if loglik:
            assert spec.output.labels is not None
            choices = [formatter.completion(conversations[0], label) for label in spec.output.labels]
            scored = base.score_choices([ScoreRequest(p, choices) for p in rows])
            return time.perf_counter() - started, sum(r.prompt_tokens + sum(r.token_counts) for r in scored)
        out = base.generate([GenerateRequest(prompt=p, max_new_tokens=1) for p in rows])
        return time.perf_counter() - started, sum(g.prompt_tokens for g in out)

    def decode(new_tokens: int) -> tuple[float, int]:
        started = time.perf_counter()
        out = base.generate([GenerateRequest(prompt=p, max_new_tokens=new_tokens) for p in prompts])
        return time.perf_counter() - started, sum(g.completion_tokens for g in out)

    prefill(prompts)  # warm-up: weights load, kernels pick their paths
    per_prompt, per_completion, per_call = [], [], []
    for _ in range(PROBE_REPEATS):
        (small_s, small_tokens), (large_s, large_tokens) = prefill(prompts[:half]), prefill(prompts)
        rate = (
            max(0.0, large_s - small_s) / max(1, large_tokens - small_tokens)
            if large_tokens > small_tokens
            else large_s / max(1, large_tokens)
        )
        per_prompt.append(rate)
        per_call.append(max(0.0, large_s - rate * large_tokens))  # what a backend call costs whatever its size
        if not loglik:
            (one_s, one_tokens), (many_s, many_tokens) = decode(1), decode(PROBE_NEW_TOKENS)
            per_completion.append(max(0.0, many_s - one_s) / max(1, many_tokens - one_tokens))
    if loglik:
        per_completion = list(per_prompt)

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    med_p, med_c = median(per_prompt), median(per_completion)
    # the noise of a typical call's cost: the probe's mean prompt and a ten-token answer
    typical = sum(len(p) for p in prompts) / max(1, len(prompts)) / 4  # ~4 characters a token, for weighting only
    calls = [p * typical + c * 10 for p, c in zip(per_prompt, per_completion)]
    middle = med_p * typical + med_c * 10
    return TokenTimes(
        prompt_s_per_token=med_p,
        completion_s_per_token=med_c,
        call_s=median(per_call),
        probe_prompts=len(prompts),
        repeats=PROBE_REPEATS,
        noise=(max(calls) - min(calls)) / middle if middle > 0 else 0.0,
        mode="loglik" if loglik else "generate",
    )
