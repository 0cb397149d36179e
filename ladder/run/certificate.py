"""The adapter certificate: for every trained rung, what the backend that served it shows of its artifact, on a
fixed probe of dev inputs, recorded in the run and required by the recommendation and the gate (fail closed).

(a) ``changes_outputs``: the served log-probabilities of the probe's answers (the labels, or each input's target)
    differ from the base model's by more than ``CHANGE_TOLERANCE`` nats per token on average: an adapter that
    silently does nothing (the most reported vLLM LoRA bug of 2026) is caught in the user's run, not only in ours.
(b) ``matches_reference``: served through vllm or an OpenAI-compatible server, the same log-probabilities are
    within ``REFERENCE_TOLERANCE`` nats of the transformers backend's (PEFT) on the same artifact, or within a tenth
    of the adapter's own largest effect on an answer where that is larger (another kernel or bf16 moves every
    answer a little; a serving fault moves them by a sizeable part of what the adapter does).
(c) ``same_template``: the prompt format served (the formatter's rendering of a fixed conversation) is the one
    the rung trained with.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import ladder
from ladder.backends.base import Backend, Formatter, ScoreRequest, template_fingerprint
from ladder.backends.models import content_identity
from ladder.data.splits import Example
from ladder.errors import LadderError
from ladder.fileio import cache_key
from ladder.record import AdapterCertificate, CertificateCheck, TrainingRecord
from ladder.run.cache import ResultCache
from ladder.rungs.base import Candidate
from ladder.spec import TaskFile, TaskSpec
from ladder.text import short_hash

PROBE = 8  # dev inputs
CHANGE_TOLERANCE = 1e-4  # mean |log-prob difference| per token an artifact must exceed (fp32 noise is ~1e-6)
REFERENCE_TOLERANCE = 0.05  # nats per answer: merged (transformers) vs unmerged (vllm) LoRA, same fp32 arithmetic
EFFECT_SHARE = 0.1  # or this share of the adapter's largest effect on an answer, where that is larger


def _requests(candidate: Candidate, formatter: Formatter, spec: TaskSpec, probe: list[Example]) -> list[ScoreRequest]:
    requests = []
    for ex, selection in zip(probe, candidate.select([ex.input for ex in probe])):
        messages = candidate.messages(ex.input, selection)
        answers = spec.output.labels if spec.output.kind == "label" and spec.output.labels else [ex.target]
        requests.append(ScoreRequest(formatter.prompt(messages), [formatter.completion(messages, a) for a in answers]))
    return requests


def _scores(backend: Backend, requests: list[ScoreRequest], cache: ResultCache) -> list[list[float]]:
    """Per request, each answer's summed log-probability, through the result cache (outputs, keyed by what served
    them): an unchanged re-run certifies from the cache and loads no weights."""
    key = cache_key(
        {
            "ladder": ladder.__version__,
            "certificate": 1,
            "backend": content_identity(backend.identity()),
            "requests": [short_hash(json.dumps([str(r.prompt), list(r.choices)]), 16) for r in requests],
        }
    )
    hit = cache.get(key)
    if hit is not None:
        return hit["logprobs"]
    found = [list(r.logprobs) for r in backend.score_choices(requests)]
    cache.put(key, {"logprobs": found})
    return found


def certify(
    candidate: Candidate,
    training: TrainingRecord,
    backend: Backend,
    formatter: Formatter,
    spec: TaskSpec,
    dev: list[Example],
    cache: ResultCache,
    reference: Callable[[], Backend] | None = None,
) -> AdapterCertificate:
    """``reference``: makes the transformers backend to compare a vllm/openai backend with (None: this backend is
    the transformers one, the reference itself); it is made only when its answers are not in the cache."""
    assert candidate.artifact is not None
    probe = dev[:PROBE]
    served_backend, base_backend = backend.serving(candidate.artifact), backend.serving(None)
    try:
        requests = _requests(candidate, formatter, spec, probe)
    except LadderError:  # a chat API formats the conversation itself: no log-probabilities to compare
        return _by_answers(candidate, training, served_backend, base_backend, formatter, spec, probe, cache)
    tokens = [[max(1, backend.count_tokens(c)) for c in r.choices] for r in requests]
    served, base = _scores(served_backend, requests, cache), _scores(base_backend, requests, cache)
    per_token = [abs(s - b) / n for rs, rb, rn in zip(served, base, tokens) for s, b, n in zip(rs, rb, rn)]
    change = sum(per_token) / len(per_token) if per_token else 0.0
    checks = [
        CertificateCheck(
            name="changes_outputs",
            passed=change > CHANGE_TOLERANCE,
            value=change,
            tolerance=CHANGE_TOLERANCE,
            detail=(
                f"the {candidate.artifact.kind} moves the served log-probabilities of the probe's answers by "
                f"{change:.3g} nats per token on average against the base model ({len(probe)} dev inputs)"
                + ("" if change > CHANGE_TOLERANCE else ": it does nothing as served")
            ),
        )
    ]
    if reference is None:
        checks.append(
            CertificateCheck(
                name="matches_reference", passed=None, detail=f"served by {backend.name}: the reference itself"
            )
        )
    else:
        expected = _reference_scores(reference, candidate, requests, cache)
        gap = max((abs(s - e) for rs, re in zip(served, expected) for s, e in zip(rs, re)), default=0.0)
        # the adapter's own effect as the reference serves it: a serving fault (a module left out, a wrong scale) is
        # a sizeable part of it; numerical noise (another kernel, bf16) is not
        effect = max((abs(e - b) for re, rb in zip(expected, base) for e, b in zip(re, rb)), default=0.0)
        tolerance = max(REFERENCE_TOLERANCE, EFFECT_SHARE * effect)
        checks.append(
            CertificateCheck(
                name="matches_reference",
                passed=gap <= tolerance,
                value=gap,
                tolerance=tolerance,
                detail=f"served log-probabilities within {gap:.3g} nats of the transformers (PEFT) reference (tolerance "
                f"{tolerance:.3g}: {REFERENCE_TOLERANCE} or a tenth of the adapter's own largest effect, {effect:.3g})"
                + ("" if gap <= tolerance else ": it is not served as trained"),
            )
        )
    checks.append(_template(training, formatter))
    return AdapterCertificate(backend=backend.name, probe=len(probe), checks=checks)


def _reference_scores(
    reference: Callable[[], Backend], candidate: Candidate, requests: list[ScoreRequest], cache: ResultCache
) -> list[list[float]]:
    other = reference()
    try:
        return _scores(other.serving(candidate.artifact), requests, cache)
    finally:
        other.close()


def _template(training: TrainingRecord, formatter: Formatter) -> CertificateCheck:
    trained_with, serving = training.template_sha256, template_fingerprint(formatter)
    if trained_with is None:
        return CertificateCheck(
            name="same_template",
            passed=False,
            detail="the training recorded no prompt format (an older ladder): retrain it",
        )
    same = trained_with == serving
    return CertificateCheck(
        name="same_template",
        passed=same,
        detail=(
            f"the prompt format served is the one trained with (sha256 {serving[:12]})"
            if same
            else f"the prompt format served (sha256 {serving[:12]}) is not the one trained with ({trained_with[:12]})"
        ),
    )


def _by_answers(candidate, training, served_backend, base_backend, formatter, spec, probe, cache) -> AdapterCertificate:
    """Where the server formats the conversation (``serving.api: chat``) there are no log-probabilities: the probe's
    greedy answers must change somewhere (a weaker check: an adapter may agree with the base on a few inputs)."""
    from ladder.run.evaluate import run_eval

    served = run_eval(candidate, probe, served_backend, formatter, spec, cache).outputs
    plain = Candidate(candidate.rung, candidate.type, candidate.instruction, candidate.input_template)
    base = run_eval(plain, probe, base_backend, formatter, spec, cache).outputs
    changed = sum(a.output != b.output for a, b in zip(served, base))
    checks = [
        CertificateCheck(
            name="changes_outputs",
            passed=changed > 0,
            value=changed / max(1, len(probe)),
            tolerance=0.0,
            detail=f"{changed} of {len(probe)} probe answers differ from the base model's (answers only: a chat API "
            "gives no log-probabilities)" + ("" if changed else ": it may do nothing as served"),
        )
    ]
    checks.append(
        CertificateCheck(
            name="matches_reference",
            passed=None,
            detail="a chat API gives no log-probabilities to compare with the reference",
        )
    )
    checks.append(_template(training, formatter))
    return AdapterCertificate(backend=served_backend.name, probe=len(probe), checks=checks)


def reference_backend(task: TaskFile, backend: Backend):
    """What a trained rung served by vllm or an OpenAI-compatible server is checked against: the transformers
    backend (PEFT) on the same model, made for the certificate's probe and closed after it."""
    if backend.name not in ("vllm", "openai"):
        return None
    spec = task.spec

    def make() -> Backend:
        from ladder.backends import create_backend

        return create_backend(
            "transformers",
            spec.model,
            base_dir=task.path.parent,
            batch_size=spec.generation.batch_size,
            labels=spec.output.labels,
        )

    return make
