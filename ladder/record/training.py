"""What a trained rung records: its training (curve, cost, teacher, pairs), the adapter certificate, and the
base model's identity."""

from __future__ import annotations

from typing import Literal

from ladder.record.parts import JudgeAgreement
from ladder.spec import Strict


class CurvePoint(Strict):
    step: int
    loss: float  # training loss of that optimizer step (mean over its micro-batches)
    lr: float


class DevEvaluation(Strict):
    step: int
    dev_loss: float  # the objective's loss on dev (per answer token, or per pair for preference)
    dev_metric: float | None = None  # the target metric, when it chose the checkpoint (train.select_by: metric)
    reward_accuracy: float | None = None  # preference: dev pairs whose chosen answer gains more than the rejected
    reward_margin: float | None = None  # preference: mean beta x (chosen - rejected log-ratio to the reference)
    chosen_logratio: float | None = None  # preference: mean log p(chosen) - log p(rejected), the policy's own


class TeacherRecord(Strict):
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


class JudgedPair(Strict):
    """One pair a judge made (RLAIF): the best and the worst of the answers sampled for an input, and their scores."""

    input: str
    chosen: str
    rejected: str
    chosen_score: float
    rejected_score: float


class PairsRecord(Strict):
    """Where a preference rung's pairs came from."""

    source: str  # "data.preferences", the rung whose wrong answers were rejected, or "judge" (RLAIF)
    train_pairs: int
    dev_pairs: int
    skipped: int = 0  # train examples without a wrong answer to reject
    seconds: float = 0.0  # generating the rejected answers
    beta: float
    sft_weight: float
    init: str | None = None  # the lora rung whose adapter it started from (and is the reference)
    dev_reference_logratio: float | None = None  # the reference's mean log p(chosen) - log p(rejected) on dev pairs
    # pairs_from judge (RLAIF): who judged, by what, how the answers were sampled, and every pair kept
    judge: str | None = None  # the judge model's identity
    principles: list[str] = []
    samples: int | None = None
    temperature: float | None = None
    margin: float | None = None
    chosen_longer: float | None = None  # share of pairs whose chosen answer is the longer (verbosity bias)
    judge_vs_metric: JudgeAgreement | None = None  # the judge against the target metric on the dev samples
    judged: list[JudgedPair] = []  # the train pairs


class TrainingOutcome(Strict):
    """What the training loop reports (``rungs/train/loop.py``): steps, time, tokens, memory, the curve and the dev
    evaluations. The rung's record adds the rest (``TrainingRecord``)."""

    steps: int
    epochs: float
    wall_s: float  # the training's own wall time (also when reused: what it took then)
    tokens_seen: int  # real (non-padding) tokens through the forward pass
    answer_tokens: int  # tokens the loss was computed on
    tokens_per_s: float
    rss_start_mb: float  # rank 0's, under torchrun
    rss_peak_mb: float
    curve: list[CurvePoint] = []
    dev_evals: list[DevEvaluation] = []
    best_step: int = 0
    stopped_early: bool = False
    resumed_from_step: int | None = None
    truncated_examples: int = 0
    processes: int = 1  # torchrun's processes (ranks) that trained it; the last run's, when resumed
    strategy: Literal["none", "ddp", "fsdp"] = "none"  # how they shared it (train.strategy, resolved)


class TrainingRecord(TrainingOutcome):
    """What training a lora/full/distill/preference rung took and produced: the loop's outcome, the artifact, and
    where a distill or preference rung's data came from."""

    train_examples: int
    trainable_params: int | None = None  # full fine-tune only
    artifact: str  # the adapter or model folder in the run folder
    artifact_bytes: int
    artifact_sha256: str
    checkpoint_dir: str  # the training store entry it came from
    reused: bool = False  # an unchanged earlier training was reused, no weights loaded
    objective: str = "supervised"  # or "preference"
    data_s: float = (
        0.0  # making the training data: a teacher's answers, the model's own mistakes, the adapter it starts from
    )
    teacher: TeacherRecord | None = None  # distill
    pairs: PairsRecord | None = None  # preference
    template_sha256: str | None = None  # the prompt format it trained with (backends.base.template_fingerprint)


class CertificateCheck(Strict):
    name: Literal["changes_outputs", "matches_reference", "same_template"]
    passed: bool | None  # None: does not apply (the transformers backend is the reference itself)
    value: float | None = None  # what was measured (nats), where a number
    tolerance: float | None = None
    detail: str


class AdapterCertificate(Strict):
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


class ModelIdentity(Strict):
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
