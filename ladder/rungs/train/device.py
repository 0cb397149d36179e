"""What the loop decides by device: whether rows share a prefix, how much a pass may keep, autocast, and
the data-parallel rank and world size."""

from __future__ import annotations

import contextlib
import contextvars

import torch

_PREFIX_SHARING = contextvars.ContextVar("ladder_prefix_sharing", default=True)


def device_type(device) -> str:
    """``cpu``, ``cuda``, ... of a ``torch.device`` or a device string (``"cuda:0"`` too): the one test the
    loop's per-device rules (prefix sharing, pass memory, autocast) make."""
    return torch.device(device).type


def shares_prefix(device) -> bool:
    """Whether a pass's rows share their common prefix: on a CPU only. A CPU step is bound by arithmetic,
    and the prefix computed once saves it (SNIPS LoRA, 2 cores: 125.6 -> 227.8 example tokens/s). A small
    model's step on a GPU is bound by launching kernels, not by arithmetic, and the prefix's own pass adds
    launches: H100, SNIPS LoRA r16 batch 8 in one pass, 505 ms a step shared vs 346 whole rows. Never inside
    ``whole_rows``."""
    return device_type(device) == "cpu" and _PREFIX_SHARING.get()


@contextlib.contextmanager
def whole_rows():
    """Within it, rows never share a prefix (``shares_prefix`` is False): for engines that must see each block
    called once per pass (FSDP2, activation checkpointing)."""
    token = _PREFIX_SHARING.set(False)
    try:
        yield
    finally:
        _PREFIX_SHARING.reset(token)


PASS_MEMORY = 1 << 29  # bytes of activations one forward/backward pass may keep on a CPU (512 MiB)

PASS_MEMORY_GPU_SHARE = 0.25  # on CUDA: this share of the device's free memory


def pass_memory(device) -> int:
    """The activations' budget for one pass: ``PASS_MEMORY`` on a CPU (where resident memory is the
    machine's, and passes cost nothing measurable); on CUDA a quarter of the device's free memory, since
    every extra pass costs a step its kernel launches (H100, SNIPS LoRA batch 8: 512 MiB passes 681 ms a
    step, one pass 505)."""
    if device_type(device) == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(PASS_MEMORY, int(free * PASS_MEMORY_GPU_SHARE))
    return PASS_MEMORY


def tokens_per_pass(model, memory: int) -> int:
    """Padded tokens per forward/backward pass so the activations kept for the backward pass stay near
    ``memory`` bytes (``pass_memory``; estimated per layer as 48 x hidden + 8 x intermediate bytes per token: ~1.2 MB per
    token for SmolLM2-135M, so 448 tokens a pass). Measured on the us-address LoRA (batch 8 of up to 272
    tokens, r 16, dropout 0.05, fp32, 8 steps, 2 cores): a whole batch per pass peaked at 8.1 GB
    resident at 106 tokens/s; passes of 1 GiB, 5.1 GB at 110/s; of 512 MiB, 3.3 GB at 110/s. (Without
    LoRA dropout, whose copy of each adapted layer's input is a large share of the activations, a whole
    batch peaked at 6.3 GB and trained at 141 tokens/s.) The update is the same: the loss of every
    pass is divided by the step's total of answer tokens before its backward pass."""
    config = getattr(model, "config", None)
    layers = getattr(config, "num_hidden_layers", None)
    hidden = getattr(config, "hidden_size", None)
    if not layers or not hidden:
        return 1 << 30
    intermediate = getattr(config, "intermediate_size", None) or 4 * hidden
    per_token = layers * (48 * hidden + 8 * intermediate)
    return max(1, memory // per_token)


def grouped() -> bool:
    """Whether this process is in a torch.distributed process group (torchrun started it, and it joined)."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def distributed() -> tuple[int, int]:
    """(rank, world size): torch.distributed when a launcher (torchrun) started several processes."""
    import torch.distributed as dist

    return (dist.get_rank(), dist.get_world_size()) if grouped() else (0, 1)


def autocast(device):
    """bf16 autocast on CUDA (weights stay fp32 masters); nothing on CPU, where bf16 has no native speed."""
    if device_type(device) == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
