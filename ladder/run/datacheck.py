"""``ladder check-data``: the data checks of ``ladder.data.checks`` plus the two that need the model: examples a
trained rung would truncate (the model's tokenizer and chat template) and suspected label errors (confident
learning on the label log-likelihoods of a zero- or few-shot rung, out of sample)."""

from __future__ import annotations

import math
from collections.abc import Callable

from ladder.backends.base import Backend, Formatter
from ladder.data.measured import label_issue_check, truncation_check
from ladder.data.report import not_checked
from ladder.data.splits import Example, Splits, load_task_data
from ladder.errors import LadderError
from ladder.extras import installed, pip_line, require, require_for
from ladder.paths import result_cache_dir
from ladder.record import AssessmentRun, DataCheck, DataReport, ExampleRecord
from ladder.run.cache import ResultCache
from ladder.rungs import BuildContext, build_candidate
from ladder.rungs.base import Candidate
from ladder.spec import TRAINED_RUNGS, TaskFile, TaskSpec, rung_name, shown_path

LABEL_RUNGS = ("prompt", "fewshot")


def probabilities(logprobs: dict[str, float], labels: list[str]) -> list[float]:
    """Softmax over the labels' summed log-likelihoods (what label scoring predicts from)."""
    top = max(logprobs[label] for label in labels)
    weights = [math.exp(logprobs[label] - top) for label in labels]
    total = sum(weights)
    return [w / total for w in weights]


def truncation(
    spec: TaskSpec, examples: list[Example], formatter: Formatter, count_tokens: Callable[[str], int]
) -> DataCheck:
    """Train and dev examples, as the trained rungs see them (zero-shot prompt + answer), over max_seq_len."""
    trained = [(rung_name(r), r.train.max_seq_len) for r in spec.rungs if r.type in TRAINED_RUNGS]
    zero_shot = Candidate("check", "prompt", spec.prompt.instruction, spec.prompt.input_template)

    def length(ex: Example) -> int:
        messages = zero_shot.messages(ex.input)
        return count_tokens(formatter.prompt(messages)) + count_tokens(formatter.completion(messages, ex.target))

    return truncation_check(trained, examples, length)


def untrainable(
    spec: TaskSpec, rungs, train: list[Example], formatter: Formatter, count_tokens: Callable[[str], int]
) -> str | None:
    """The first trained rung whose ``max_seq_len`` is shorter than every training example, said as the
    training would say it, but before any rung runs (minutes of evaluation and a teacher's answers were once
    spent before training found it). A distill or preference rung learns answers not yet made: its prompt and
    one answer token are what must fit."""
    trained = [r for r in rungs if r.type in TRAINED_RUNGS and r.type != "continued"]  # (it learns text blocks)
    if not trained or not train:
        return None
    zero_shot = Candidate("check", "prompt", spec.prompt.instruction, spec.prompt.input_template)
    prompts, answers = [], []
    for ex in train:
        messages = zero_shot.messages(ex.input)
        prompts.append(count_tokens(formatter.prompt(messages)))
        answers.append(count_tokens(formatter.completion(messages, ex.target)))
    for rung in trained:
        learns_targets = rung.type in ("lora", "full")
        lengths = [p + a for p, a in zip(prompts, answers)] if learns_targets else [p + 1 for p in prompts]
        if min(lengths) > rung.train.max_seq_len:
            what = "instruction + input + answer" if learns_targets else "instruction + input + one answer token"
            return (
                f"rungs[{rung_name(rung)}].train.max_seq_len: {rung.train.max_seq_len} is shorter than every "
                f"training example (the shortest, {what}, is {min(lengths)} tokens)"
            )
    return None


def with_truncation(spec: TaskSpec, splits, formatter: Formatter, count_tokens: Callable[[str], int]) -> DataReport:
    """The cheap checks run when the data loaded, plus truncation by the trained rungs (when the task has one)."""
    assert splits.checks is not None
    checks = list(splits.checks.checks)
    if any(r.type in TRAINED_RUNGS for r in spec.rungs):
        checks.append(truncation(spec, splits.train + splits.dev, formatter, count_tokens))
    return DataReport(checks=checks, label_balance=splits.checks.label_balance)


def label_issues_from_records(
    spec: TaskSpec,
    records: list[ExampleRecord],
    examples: dict[str, Example],
    source: str,
    cache: ResultCache | None = None,
) -> DataCheck:
    """Suspected label errors among measured examples, from a rung's recorded label log-likelihoods. With a result
    ``cache``, the check is kept under everything it is computed from (an unchanged re-run imports no cleanlab)."""
    from ladder.data import CHECKS_CODE
    from ladder.memo import remembered

    labels = spec.output.labels or []
    kept = [(examples[r.id], probabilities(r.label_logprobs, labels)) for r in records if r.label_logprobs]
    parts = {
        "check": "label_issues",
        "labels": labels,
        "source": source,
        "examples": [[ex.id, ex.input, ex.target, ex.source, p] for ex, p in kept],
    }

    def compute() -> dict:
        return label_issue_check([ex for ex, _ in kept], [p for _, p in kept], labels, source).model_dump(mode="json")

    return DataCheck.model_validate(remembered(cache, parts, ("cleanlab",), CHECKS_CODE, compute))


def label_issues(
    task: TaskFile,
    splits,
    corpus,
    backend: Backend,
    formatter: Formatter,
    rung: str | None,
    say: Callable[[str], None],
    folds: int = 5,
) -> DataCheck:
    """Label log-likelihoods of every train, dev and test example, out of sample, then confident learning.
    Under a zero- or few-shot rung (through the result cache, so an assessment's dev and test outputs are
    reused) a few-shot rung's own demonstrations are left out; under a lora rung, train is scored by k-fold
    (each fold by an adapter trained on the other folds) and dev and test by the rung's adapter."""
    spec = task.spec
    if spec.output.kind != "label" or spec.generation.label_scoring != "loglik":
        raise LadderError(
            "--label-errors: needs output.kind label with generation.label_scoring loglik "
            "(class probabilities come from the labels' log-likelihoods)"
        )
    choices = [r for r in spec.rungs if r.type in LABEL_RUNGS + ("lora",)]
    default = next((r for r in choices if r.type in LABEL_RUNGS), None)
    chosen = next((r for r in choices if rung_name(r) == rung), None) if rung else default
    if chosen is None:
        names = ", ".join(rung_name(r) for r in choices) or "none"
        raise LadderError(
            f"--label-errors: {rung or 'a prompt or fewshot rung'} is not a prompt, fewshot or lora rung "
            f"of {task.path.name} (those: {names})"
        )
    if chosen.type == "lora" and not 2 <= folds <= len(splits.train):
        raise LadderError(f"--folds: must be between 2 and the train split's {len(splits.train)} examples, got {folds}")
    from ladder.run.evaluate import run_eval

    cache = ResultCache(result_cache_dir())

    def context(train: list[Example]) -> BuildContext:
        from ladder.run.context import build_context

        return build_context(task, train, splits.dev, backend, cache, say, corpus=corpus)

    labels = spec.output.labels or []
    scored: list[tuple[Example, list[float]]] = []

    def score(candidate: Candidate, examples: list[Example], what: str) -> None:
        say(f"[label errors] {what}: {len(examples)} examples")
        outputs = run_eval(candidate, examples, backend, formatter, spec, cache)
        scored.extend((ex, probabilities(o.label_logprobs or {}, labels)) for ex, o in zip(examples, outputs.outputs))

    name = rung_name(chosen)
    if chosen.type == "lora":
        import random

        order = sorted(splits.train, key=lambda ex: ex.id)
        random.Random(spec.seed).shuffle(order)
        fold_of = {ex.id: i % folds for i, ex in enumerate(order)}
        for k in range(folds):
            say(f"[label errors] fold {k + 1}/{folds}: training {name} on the other folds")
            candidate = build_candidate(chosen, context([ex for ex in splits.train if fold_of[ex.id] != k]))
            score(candidate, [ex for ex in splits.train if fold_of[ex.id] == k], f"train fold {k + 1}")
        candidate = build_candidate(chosen, context(splits.train))
        for split in ("dev", "test"):
            score(candidate, splits.get(split), f"{split} under {name}")
        source = f"{folds}-fold {name} adapters' label probabilities (train out of fold; dev and test by the adapter on all train)"
    else:
        candidate = build_candidate(chosen, context(splits.train))
        if candidate.selector is not None:
            raise LadderError(
                f"--label-errors: rung {name!r} picks demonstrations per input; name a rung with fixed "
                "demonstrations (prompt, or fewshot with random or stratified selection)"
            )
        demos = {d.id for d in candidate.demos}
        for split in ("train", "dev", "test"):
            score(candidate, [ex for ex in splits.get(split) if ex.id not in demos], f"{split} under {name}")
        left_out = f", its {len(demos)} demonstrations left out" if demos else ""
        source = f"the {name} rung's label probabilities{left_out}"
    return label_issue_check([ex for ex, _ in scored], [p for _, p in scored], labels, source)


def check_data(
    task: TaskFile,
    backend: Backend | str | None = None,
    label_errors: str | None = None,
    say: Callable[[str], None] = lambda _m: None,
    folds: int = 5,
) -> DataReport:
    """Every data check; the ones that need the model only where they apply (trained rungs, --label-errors)."""
    from ladder.backends import resolve_backend_name

    spec = task.spec
    data = load_task_data(task, strict=False)
    splits = data.splits
    report = splits.checks
    assert report is not None
    if label_errors is None and not any(r.type in TRAINED_RUNGS for r in spec.rungs):
        return report
    owned = backend is None or isinstance(backend, str)
    if label_errors is None and owned:
        # truncation by the trained rungs' max_seq_len: the model's tokenizer alone (a core install has it)
        from ladder.run.context import task_tokenizer

        hf = task_tokenizer(task)
        return with_truncation(spec, splits, hf.formatter(spec.prompt.format), lambda text: len(hf.encode(text)))
    if label_errors is not None:
        if owned:
            name = resolve_backend_name(backend or spec.serving.backend)
            rungs = [r for r in spec.rungs if rung_name(r) == label_errors]  # a lora rung trains its folds
            require_for(name, rungs, shown_path(task.path))
        require(["checks"], "--label-errors")
    if owned:
        from ladder.run.context import task_backend

        backend = task_backend(task, name)
    try:
        formatter = backend.formatter(spec.prompt.format)
        report = with_truncation(spec, splits, formatter, backend.count_tokens)
        if label_errors is not None:
            report.checks.append(
                label_issues(task, splits, data.corpus, backend, formatter, label_errors or None, say, folds)
            )
    finally:
        if owned:
            backend.close()
    return report


def assessment_checks(spec, splits: Splits, formatter, count_tokens) -> DataReport | None:
    """The cheap data checks (already run when the data loaded), plus truncation by the trained rungs."""
    if splits.checks is None:
        return None
    return with_truncation(spec, splits, formatter, count_tokens)


def label_issues_of_run(spec, run: AssessmentRun, evals, cache: ResultCache | None = None) -> DataCheck | None:
    """Suspected label errors in dev and test, from the label probabilities the best-scoring zero- or few-shot
    rung already measured (out of sample: its demonstrations come from train)."""
    scored = [r for r in run.rungs if r.type in LABEL_RUNGS and r.examples and r.examples[0].label_logprobs]
    if spec.output.kind != "label" or not scored:
        return None
    if not installed("checks"):  # a core install
        return not_checked(
            "label_issues", "Suspected label errors", f"cleanlab is not installed (`{pip_line(['checks'])}`)"
        )
    best = max(scored, key=lambda r: r.splits["dev"].metrics[spec.target.metric].mean)
    examples = {ex.id: ex for split in ("dev", "test") for ex in evals[split]}
    return label_issues_from_records(
        spec,
        best.examples,
        examples,
        f"the {best.name} rung's label probabilities (dev and test; ladder check-data --label-errors covers train too)",
        cache,
    )
