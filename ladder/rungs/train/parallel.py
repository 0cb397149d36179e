"""How the processes torchrun starts share one training: the strategy (``train.strategy``), the engine that runs a
pass under it, and the weights gathered whole once trained.

- ``ddp``: every rank holds the whole model; torch's DistributedDataParallel wraps the pass (``LossOf``) and
  exchanges the gradients in buckets while the step's last backward pass runs (the step's earlier passes run
  under ``no_sync``). The adapter rungs' default: their trainable weights are small.
- ``fsdp``: FSDP2 (``torch.distributed.fsdp.fully_shard``) shards the parameters, gradients and AdamW state over
  the ranks, each transformer block its own group (gathered whole for its forward and again for its backward,
  its gradient reduce-scattered), the embeddings, final norm and output layer in the root's group (``LossOf``,
  the module whose forward runs first). On CUDA the blocks compute in bf16 with fp32 gradient reduction and fp32
  master weights; ``cpu_offload`` keeps the shards in host memory. Every rank makes the same number of passes
  (its collectives must meet), and every pass reduce-scatters its gradients (they stay sharded between passes).
  The full rung's default.

The loss of a pass is divided by the step's global weight times the world size (both engines average the ranks'
gradients), so N processes with the same total batch compute the same update as one.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ladder.rungs.train.device import device_type, distributed, grouped, whole_rows
from ladder.rungs.train.objectives import Objective


class LossOf(torch.nn.Module):
    """The objective's summed loss over a pass as a module's forward, so that DDP and FSDP see every pass (their
    hooks gather weights and exchange gradients around it). The model inside is the one the loop trains,
    evaluates and checkpoints; ``result`` keeps the pass's token counts and statistics."""

    def __init__(self, model, objective: Objective, pad_id: int, device):
        super().__init__()
        self.model = model
        self.objective, self.pad_id, self.device = objective, pad_id, device
        self.result = None

    def forward(self, examples: list) -> torch.Tensor:
        self.result = self.objective.loss(self.model, examples, self.pad_id, self.device)
        return self.result.loss


def resolve_strategy(strategy: str, adapter: bool) -> str:
    """``none``, ``ddp`` or ``fsdp`` for this process group: ``auto`` is fsdp for a full fine-tune, ddp for adapters,
    over several processes; one process (torchrun with one, e.g. to offload one GPU's shards to host memory) shards
    only when ``fsdp`` is asked for. Without a process group: none."""
    if not grouped():
        return "none"
    _, world = distributed()
    if strategy == "auto":
        strategy = "ddp" if adapter else "fsdp"
    return "none" if world == 1 and strategy != "fsdp" else strategy


def is_adapter(model) -> bool:
    """Whether only some weights train (LoRA): then the frozen base need not be sharded to fit."""
    return any(not p.requires_grad for p in model.parameters())


@dataclass
class Engine:
    """Runs the loop's passes under a strategy: ``pass_loss`` alone (one process), or wrapped by DDP or FSDP2."""

    strategy: str  # none | ddp | fsdp
    pass_loss: LossOf
    run: torch.nn.Module  # what a pass calls: pass_loss itself, or its DDP wrapper (FSDP2 hooks pass_loss itself)

    def __call__(self, examples: list) -> torch.Tensor:
        return self.run(examples)

    def holding(self, last: bool):
        """The context of a pass's forward and backward: under DDP the gradients are exchanged in the step's last
        pass only; FSDP2 reduce-scatters every pass (its gradients stay sharded)."""
        if self.strategy == "ddp" and not last:
            return self.run.no_sync()
        return contextlib.nullcontext()

    def reshard(self) -> None:
        """After a forward without backward (a dev evaluation), the root's weights are whole until resharded:
        reshard them, so the model's parameters are its shards again (to copy, save or load)."""
        if self.strategy == "fsdp":
            self.pass_loss.reshard()

    @property
    def same_passes(self) -> bool:
        """Every rank must make the same number of passes (FSDP2 gathers each block in every forward)."""
        return self.strategy == "fsdp"


def make_engine(pass_loss: LossOf, strategy: str, device, *, cpu_offload: bool = False) -> Engine:
    """The engine for ``strategy`` (resolved: none, ddp or fsdp). Under fsdp the model's parameters become
    sharded DTensors: an optimizer is made after this."""
    if strategy == "none":
        return Engine("none", pass_loss, pass_loss)
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device_type(device) == "cuda" and device.index is not None else None
        # parameters broadcast from rank 0 at once; buckets as gradient views, no copy. Every trainable
        # parameter takes part in every pass of these objectives.
        return Engine(
            "ddp", pass_loss, DistributedDataParallel(pass_loss, device_ids=ids, gradient_as_bucket_view=True)
        )
    shard(pass_loss, device, cpu_offload=cpu_offload)
    return Engine("fsdp", pass_loss, pass_loss)


def shard(pass_loss: LossOf, device, *, cpu_offload: bool = False) -> None:
    """FSDP2 over every rank: each transformer block, then the root (``pass_loss``: what is left, the embeddings,
    final norm and output layer). On CUDA, bf16 compute with fp32 reduction (the master weights stay fp32), and the
    shards in host memory with ``cpu_offload``."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

    from ladder.backends.hf.forward import decoder_blocks

    _, world = distributed()
    kind = device_type(device)
    options: dict = {"mesh": init_device_mesh(kind, (world,))}
    if kind == "cuda":
        options["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if cpu_offload:
            options["offload_policy"] = CPUOffloadPolicy()
    for block in decoder_blocks(pass_loss.model):
        fully_shard(block, **options)
    fully_shard(pass_loss, **options)


def is_sharded(model) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def gathered(model) -> dict[str, torch.Tensor] | None:
    """The whole weights of a sharded model, on rank 0, in host memory (a collective: every rank calls it; the
    others get an empty dict); None for a model that is not sharded (its own weights are whole). A weight tied to
    another (an output layer to the embeddings) is kept once, under the name the model's own save keeps."""
    if not is_sharded(model):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=is_adapter(model))
    whole = get_model_state_dict(model, options=options)
    # a parameter under two names (an output layer tied to the embeddings) is gathered as two tensors: keep the
    # first name, as the model's own save does
    kept = {name for name, _ in model.named_parameters()}
    aliases = {name for name, _ in model.named_parameters(remove_duplicate=False)} - kept
    return {name: value for name, value in whole.items() if name not in aliases}


def rows_whole(engine: Engine, activation_checkpointing: bool):
    """The loop's context: rows do not share their prompt prefix under FSDP2 (the prefix's own pass would call
    each block twice in a step, and a block resharded after its first call cannot serve the first call's
    backward) nor with activation checkpointing (the recomputation runs without the prefix's cache)."""
    return whole_rows() if engine.strategy == "fsdp" or activation_checkpointing else contextlib.nullcontext()


def most_passes(count: int) -> int:
    """The largest number of passes any rank makes this step (each rank's own ``count``)."""
    import torch.distributed as dist

    counts = torch.tensor([count])
    dist.all_reduce(counts, op=dist.ReduceOp.MAX)
    return int(counts[0])
