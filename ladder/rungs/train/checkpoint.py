"""Checkpoints through torch.distributed.checkpoint: the trainable weights, the optimizer's state and the best
weights so far, each rank writing its own shards (a sharded model's shards, or its part of a replicated one),
saved atomically and resumable on another number of ranks (tensors are named by their parameter's name and
resharded on load); the scheduler, random state and progress beside them.

A checkpoint folder holds ``.metadata`` and ``*.distcp`` (torch.distributed.checkpoint), ``extra.pt`` (scheduler,
random state, whether best weights are saved) and ``progress.json``, written last. Several machines must see one
file system at the training's folder (as torchrun's own checkpointing assumes)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from ladder.fileio import atomic_write_text
from ladder.rungs.train.device import distributed


def trainable_state(model) -> dict[str, torch.Tensor]:
    """A copy of the trainable weights (sharded like the model's: a sharded model's copy is sharded too)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable(model, state: dict[str, torch.Tensor]) -> None:
    named = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            named[name].copy_(value)


def _options(strict: bool = True):
    """The trainable weights only (a LoRA checkpoint does not copy the frozen base); loading them leaves the
    frozen ones as they are (``strict`` off: they are not in it)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(ignore_frozen_params=True, strict=strict)


def _state(model, optimizer, best: dict | None) -> dict:
    from torch.distributed.checkpoint.state_dict import get_state_dict

    weights, optim = get_state_dict(model, optimizer, options=_options())
    state = {"model": weights, "optim": optim}
    if best is not None:
        state["best"] = best
    return state


def _barrier() -> None:
    if distributed()[1] > 1:
        import torch.distributed as dist

        dist.barrier()


def save_checkpoint(folder: Path, model, optimizer, scheduler, progress: dict, best_state: dict | None) -> None:
    """Every rank writes its shards into ``<folder>.tmp``; then rank 0 writes the rest (progress.json last,
    everything fsync'd) and swaps the folder in. A kill at any point leaves a complete checkpoint: the old folder,
    or the new one in ``.tmp`` (see ``complete_checkpoint``). The random state goes with it, so dropout after a
    resume draws the same masks as a run that was never interrupted. A collective: every rank calls it."""
    import torch.distributed.checkpoint as dcp

    rank, _ = distributed()
    tmp = folder.with_name(folder.name + ".tmp")
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier()
    dcp.save(_state(model, optimizer, best_state), checkpoint_id=tmp)
    _barrier()  # every rank's shards are written
    if rank == 0:
        extra = {"scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(), "best": best_state is not None}
        with open(tmp / "extra.pt", "wb") as handle:
            torch.save(extra, handle)
            handle.flush()
            os.fsync(handle.fileno())
        atomic_write_text(tmp / "progress.json", json.dumps(progress))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    _barrier()  # no rank goes on (or leaves) before the checkpoint is in place


def load_checkpoint(found: Path, model, optimizer, scheduler, device) -> tuple[dict, dict | None]:
    """Load a complete checkpoint into the model, optimizer and scheduler, whatever the number of ranks that
    saved it: (its progress, the best weights or None). A collective: every rank calls it."""
    progress = json.loads((found / "progress.json").read_text())
    if (found / "state.pt").is_file():  # saved whole by ladder 0.2.0 (torch.save, one process)
        return progress, _load_whole(found, model, optimizer, scheduler, device)
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict

    extra = torch.load(found / "extra.pt", map_location="cpu", weights_only=False)
    state = _state(model, optimizer, trainable_state(model) if extra["best"] else None)
    dcp.load(state, checkpoint_id=found)
    set_state_dict(
        model,
        optimizer,
        model_state_dict=state["model"],
        optim_state_dict=state["optim"],
        options=_options(strict=False),
    )
    scheduler.load_state_dict(extra["scheduler"])
    torch.set_rng_state(extra["rng"])
    return progress, state.get("best")


def _load_whole(found: Path, model, optimizer, scheduler, device) -> dict | None:
    saved = torch.load(found / "state.pt", map_location=device)
    load_trainable(model, saved["trainable"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    if "rng" in saved:  # checkpoints from before it was saved resume with a fresh random state
        torch.set_rng_state(saved["rng"])
    return torch.load(found / "best.pt", map_location=device) if (found / "best.pt").is_file() else None


def complete_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint: the folder, or a finished ``.tmp`` a kill left before the swap."""
    if (folder / "progress.json").is_file():
        return folder
    tmp = folder.with_name(folder.name + ".tmp")
    return tmp if (tmp / "progress.json").is_file() else None
