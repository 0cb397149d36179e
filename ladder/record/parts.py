"""The parts of a rung's result: per-example records, estimates with their intervals, paired comparisons,
the decision, costs. Every part is born here as a pydantic model, never assembled as a dict elsewhere."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict

from ladder.spec import Strict


class Estimate(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mean: float
    low: float
    high: float
    n: int
    method: str  # "wilson" | "bootstrap"

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


class PairedComparison(Strict):
    """``candidate`` against ``baseline`` on the same examples; delta = candidate - baseline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baseline: str = ""  # the rung (or baseline file) compared against; filled in by scoring.compare
    metric: str = ""
    delta: float
    low: float  # 95% interval of delta (paired bootstrap)
    high: float
    p_value: float  # two-sided, H0: delta = 0
    n: int
    method: str  # "mcnemar" | "paired-bootstrap"
    wins: int  # examples where the candidate scored higher
    losses: int  # examples where the baseline scored higher


class JudgeVerdict(Strict):
    """A judge's grade of one answer, on the metric's [0, 1] scale."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    score: float  # the probability-weighted grade (mode scores), or the parsed grade (generate)
    grade: float  # the discrete grade (the most likely, or the parsed one); with criteria, the share passed
    invalid: bool = False  # generate: out of form after the retries (then graded by likelihood)


class ExampleRecord(Strict):
    id: str
    split: Literal["dev", "test"]
    prompt_hash: str
    prompt_tokens: int
    completion_tokens: int
    output: str  # the predicted label, or the generated text (the first sample when sampling)
    target: str
    label_logprobs: dict[str, float] | None = None  # sum of token log-probabilities per label
    label_logprob_means: dict[str, float] | None = None  # per-token mean per label
    scores: dict[str, float]  # with several samples: the mean over them
    demo_ids: list[str] | None = None  # per-example demonstrations (selection "similar")
    retrieved: list[str] | None = None  # the retriever's top-k chunk ids, best first
    passages: int | None = None  # how many of them fit the prompt's token budget
    latency_s: float = 0.0  # wall time of the batch that answered it
    samples: list[str] | None = None  # every sampled answer (generation.samples > 1)
    invalid: int = 0  # answers not of the declared form (not a label; not JSON of the target's kind)
    # assess --repeats K: the first answer and the scores of each further repeat; ``scores`` is then the mean over all
    # K (the example is the unit every interval and gate resamples: repeats cluster by example)
    repeat_outputs: list[str] | None = None
    repeat_scores: list[dict[str, float]] | None = None
    judge_invalid: dict[str, int] | None = None  # judge metrics: verdicts out of form for this example's answers


class SplitResult(Strict):
    n: int
    metrics: dict[str, Estimate]
    wall_s: float  # model time for this split (as measured when first computed, also on a cache hit)
    latency_s_per_example: float  # wall_s / n: batched, amortized
    examples_per_s: float
    prompt_tokens_per_call: float  # what a serving bill counts: the whole prompt, shared prefix included
    completion_tokens_per_call: float  # the answer as the model would emit it, end-of-turn included
    cached: bool
    cache_key: str
    selection_s: float = 0.0  # choosing demonstrations / retrieving passages (included in the latency)
    latency_p50_s: float = 0.0  # per call: the wall time of the batch that answered it (+ its selection share)
    latency_p95_s: float = 0.0
    invalid_share: float = 0.0  # share of answers not of the declared form (see ExampleRecord.invalid)
    shared_prefix_tokens: int = 0  # tokens every prompt of the split begins with (instruction, demonstrations)
    scored_tokens_per_call: float = 0.0  # label scoring: every label's tokens, scored after the prompt in each call
    retrieval: dict[str, Estimate] = {}  # recall@k, mrr@k against the data's doc_id
    repeats: int = 1  # independent evaluations of every example (assess --repeats)
    # judge metrics: verdicts out of form (generate mode: after retries, then scored by likelihood) and, where a
    # calibration set exists, the judged mean corrected to the human scale (prediction-powered inference)
    judge_invalid: dict[str, int] = {}
    calibrated: dict[str, Estimate] = {}
    flaky: dict[str, float] = {}  # metric -> share of examples whose score changed across the repeats
    # paired comparisons of this rung against every earlier rung, every metric (same examples)
    comparisons: list[PairedComparison] = []

    def deciding(self, metric: str) -> Estimate:
        """The estimate decisions read: a calibrated judge's on the people's scale, else the metric's own."""
        return self.calibrated.get(metric) or self.metrics[metric]

    def comparison(self, baseline: str, metric: str) -> PairedComparison | None:
        return next((c for c in self.comparisons if c.baseline == baseline and c.metric == metric), None)


class JudgeAgreement(Strict):
    """A judge against human grades on the same calibration items (grades on the metric's [0, 1] scale)."""

    n: int
    accuracy: Estimate  # the judge's discrete grade equals the human grade
    kappa: Estimate  # Cohen's kappa (bootstrap interval)
    spearman: Estimate  # the judge's score against the human grade (bootstrap interval)
    judge_mean: float
    human_mean: float
    judge_length_spearman: float  # verbosity: how the judge's score follows the answer's length...
    human_length_spearman: float  # ...beside how the people's grade does


class JudgeSummary(Strict):
    """How a judge metric was graded in a run, and how far its grades can be trusted."""

    metric: str
    judge: str  # the judge model's identity (name and weights hash, or the endpoint's model)
    mode: Literal["scores", "generate"]
    scale: str  # "1-5", "pass_fail"
    questions: int  # calls per answer: 1, or one per criterion
    calibration: JudgeAgreement | None = None  # None: no human grades for this metric (the report says so)
    calibration_source: str | None = None  # data.human_grades as given (file)
    calibration_invalid: int = 0  # calibration verdicts out of form (generate mode)


Action = Literal["climb", "stop"]
Status = Literal["meets", "gap", "inconclusive"]


class Decision(Strict):
    action: Action
    status: Status  # the dev interval against the target
    meets_target: bool
    reason: str
    n_needed: int | None = None  # dev examples that would resolve an inconclusive rung (power of the deciding interval)
    dev_available: int | None = None  # dev examples the task has (its whole dev split, whatever --limit)


class TokenTimes(Strict):
    """Seconds per token of the base model through the run's backend, measured once per run on a fixed probe
    (``evaluate.measure_token_times``): every rung's machine time per call is its tokens times these."""

    prompt_s_per_token: float
    completion_s_per_token: float
    call_s: float = 0.0  # a backend call's (a batch's) cost whatever its size, shared by the calls of a batch
    probe_prompts: int
    repeats: int
    noise: float  # relative spread of a typical call's cost over the repeats: costs closer than this are a tie
    mode: Literal["loglik", "generate"] = "generate"  # how the probe answered: as the task is answered


class RungCost(Strict):
    """What a rung costs: measured (time, tokens) and, with the task's prices, money."""

    adaptation_s: float  # one-time: training wall time, or building the candidate (index, demonstrations)
    prompt_tokens_per_call: float
    completion_tokens_per_call: float
    seconds_per_call: float  # machine time per call: tokens x the run's probed per-token times, a prompt's shared
    # prefix counted once per batch as the backend computes it (older records: the rung's wall time per call)
    wall_seconds_per_call: float | None = None  # this rung's own batched wall time per call, as it happened to run
    noise: float = 0.0  # relative noise of the per-call estimate (the probe's): closer costs are a tie
    examples_per_s: float
    latency_p50_s: float
    latency_p95_s: float
    peak_memory_mb: float | None = None  # training's resident peak, where measured
    artifact_bytes: int | None = None
    unit: str  # a currency, or "machine-hours" when the task gives no prices
    basis: Literal["time", "tokens"]  # per-call cost from machine time, or from token prices
    adaptation_cost: float
    cost_per_1k_calls: float
    calls: float  # the expected volume (calls_per_month x months)
    total_cost: float  # adaptation + calls at that volume
    break_even_calls: dict[str, float | None] = {}  # vs each cheaper-to-build rung: calls to pay back
