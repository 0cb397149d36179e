"""``ladder train``: one trained rung of a task, outside an assessment (under torchrun, on every rank). The
artifact stays in the training store, where a later ``ladder assess`` finds and reuses it."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from ladder.data.splits import load_task_data
from ladder.errors import LadderError
from ladder.rungs import build_candidate
from ladder.rungs.base import Candidate
from ladder.spec import TRAINED_RUNGS, load_task, shown_path


@dataclass(frozen=True)
class Trained:
    candidate: Candidate
    rank: int  # this process's rank (0 without torchrun)
    world: int  # processes that trained it


def train(
    task_path: str | Path, rung_name: str, say: Callable[[str], None] = lambda _msg: None, model: str | None = None
) -> Trained:
    """``model``: another base model than the task's (``--model``)."""
    from ladder.extras import require_for
    from ladder.run.assess import select_rungs

    task = load_task(task_path).with_model(model)
    (rung,) = select_rungs(task, [rung_name])
    if rung.type not in TRAINED_RUNGS:
        raise LadderError(f"--rung: {rung_name!r} is a {rung.type} rung; only {', '.join(TRAINED_RUNGS)} rungs train")
    require_for(None, [rung], shown_path(task.path))
    data = load_task_data(task)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    learns_from_answers = rung.type in ("distill", "preference")
    if world > 1 and learns_from_answers:
        raise LadderError(
            f"--rung: {rung_name!r} is a {rung.type} rung: it first needs another rung's answers, which "
            "one process makes; train it without torchrun"
        )
    # several processes, or torchrun's one asked to shard (FSDP2 on one GPU, to offload its shards to host memory)
    grouped = world > 1 or ("LOCAL_RANK" in os.environ and rung.train.strategy == "fsdp")
    device = _join_process_group() if grouped else None
    with ExitStack() as stack:
        backend = None
        # another rung's answers (a teacher's, the model's own mistakes) or dev measurements mid-training go
        # through the task's backend and the result cache, as in an assessment
        if learns_from_answers or rung.train.early_stopping == "dev_metric":
            from ladder.run.context import task_backend
            from ladder.run.datacheck import untrainable

            spec = task.spec
            backend = task_backend(task)
            stack.callback(backend.close)
            formatter = backend.formatter(spec.prompt.format)
            cannot_train = untrainable(spec, [rung], data.splits.train, formatter, backend.count_tokens)
            if cannot_train:  # before the teacher's answers or the model's mistakes are made
                raise LadderError(f"{shown_path(task.path)}: {cannot_train}")
        from ladder.run.context import build_context

        ctx = build_context(
            task,
            data.splits.train,
            data.splits.dev,
            backend,
            say=say,
            device=device,
            **data.for_rungs(),
        )
        candidate = build_candidate(rung, ctx)  # no run folder: the artifact stays in the training store
    if grouped:  # every rank is done before any leaves (rank 0 wrote the artifact)
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return Trained(candidate, int(os.environ.get("RANK", "0")), world)


def _join_process_group() -> str | None:
    """torchrun's process group (NCCL on GPUs, gloo on CPUs); the device this rank trains on."""
    import torch
    import torch.distributed as dist

    device = None
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    dist.init_process_group("nccl" if device else "gloo")
    return device
