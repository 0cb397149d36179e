"""Checkpoints: the trainable weights, optimizer, scheduler and progress saved atomically, and the last complete
one found again."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from ladder.fileio import atomic_write_text


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable(model, state: dict[str, torch.Tensor]) -> None:
    named = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            named[name].copy_(value)


def save_checkpoint(folder: Path, model, optimizer, scheduler, progress: dict, best_state: dict | None) -> None:
    """Written whole into ``<folder>.tmp`` (progress.json last, everything fsync'd), then swapped in. A
    kill at any point leaves a complete checkpoint: the old folder, or the new one in ``.tmp`` (see
    ``_complete_checkpoint``). The random state goes with it, so dropout after a resume draws the same
    masks as a run that was never interrupted."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {
        "trainable": trainable_state(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
    }
    for name, content in (("state.pt", state), ("best.pt", best_state)):
        if content is None:
            continue
        with open(tmp / name, "wb") as handle:
            torch.save(content, handle)
            handle.flush()
            os.fsync(handle.fileno())
    atomic_write_text(tmp / "progress.json", json.dumps(progress))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def complete_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint: the folder, or a finished ``.tmp`` a kill left before the swap."""
    if (folder / "progress.json").is_file():
        return folder
    tmp = folder.with_name(folder.name + ".tmp")
    return tmp if (tmp / "progress.json").is_file() else None
