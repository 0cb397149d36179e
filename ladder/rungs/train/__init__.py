"""The one training loop shared by every trained rung (``loop``), with what it optimizes plugged in as an
``Objective`` (``objectives``), its examples (``data``), how batches are cut into passes (``plan``), what it
decides by device (``device``), LoRA dropout on a CPU (``dropout``) and its checkpoints (``checkpoint``)."""

from ladder.rungs.train.data import (
    IGNORE,
    TrainExample,
    collate,
    encode_examples,
    epoch_batches,
)
from ladder.rungs.train.device import autocast, device_type, distributed, shares_prefix
from ladder.rungs.train.dropout import MaskDropout, cpu_dropout
from ladder.rungs.train.loop import (
    TrainConfig,
    TrainState,
    evaluate_dev,
    train_loop,
)
from ladder.rungs.train.objectives import (
    SUPERVISED,
    BatchLoss,
    Objective,
    Supervised,
    answer_logits,
    answer_loss,
)
from ladder.rungs.train.plan import (
    common_prefix,
    planned_prefix,
    shared_prefix_length,
    token_passes,
)

__all__ = [
    "IGNORE",
    "SUPERVISED",
    "BatchLoss",
    "MaskDropout",
    "Objective",
    "Supervised",
    "TrainConfig",
    "TrainExample",
    "TrainState",
    "answer_logits",
    "answer_loss",
    "autocast",
    "collate",
    "common_prefix",
    "cpu_dropout",
    "device_type",
    "distributed",
    "encode_examples",
    "epoch_batches",
    "evaluate_dev",
    "planned_prefix",
    "shared_prefix_length",
    "shares_prefix",
    "token_passes",
    "train_loop",
]
