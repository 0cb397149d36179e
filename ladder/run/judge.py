"""The judge step: a judge model grades answers for the task's ``judge`` metrics, through the result cache.

It belongs to the eval step (it sees held-out inputs and answers) and is called right after it: the scores it
returns go to ``scoring.compare.score_examples`` beside the outputs. The judge is the task's base model through
the assessment's own backend (never a candidate's weights), another model served by transformers, or a model an
OpenAI-compatible endpoint serves; those are opened on first use and closed with the run.

Before any rung, the judge grades the calibration set (``data.human_grades``): its agreement with people goes to
the record, and every judged split gets a prediction-powered interval on the human scale beside its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import ladder
from ladder import progress
from ladder.backends.base import Backend, Formatter, GenerateRequest, ScoreRequest
from ladder.backends.models import content_identity
from ladder.data.grades import HumanGrade
from ladder.data.splits import Example
from ladder.errors import LadderError
from ladder.fileio import cache_key
from ladder.metrics import JudgeOptions, judge_messages, parse_verdict, scorers
from ladder.record import ExampleRecord, JudgeSummary, SplitResult
from ladder.record import JudgeVerdict as Verdict
from ladder.run.cache import ResultCache
from ladder.run.evaluate import SplitOutputs, sample_seed
from ladder.scoring.agreement import agreement, ppi_mean
from ladder.spec import TaskFile, shown_path


@dataclass(frozen=True)
class Item:
    input: str
    output: str
    reference: str | None


class Judges:
    """The task's judge metrics, each with its judge model; ``close()`` gives back the models opened here."""

    def __init__(self, task: TaskFile, backend: Backend, cache: ResultCache, say=None):
        self.task, self.spec, self.cache = task, task.spec, cache
        self.say = say or (lambda _msg: None)
        self.options: dict[str, JudgeOptions] = {n: s.judge for n, s in scorers(task.spec).items() if s.judge}
        self._task_backend = backend.serving(None)
        self._opened: dict[tuple[str, str | None], Backend] = {}
        self._calibration: dict[str, tuple[list[float], list[float]]] = {}  # metric -> (judge scores, human)

    def __bool__(self) -> bool:
        return bool(self.options)

    def _backend(self, options: JudgeOptions) -> Backend:
        if options.model == "task":
            return self._task_backend
        key = (options.model, options.base_url)
        if key not in self._opened:
            from ladder.backends import create_backend

            name = "openai" if options.base_url else "transformers"
            self.say(f"judge: opening {options.model} ({name})")
            self._opened[key] = create_backend(
                name,
                options.model,
                base_dir=self.task.path.parent,
                batch_size=self.spec.generation.batch_size,
                **({"base_url": options.base_url} if options.base_url else {"serving": self.spec.serving}),
            )
        return self._opened[key]

    def close(self) -> None:
        for backend in self._opened.values():
            backend.close()
        self._opened.clear()

    def identity(self, metric: str) -> str:
        return self.options_identity(self.options[metric])

    # -- grading ----------------------------------------------------------------------------------
    def grade(self, metric: str, items: list[Item], label: str) -> list[Verdict]:
        """Every item graded by ``metric``'s judge (cached by the judge's identity, options and prompts)."""
        return self.grade_with(self.options[metric], items, label)

    def options_identity(self, options: JudgeOptions) -> str:
        ident = self._backend(options).identity()
        return f"{ident.name} ({ident.backend}, weights {ident.weights_sha256[:12]})"

    def grade_with(self, options: JudgeOptions, items: list[Item], label: str) -> list[Verdict]:
        """Every item graded by the judge ``options`` name, by their rubric (a metric's, or a rung's principles)."""
        backend = self._backend(options)
        formatter = backend.formatter("auto")
        conversations = [
            judge_messages(options, q, it.input, it.output, it.reference if options.reference else None)
            for it in items
            for q in options.questions
        ]
        prompts = [formatter.prompt(c) for c in conversations]  # type: ignore[arg-type]  # the Message shape
        key = cache_key(
            {
                "ladder": ladder.__version__,
                "judge": content_identity(backend.identity()),
                "options": options.model_dump(mode="json", exclude={"model", "base_url"}),
                "prompts": prompts,
            }
        )
        hit = self.cache.get(key)
        if hit is not None:
            return [Verdict.model_validate(v) for v in hit["verdicts"]]
        # the judge's turn renders the same after any conversation, so one rendering of each grade serves all
        choices = [formatter.completion(conversations[0], g) for g in options.grades] if conversations else []
        per_question = self._ask(options, backend, formatter, prompts, choices, label)
        k = len(options.questions)
        verdicts = []
        for i in range(len(items)):
            mine = per_question[i * k : (i + 1) * k]
            verdicts.append(
                Verdict(
                    score=sum(v.score for v in mine) / k,
                    grade=sum(v.grade for v in mine) / k,
                    invalid=any(v.invalid for v in mine),
                )
            )
        self.cache.put(key, {"verdicts": [v.model_dump() for v in verdicts]})
        return verdicts

    def _ask(self, options, backend: Backend, formatter: Formatter, prompts, choices, label) -> list[Verdict]:
        size = self.spec.generation.batch_size
        out: list[Verdict] = []
        with progress.track(f"[judge] {label}", total=len(prompts), unit="verdict") as bar:
            for first in range(0, len(prompts), size):
                rows = list(range(first, min(first + size, len(prompts))))
                if options.mode == "scores":
                    out += self._by_likelihood(options, backend, choices, rows, prompts)
                else:
                    out += self._by_verdict(options, backend, formatter, choices, rows, prompts)
                bar.advance(len(rows))
        return out

    def _by_likelihood(self, options, backend, choices, rows, prompts) -> list[Verdict]:
        values = options.units
        out = []
        for result in backend.score_choices([ScoreRequest(prompts[i], choices) for i in rows]):
            top = max(result.logprobs)
            weights = [math.exp(lp - top) for lp in result.logprobs]
            best = max(range(len(values)), key=lambda j: (result.logprobs[j], -j))
            score = sum(w * v for w, v in zip(weights, values)) / sum(weights)
            out.append(Verdict(score=score, grade=values[best]))
        return out

    def _by_verdict(self, options, backend, formatter, choices, rows, prompts) -> list[Verdict]:
        stop = [formatter.end_of_turn] if formatter.end_of_turn else []
        found: dict[int, str] = {}
        for attempt in range(options.retries + 1):
            todo = [i for i in rows if i not in found]
            if not todo:
                break
            requests = [
                GenerateRequest(
                    prompts[i],
                    options.max_new_tokens,
                    stop,
                    temperature=0.0 if attempt == 0 else 0.7,  # a retry samples: greedy would repeat itself
                    seed=sample_seed(self.spec.seed, f"judge/{i}", attempt),
                )
                for i in todo
            ]
            for i, generated in zip(todo, backend.generate(requests)):
                grade = parse_verdict(generated.text, options)
                if grade is not None:
                    found[i] = grade
        out: dict[int, Verdict] = {}
        for i, grade in found.items():
            value = options.unit(options.grade_value(grade))
            out[i] = Verdict(score=value, grade=value)
        missing = [i for i in rows if i not in found]
        if missing:
            try:
                fallback = self._by_likelihood(options, backend, choices, missing, prompts)
            except Exception as exc:  # a chat-only endpoint cannot score choices
                raise LadderError(
                    f"judge: {len(missing)} verdicts were out of form after {options.retries} retries and the judge "
                    f"cannot score grades by likelihood ({type(exc).__name__}: {exc}); raise `retries` or use another "
                    "judge"
                ) from None
            for i, verdict in zip(missing, fallback):
                out[i] = Verdict(score=verdict.score, grade=verdict.grade, invalid=True)
        return [out[i] for i in rows]

    # -- the eval step's answers ------------------------------------------------------------------
    def judge_outputs(
        self, examples: list[Example], outputs: SplitOutputs, label: str
    ) -> dict[str, list[list[Verdict]]]:
        """metric -> per example, a verdict per answer (each sample when sampling)."""
        judged: dict[str, list[list[Verdict]]] = {}
        for metric in self.options:
            items, counts = [], []
            for ex, out in zip(examples, outputs.outputs):
                answers = out.samples or [out.output]
                items += [Item(ex.input, a, ex.target or None) for a in answers]
                counts.append(len(answers))
            verdicts = self.grade(metric, items, f"{metric} {label}")
            per, at = [], 0
            for n in counts:
                per.append(verdicts[at : at + n])
                at += n
            judged[metric] = per
        return judged

    def calibrated(self, summary: SplitResult, records: list[ExampleRecord]) -> SplitResult:
        """The split's summary with its judge metrics' verdicts out of form and, where the judge is calibrated,
        the judged mean on the human scale (PPI)."""
        if not self.options or not records:
            return summary
        invalid = {m: sum((r.judge_invalid or {}).get(m, 0) for r in records) for m in self.options}
        ppi = {m: ppi_mean([r.scores[m] for r in records], *self._calibration[m]) for m in self._calibration}
        return summary.model_copy(update={"judge_invalid": invalid, "calibrated": ppi})

    # -- calibration, before any rung -------------------------------------------------------------
    def calibrate(self, grades: list[HumanGrade], seed: int) -> dict[str, JudgeSummary]:
        summaries = {}
        for metric, options in self.options.items():
            mine = [g for g in grades if g.metric == metric]
            summary = JudgeSummary(
                metric=metric,
                judge=self.identity(metric),
                mode=options.mode,
                scale="pass_fail" if options.scale == "pass_fail" else "{}-{}".format(*options.scale),
                questions=len(options.questions),
            )
            if mine:
                self.say(f"judge: grading the {len(mine)} answers people graded ({metric}), to calibrate it")
                verdicts = self.grade(
                    metric, [Item(g.input, g.output, g.reference) for g in mine], f"{metric} calibration"
                )
                human = [options.unit(g.grade) for g in mine]
                scores = [v.score for v in verdicts]
                self._calibration[metric] = (scores, human)
                summary = summary.model_copy(
                    update={
                        "calibration": agreement(
                            [v.grade for v in verdicts],
                            scores,
                            _nearest(human, options),
                            human,
                            [len(g.output) for g in mine],
                            seed,
                        ),
                        "calibration_source": shown_path(self.task.resolve(self.spec.data.human_grades or "")),
                        "calibration_invalid": sum(v.invalid for v in verdicts),
                    }
                )
            summaries[metric] = summary
        return summaries


def _nearest(human: list[float], options: JudgeOptions) -> list[float]:
    """People's grades (a mean of several may fall between grades) at the nearest grade, on [0, 1]."""
    values = sorted(set(options.units))
    return [min(values, key=lambda v: (abs(v - h), v)) for h in human]
