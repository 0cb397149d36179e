"""The run record (``run.json``): everything a report or a gate needs, and nothing else is read.

Saved atomically after every rung, so an interrupted run keeps what it measured. ``schema_version``
changes whenever a field changes meaning; older records are migrated on load (``MIGRATIONS``), so a
committed baseline or example report survives the next schema change; a newer one is a clear error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ladder.errors import LadderError
from ladder.fileio import atomic_write_text, read_json
from ladder.scoring.stats import Estimate, PairedComparison
from ladder.spec import TargetSpec, TaskSpec

SCHEMA_VERSION = 3


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExampleRecord(_Record):
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


class SplitResult(_Record):
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
    flaky: dict[str, float] = {}  # metric -> share of examples whose score changed across the repeats
    # paired comparisons of this rung against every earlier rung, every metric (same examples)
    comparisons: list[PairedComparison] = []

    def comparison(self, baseline: str, metric: str) -> PairedComparison | None:
        return next((c for c in self.comparisons if c.baseline == baseline and c.metric == metric), None)


class Decision(_Record):
    action: Literal["climb", "stop"]
    status: Literal["meets", "gap", "inconclusive"]  # the dev interval against the target
    meets_target: bool
    reason: str
    n_needed: int | None = None  # dev examples that would resolve an inconclusive rung (power of the deciding interval)
    dev_available: int | None = None  # dev examples the task has (its whole dev split, whatever --limit)


class TokenTimes(_Record):
    """Seconds per token of the base model through the run's backend, measured once per run on a fixed probe
    (``evaluate.measure_token_times``): every rung's machine time per call is its tokens times these."""

    prompt_s_per_token: float
    completion_s_per_token: float
    call_s: float = 0.0  # a backend call's (a batch's) cost whatever its size, shared by the calls of a batch
    probe_prompts: int
    repeats: int
    noise: float  # relative spread of a typical call's cost over the repeats: costs closer than this are a tie
    mode: Literal["loglik", "generate"] = "generate"  # how the probe answered: as the task is answered


class RungCost(_Record):
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


class CurvePoint(_Record):
    step: int
    loss: float  # training loss of that optimizer step (mean over its micro-batches)
    lr: float


class DevEvaluation(_Record):
    step: int
    dev_loss: float  # the objective's loss on dev (per answer token, or per pair for preference)
    dev_metric: float | None = None  # the target metric, when it chose the checkpoint (train.select_by: metric)
    reward_accuracy: float | None = None  # preference: dev pairs whose chosen answer gains more than the rejected
    reward_margin: float | None = None  # preference: mean beta x (chosen - rejected log-ratio to the reference)
    chosen_logratio: float | None = None  # preference: mean log p(chosen) - log p(rejected), the policy's own


class TeacherRecord(_Record):
    """Where a distill rung's answers came from and what they cost."""

    rung: str  # the teacher rung (its prompt)
    model: str | None = None  # another model answered with that prompt (teacher_model), else the task's
    url: str | None = None  # an OpenAI-compatible teacher endpoint
    inputs: int  # inputs answered: train + unlabeled
    unlabeled: int = 0
    kept: int  # answers learnt after the filter
    train_correct: float | None = None  # share of train inputs the teacher answered fully correctly
    seconds: float  # the teacher's generation time (as measured when its answers were computed)
    prompt_tokens_per_call: float  # the teacher's prompt; the student's is the rung's own (zero-shot)


class PairsRecord(_Record):
    """Where a preference rung's pairs came from."""

    source: str  # "data.preferences", or the rung whose wrong answers were rejected
    train_pairs: int
    dev_pairs: int
    skipped: int = 0  # train examples without a wrong answer to reject
    seconds: float = 0.0  # generating the rejected answers
    beta: float
    sft_weight: float
    init: str | None = None  # the lora rung whose adapter it started from (and is the reference)
    dev_reference_logratio: float | None = None  # the reference's mean log p(chosen) - log p(rejected) on dev pairs


class TrainingRecord(_Record):
    """What training a lora/full/distill/preference rung took and produced (rungs/train.py's outcome + the
    artifact, and where a distill or preference rung's data came from)."""

    steps: int
    epochs: float
    wall_s: float  # the training's own wall time (also when reused: what it took then)
    tokens_seen: int  # real (non-padding) tokens through the forward pass
    answer_tokens: int  # tokens the loss was computed on
    tokens_per_s: float
    rss_start_mb: float
    rss_peak_mb: float
    curve: list[CurvePoint] = []
    dev_evals: list[DevEvaluation] = []
    best_step: int = 0
    stopped_early: bool = False
    resumed_from_step: int | None = None
    truncated_examples: int = 0
    train_examples: int
    trainable_params: int | None = None  # full fine-tune only
    artifact: str  # the adapter or model folder in the run folder
    artifact_bytes: int
    artifact_sha256: str
    checkpoint_dir: str  # the training store entry it came from
    reused: bool = False  # an unchanged earlier training was reused, no weights loaded
    objective: str = "supervised"  # or "preference"
    data_s: float = 0.0  # making the training data: a teacher's answers, the model's own mistakes
    teacher: TeacherRecord | None = None  # distill
    pairs: PairsRecord | None = None  # preference
    template_sha256: str | None = None  # the prompt format it trained with (backends.base.template_fingerprint)


class CertificateCheck(_Record):
    name: Literal["changes_outputs", "matches_reference", "same_template"]
    passed: bool | None  # None: does not apply (the transformers backend is the reference itself)
    value: float | None = None  # what was measured (nats), where a number
    tolerance: float | None = None
    detail: str


class AdapterCertificate(_Record):
    """What the backend that served a trained rung showed on a fixed probe of dev inputs: the artifact changes
    what is served (an adapter that silently does nothing is caught), the served log-probabilities match the
    transformers/PEFT reference (vllm, openai), and the prompt format served is the one trained with. A trained
    rung without a passing certificate is never recommended, and ``ladder gate`` refuses it."""

    backend: str
    probe: int  # dev inputs probed
    checks: list[CertificateCheck]

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.checks)

    def failure(self) -> CertificateCheck | None:
        return next((c for c in self.checks if c.passed is False), None)


class ModelIdentity(_Record):
    """The base model a run served: what its weights and tokenizer hash to, and how it was served.
    Backend-specific fields are None elsewhere."""

    backend: str
    name: str
    weights_sha256: str
    tokenizer_sha256: str
    source: str | None = None
    path: str | None = None
    config_sha256: str | None = None
    device: str | None = None
    dtype: str | None = None
    attention: str | None = None  # transformers
    torch: str | None = None
    transformers: str | None = None
    vllm: str | None = None  # vllm
    tensor_parallel_size: int | None = None
    base_url: str | None = None  # openai
    served_model: str | None = None
    api: str | None = None
    server: dict[str, str | int] | None = None
    server_version: str | None = None
    base_weights_sha256: str | None = None  # set when these weights are a trained artifact's
    artifact: Literal["adapter", "model"] | None = None
    quantized: bool | None = None


class RungResult(_Record):
    name: str
    type: str
    settings: dict
    demo_ids: list[str]
    build_s: float
    splits: dict[str, SplitResult]  # "dev", "test"
    decision: Decision
    examples: list[ExampleRecord]
    training: TrainingRecord | None = None  # lora/full rungs
    cost: RungCost | None = None
    certificate: AdapterCertificate | None = None  # trained rungs: what the serving backend showed of the artifact

    def certified(self) -> bool:
        """Not a trained rung, or one whose artifact passed its certificate (a record without one fails closed)."""
        if self.training is None:
            return True
        return self.certificate is not None and self.certificate.passed


class SkippedRung(_Record):
    name: str
    type: str
    reason: str


class Recommendation(_Record):
    rung: str | None  # the cheapest rung meeting the target; None when none does
    met: bool
    best_rung: str | None  # best measured on dev (when none meets the target)
    next_rung: str | None  # what to try next when none meets it
    summary: str
    reasons: list[str] = []  # the evidence, one sentence each, for a stakeholder
    holm_p: dict[str, float] = {}  # "candidate vs baseline" -> Holm-adjusted p (dev, target metric)


class DataFinding(_Record):
    """One finding of a data check: the examples involved (split/id) and what is wrong with them."""

    examples: list[str]  # "split/id", first the one the finding is about
    where: str = ""  # file:line of that first example
    detail: str
    score: float | None = None  # similarity, confidence of a label error, length: what ranks the findings


class DataCheck(_Record):
    name: str
    title: str
    severity: Literal["ok", "info", "warning", "error"]
    count: int  # findings in all (the list below may be cut)
    summary: str
    findings: list[DataFinding] = []
    allowed_by: str | None = None  # the spec field that turned an error into a warning


class DataReport(_Record):
    """What `ladder check-data` found (the cheap checks run before every assessment too)."""

    checks: list[DataCheck]
    label_balance: dict[str, dict[str, int]] | None = None  # split -> label -> count (label tasks)

    def check(self, name: str) -> DataCheck | None:
        return next((c for c in self.checks if c.name == name), None)

    @property
    def errors(self) -> list[DataCheck]:
        return [c for c in self.checks if c.severity == "error"]


class Evidence(_Record):
    """One signal of what kind of gap is left after the prompt-side rungs."""

    signal: str  # invalid_outputs, lenient_gap, fewshot_gain, rag_gain, recall_follows, unknown_share
    points_to: Literal["behaviour", "knowledge", "neither"]
    value: float | None = None
    text: str


class Diagnosis(_Record):
    """What kind of gap remains after prompt, few-shot and retrieval, with its evidence: behaviour or format
    (fine-tuning is likely to help) or missing knowledge (retrieval, not fine-tuning)."""

    kind: Literal["none", "behaviour", "knowledge", "mixed", "unclear"]
    best_rung: str  # the best prompt-side rung on dev
    gap: float  # target - its dev mean (negative: above the target)
    evidence: list[Evidence] = []
    advice: str


class Resolution(_Record):
    """``ladder resolve``: an inconclusive rung's dev decision, walked example by example with an anytime-valid
    confidence sequence (scoring.sequential) over the dev examples the run measured and then further ones (beyond
    its --limit, then data.reserve), stopped as soon as it decides."""

    rung: str
    metric: str
    threshold: float
    verdict: Literal["meets", "gap", "undecided"]
    n: int  # examples the sequence used (the run's own first)
    measured: int  # of which the run had measured
    low: float  # the confidence sequence when it stopped
    high: float
    alpha: float
    scores: dict[str, float] = {}  # the further examples' scores (id -> target metric), in the order evaluated
    sources: dict[str, int] = {}  # where the further examples came from: "dev beyond --limit", "data.reserve"
    created: str


class AssessmentRun(_Record):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    created: str
    status: Literal["running", "complete", "failed", "interrupted"]
    error: str | None = None
    ladder_version: str
    task_name: str
    task_path: str
    spec: TaskSpec  # the resolved spec, defaults filled in
    data_hashes: dict[str, str]
    data_sizes: dict[str, int]  # examples per split (before --limit)
    limit: int | None
    model: ModelIdentity
    packages: dict[str, str]
    seed: int
    target: TargetSpec
    exhaustive: bool = False  # every configured rung was run, whatever the decisions
    repeats: int = 1  # each rung evaluated this many times, the cache bypassed after the first (assess --repeats)
    command: str | None = None  # the command line that made it (reproducibility manifest)
    inputs: dict[str, dict[str, str]] = {}  # split -> example id -> input text (reports show won/lost examples)
    warnings: list[str] = []
    token_times: TokenTimes | None = None  # the per-token times every rung's per-call cost is computed from
    rungs: list[RungResult] = []
    skipped: list[SkippedRung] = []
    recommendation: Recommendation | None = None
    data_checks: DataReport | None = None
    diagnosis: Diagnosis | None = None
    resolutions: list[Resolution] = []  # ladder resolve, newest last

    def rung(self, name: str) -> RungResult | None:
        return next((r for r in self.rungs if r.name == name), None)


def save_run(run: AssessmentRun, path: Path) -> None:
    atomic_write_text(path, run.model_dump_json(indent=1) + "\n")


def _v1_to_v2(raw: dict) -> dict:
    """v1 kept one comparison per metric against the previous rung, a decision without a status, and
    decided on the dev mean, climbing whatever the interval (the policy it ran, written into its spec)."""
    from ladder.spec import CostSpec, PolicySpec

    raw["spec"].setdefault("policy", PolicySpec(confidence="point", inconclusive="climb").model_dump(mode="json"))
    raw["spec"].setdefault("cost", CostSpec().model_dump(mode="json"))
    for rung in raw.get("rungs", []):
        for split in rung.get("splits", {}).values():
            old = split.get("comparisons") or {}
            split["comparisons"] = [{**cmp, "metric": metric} for metric, cmp in old.items()]
            split.setdefault("latency_p50_s", split.get("latency_s_per_example", 0.0))
            split.setdefault("latency_p95_s", split.get("latency_s_per_example", 0.0))
        decision = rung["decision"]
        if "status" not in decision:
            measured = "gap is measured" in decision.get("reason", "")
            decision["status"] = "meets" if decision.get("meets_target") else ("gap" if measured else "inconclusive")
    return raw


def _v2_to_v3(raw: dict) -> dict:
    """v3 typed the record's loose parts (spec, target, model identity, training). Fields a v2 record
    could lack: a training's reuse flag, artifact hash and store entry (added during v2)."""
    for rung in raw.get("rungs", []):
        training = rung.get("training")
        if training:
            training.setdefault("reused", False)
            training.setdefault("artifact_sha256", "")
            training.setdefault("checkpoint_dir", "")
    return raw


# version -> function turning a record of that version into the next one
MIGRATIONS: dict[int, Callable[[dict], dict]] = {1: _v1_to_v2, 2: _v2_to_v3}


def migrate(raw: dict, source: str) -> dict:
    version = raw.get("schema_version")
    if not isinstance(version, int) or version < 1 or version > SCHEMA_VERSION:
        raise LadderError(
            f"{source}: schema_version {version!r} is not one this ladder reads (1 to {SCHEMA_VERSION}; "
            "a newer record needs a newer ladder)"
        )
    while version < SCHEMA_VERSION:
        raw = MIGRATIONS[version](raw)
        version += 1
        raw["schema_version"] = version
    return raw


def load_run(path: str | Path) -> AssessmentRun:
    path = Path(path)
    if path.is_dir():
        path = path / "run.json"
    raw = read_json(path, "run record")
    if not isinstance(raw, dict):
        raise LadderError(f"{path}: not a run record (expected a JSON object)")
    raw = migrate(raw, str(path))
    try:
        return AssessmentRun.model_validate(raw, context={"record": True})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise LadderError(f"{path}: {loc}: {first['msg']}") from None
