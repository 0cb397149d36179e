"""The one training loop shared by every trained rung (``loop``), with what it optimizes plugged in as an
``Objective`` (``objectives``), its examples (``data``), how batches are cut into passes (``plan``), what it
decides by device (``device``), LoRA dropout on a CPU (``dropout``) and its checkpoints (``checkpoint``)."""

import importlib
from typing import Any

# name -> the module that defines it. Imported on first use (PEP 562): the store key of a finished training is
# computed from token ids alone, so a run that reuses it never imports torch (``data.encode_examples`` is pure).
_HOMES = {
    "IGNORE": "data",
    "TrainExample": "data",
    "collate": "data",
    "encode_examples": "data",
    "epoch_batches": "data",
    "autocast": "device",
    "device_type": "device",
    "distributed": "device",
    "shares_prefix": "device",
    "MaskDropout": "dropout",
    "cpu_dropout": "dropout",
    "TrainConfig": "loop",
    "TrainState": "loop",
    "evaluate_dev": "loop",
    "train_loop": "loop",
    "SUPERVISED": "objectives",
    "NEXT_TOKEN": "objectives",
    "BatchLoss": "objectives",
    "Objective": "objectives",
    "Supervised": "objectives",
    "answer_logits": "objectives",
    "answer_loss": "objectives",
    "common_prefix": "plan",
    "planned_prefix": "plan",
    "shared_prefix_length": "plan",
    "token_passes": "plan",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
