"""The one training loop shared by every trained rung (lora, full, distill, preference): explicit, seeded,
resumable, with what it optimizes plugged in as an ``Objective``.

- The objective owns the example type, its collation and its loss: ``Supervised`` (answer-token
  cross-entropy; lora, full, and distill on a teacher's answers) or the preference rung's DPO objective.
  The loop owns everything else: batching, passes, accumulation, optimizer, schedule, dev evaluations,
  early stopping, checkpoints, data parallelism, memory sampling.
- Supervised examples go through the model's chat template (instruction as system message, the input as user
  message, the target as the assistant's message up to and including end-of-turn); the loss is on the
  answer tokens only (the prompt is masked), and the output layer runs only at those positions.
- Batches group examples of similar length (sorted within shuffled pools of 32 batches), so little
  compute goes to padding; the order of each epoch comes from its own seeded stream, so a resumed run
  sees the same batches in the same order.
- AdamW, linear warm-up then linear decay. Every `eval_every` steps the dev loss is measured (and, with
  `early_stopping: dev_metric`, the task's target metric on the model's dev outputs, through a callback
  from the rung); training stops after `patience` evaluations without improvement of the chosen one,
  and the best weights are kept.
- Every `checkpoint_every` steps the trainable weights, optimizer, scheduler and progress are saved
  atomically; a checkpoint found at start is resumed from.
- Data parallel over torch.distributed when launched by torchrun (gloo on CPU, NCCL on CUDA): every rank
  takes its share of each global batch and the gradients are summed across ranks after each step, as
  DDP does (the loop calls the decoder and output layer itself, so the DDP wrapper's forward would be
  bypassed); the loss is normalized by the global count of answer tokens, so N processes with the same
  total batch compute the same update as one. Only rank 0 writes checkpoints.
- Peak memory is sampled during training (resident set size, every 50 ms), not taken as a process
  lifetime maximum that would blame this rung for another's memory.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import torch

from ladder import progress as progress_ui
from ladder.fileio import atomic_write_text
from ladder.rungs.base import rng_for
from ladder.spec import TrainSpec

IGNORE = -100


@dataclass(frozen=True)
class TrainExample:
    ids: list[int]
    n_prompt: int  # tokens of ids that are prompt (masked from the loss)


@dataclass
class TrainOutcome:
    steps: int
    epochs: float
    wall_s: float
    tokens_seen: int  # real (non-padding) tokens through the forward pass
    answer_tokens: int  # tokens the loss was computed on
    tokens_per_s: float
    rss_start_mb: float
    rss_peak_mb: float
    curve: list[dict] = field(default_factory=list)  # {step, loss, lr}
    dev_evals: list[dict] = field(default_factory=list)  # {step, dev_loss[, dev_metric]}
    best_step: int = 0
    stopped_early: bool = False
    resumed_from_step: int | None = None
    truncated_examples: int = 0


class MemorySampler:
    """Samples this process's resident memory in a thread while the rung trains."""

    def __init__(self, interval: float = 0.05):
        import psutil

        self._process = psutil.Process()
        self.interval = interval
        self.start_mb = self._rss()
        self.peak_mb = self.start_mb
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> float:
        return self._process.memory_info().rss / 2**20

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, self._rss())

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss())


def encode_examples(pairs: list[tuple[str, str]], encode: Callable[[str], list[int]],
                    encode_answer: Callable[[str], list[int]], max_len: int) -> tuple[list[TrainExample], int]:
    """(prompt text, answer text) -> token ids; prompts lose tokens from the left past max_len."""
    out, truncated = [], 0
    for prompt, answer in pairs:
        p, a = encode(prompt), encode_answer(answer)
        if len(p) + len(a) > max_len:
            truncated += 1
            keep = max(1, max_len - len(a))
            p, a = p[-keep:], a[: max_len - 1]
        out.append(TrainExample(p + a, len(p)))
    return out, truncated


def epoch_batches(examples: list, batch_size: int, seed: int, rung: str, epoch: int,
                  length: Callable[[object], int]) -> list[list[int]]:
    """Length-grouped batches of example indices (``length``: the objective's padded length), in a seeded
    order of its own per epoch."""
    rng = rng_for(seed, rung, f"train-epoch-{epoch}")
    order = list(range(len(examples)))
    rng.shuffle(order)
    pool = batch_size * 32
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: length(examples[i]))
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(examples: list[TrainExample], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for row, ex in enumerate(examples):
        n = len(ex.ids)
        ids[row, :n] = torch.tensor(ex.ids)
        mask[row, :n] = 1
        labels[row, ex.n_prompt : n] = torch.tensor(ex.ids[ex.n_prompt :])
    return ids.to(device), mask.to(device), labels.to(device)


class MaskDropout(torch.nn.Module):
    """``nn.Dropout`` whose mask costs a third of the time on CPU. torch draws a CPU dropout mask one
    Bernoulli number per element from its Mersenne Twister (profiled: ``bernoulli_`` was 21% of a LoRA
    training step on SNIPS, dropout 0.05); here one 64-bit draw gives four 15-bit uniform numbers, each
    compared with ``p``. Same semantics otherwise: training mode only, kept values scaled by 1/(1-p), the
    mask saved for the backward pass as booleans, torch's generator (so a resumed run draws the same
    masks). ``p`` is rounded to a multiple of 1/32768 (0.05 -> 0.04999)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.threshold = round(p * 32768)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        n = x.numel()
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_()  # 63 random bits each
        keep = (words.view(torch.int16)[:n] & 0x7FFF) >= self.threshold
        return torch.where(keep.view(x.shape), x, 0) * (32768 / (32768 - self.threshold))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def cpu_dropout(model) -> int:
    """Every ``nn.Dropout`` of a model on CPU (peft's ``lora_dropout`` among them) becomes a
    ``MaskDropout``; returns how many. On GPUs torch's fused dropout is kept."""
    if next(model.parameters()).device.type != "cpu":
        return 0
    swapped = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is torch.nn.Dropout and child.p > 0:
                setattr(module, name, MaskDropout(child.p))
                swapped += 1
    return swapped


SHARED_PREFIX_MIN = 16  # tokens: below this, one pass over the whole batch


def device_type(device) -> str:
    """``cpu``, ``cuda``, ... of a ``torch.device`` or a device string (``"cuda:0"`` too): the one test the
    loop's per-device rules (prefix sharing, pass memory, autocast) make."""
    return torch.device(device).type


def shares_prefix(device) -> bool:
    """Whether a pass's rows share their common prefix: on a CPU only. A CPU step is bound by arithmetic,
    and the prefix computed once saves it (SNIPS LoRA, 2 cores: 125.6 -> 227.8 example tokens/s). A small
    model's step on a GPU is bound by launching kernels, not by arithmetic, and the prefix's own pass adds
    launches: H100, SNIPS LoRA r16 batch 8 in one pass, 505 ms a step shared vs 346 whole rows."""
    return device_type(device) == "cpu"


def common_prefix(prompts: list[list[int]]) -> int:
    """The leading tokens every row's prompt has in common and that no answer token depends on being
    computed per row: the longest common prefix, less the last prompt token (the position that predicts
    the first answer token stays in the rows' own part). 0 when under ``SHARED_PREFIX_MIN`` or for one row.
    The one rule for the pass planner (from the examples) and ``answer_logits`` (from the batch)."""
    if len(prompts) < 2:
        return 0
    shortest = min(len(p) for p in prompts)
    common = 0
    while common < shortest and all(p[common] == prompts[0][common] for p in prompts):
        common += 1
    common = min(common, shortest - 1)
    return common if common >= SHARED_PREFIX_MIN else 0


def shared_prefix_length(ids: torch.Tensor, labels: torch.Tensor) -> int:
    """``common_prefix`` of a collated batch's prompts (each row's tokens before its first answer token),
    where the device shares prefixes."""
    if ids.shape[0] < 2 or not shares_prefix(ids.device):
        return 0
    answers = (labels != IGNORE).int().argmax(dim=1).tolist()  # each row's first answer position (rows have one)
    return common_prefix([row[:start].tolist() for row, start in zip(ids, answers)])


def answer_logits(model, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor):
    """The fp32 logits predicting each answer token, their targets, and where they are (``(rows, columns)``
    after the shared prefix, True at a predicted position): the output layer runs only there, not over the
    vocabulary at every prompt token.

    Rows that begin with the same tokens (the instruction, demonstrations, a DPO pair's prompt) share
    them: the prefix goes through the model once, as one row, and every row's own tokens attend to its
    keys and values, so its activations are computed and kept once and its gradient is the sum of every
    row's (the same arithmetic as padding it into every row; with LoRA dropout the prefix's tokens draw
    one mask for the batch instead of one per row). SNIPS LoRA (68 of an example's 92 tokens shared, batch
    8): 125.6 -> 227.8 example tokens/s in an A/B on the same batches; bench/ceiling.py measures it with
    the whole loop."""
    from ladder.backends.hf.forward import hidden_states, output_logits

    shared = shared_prefix_length(ids, labels)
    hidden = hidden_states(model, ids, mask, shared)
    targets = labels[:, shared + 1 :]
    where = targets != IGNORE
    return output_logits(model, hidden[:, :-1][where]), targets[where], where


def answer_loss(model, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over answer tokens, and their count."""
    logits, targets, where = answer_logits(model, ids, mask, labels)
    return torch.nn.functional.cross_entropy(logits, targets, reduction="sum"), int(where.sum())


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


def token_passes(examples: list, budget: int, length: Callable[[object], int], shared: int = 0) -> list[list]:
    """Consecutive runs of ``examples`` whose padded size (``shared`` prefix tokens once + rows x longest
    own part, by ``length``) fits ``budget`` tokens; an example longer than the budget goes alone."""
    passes: list[list] = []
    current: list = []
    longest = 0
    for example in examples:
        width = max(longest, length(example))
        if current and shared + width * (len(current) + 1) > budget:
            passes.append(current)
            current, width = [], length(example)
        current.append(example)
        longest = width
    if current:
        passes.append(current)
    return passes


def answer_tokens(example: TrainExample) -> int:
    """Tokens the loss is computed on (the first token is never a target)."""
    return len(example.ids) - max(1, example.n_prompt)


def distributed() -> tuple[int, int]:
    """(rank, world size): torch.distributed when a launcher (torchrun) started several processes."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def _trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _load_trainable(model, state: dict[str, torch.Tensor]) -> None:
    named = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            named[name].copy_(value)


def _save_checkpoint(folder: Path, model, optimizer, scheduler, progress: dict, best_state: dict | None) -> None:
    """Written whole into ``<folder>.tmp`` (progress.json last, everything fsync'd), then swapped in. A
    kill at any point leaves a complete checkpoint: the old folder, or the new one in ``.tmp`` (see
    ``_complete_checkpoint``). The random state goes with it, so dropout after a resume draws the same
    masks as a run that was never interrupted."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {"trainable": _trainable_state(model), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state()}
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


def _complete_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint: the folder, or a finished ``.tmp`` a kill left before the swap."""
    if (folder / "progress.json").is_file():
        return folder
    tmp = folder.with_name(folder.name + ".tmp")
    return tmp if (tmp / "progress.json").is_file() else None


def autocast(device):
    """bf16 autocast on CUDA (weights stay fp32 masters); nothing on CPU, where bf16 has no native speed."""
    if device_type(device) == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class BatchLoss:
    """What one pass through the model gives the loop: the loss summed over the pass's examples (the loop
    divides it by the whole step's weight before the backward pass), the tokens it took, and additive
    statistics an objective reports (dev evaluations show each per unit of weight)."""

    loss: torch.Tensor
    tokens: int  # real (non-padding) tokens through the forward pass
    answer_tokens: int  # tokens the loss was computed on
    sums: dict[str, float] = field(default_factory=dict)


class Objective(Protocol):
    """What the loop trains on. An objective knows its example type: how many padded tokens one takes
    (batches group similar lengths and are split into passes by them), what it weighs in the step's mean
    (answer tokens for a supervised loss, one per pair for a preference loss), and how a list of them is
    collated and scored by the model (the summed loss)."""

    name: str

    def length(self, example, shared: int = 0) -> int: ...  # padded tokens, less a prefix shared by the pass

    def prompt(self, example) -> list[int]: ...  # the tokens before its first answer token

    def weight(self, example) -> int: ...

    def loss(self, model, examples: list, pad_id: int, device) -> BatchLoss: ...


def planned_prefix(objective: Objective, examples: list, device) -> int:
    """The prefix ``answer_logits`` will share in a pass of these examples (``common_prefix`` of their
    prompts, where the device shares prefixes)."""
    return common_prefix([objective.prompt(e) for e in examples]) if shares_prefix(device) else 0


class Supervised:
    """Cross-entropy on the answer tokens of (prompt, answer) examples, the mean over every answer token of
    the step: the lora and full rungs on the targets, the distill rung on a teacher's answers."""

    name = "supervised"

    def length(self, example: TrainExample, shared: int = 0) -> int:
        return len(example.ids) - shared

    def prompt(self, example: TrainExample) -> list[int]:
        return example.ids[: example.n_prompt]

    def weight(self, example: TrainExample) -> int:
        return answer_tokens(example)

    def loss(self, model, examples: list[TrainExample], pad_id: int, device) -> BatchLoss:
        ids, mask, labels = collate(examples, pad_id, device)
        loss, n = answer_loss(model, ids, mask, labels)
        return BatchLoss(loss, int(mask.sum()), n)


SUPERVISED = Supervised()


@dataclass
class TrainState:
    """Where a training stands; saved with every checkpoint (progress.json) and resumed from."""

    step: int = 0  # optimizer steps taken
    micro: int = 0  # global batches consumed (the position in the seeded epoch orders)
    tokens: int = 0
    answer_tokens: int = 0
    curve: list[dict] = field(default_factory=list)  # {step, loss, lr}
    dev_evals: list[dict] = field(default_factory=list)  # {step, dev_loss[, dev_metric][, objective's stats]}
    best_score: float | None = None  # higher is better: -dev_loss, or the dev metric
    best_step: int = 0
    bad_evals: int = 0  # evaluations since the best one
    wall_s: float = 0.0

    @classmethod
    def from_json(cls, data: dict) -> "TrainState":
        data = dict(data)
        if "best_loss" in data:  # a checkpoint from before dev_metric: its best was the lowest loss
            best_loss = data.pop("best_loss")
            data["best_score"] = None if best_loss is None else -best_loss
        return cls(**data)


@dataclass(frozen=True)
class TrainConfig:
    """One training: its settings, where it checkpoints, what it optimizes, and who hears of each step."""

    settings: TrainSpec
    seed: int
    rung: str  # names the seeded streams and the progress bar
    work_dir: Path  # checkpoints go in work_dir/checkpoint
    pad_id: int
    objective: Objective = SUPERVISED
    truncated: int = 0  # examples that lost prompt tokens to max_seq_len (reported)
    # model -> the task's target metric on dev (higher is better), for early_stopping: dev_metric
    dev_metric: Callable[[object], float] | None = None
    # called after every optimizer step (and its checkpoint) with the state: progress reporting, or an
    # interruption (raise KeyboardInterrupt) at a chosen step
    on_step: Callable[[TrainState], None] | None = None


def evaluate_dev(model, objective: Objective, examples: list, batch_size: int, pad_id: int, device) -> dict[str, float]:
    """The objective on dev without gradients: ``dev_loss`` (its loss per unit of weight) and each of its
    statistics per unit of weight (a preference objective's reward accuracy and margin)."""
    model.eval()
    loss, weight, sums = 0.0, 0, {}
    with torch.no_grad():
        order = sorted(range(len(examples)), key=lambda i: objective.length(examples[i]))
        for start in range(0, len(order), batch_size):
            batch = [examples[i] for i in order[start : start + batch_size]]
            with autocast(device):
                part = objective.loss(model, batch, pad_id, device)
            loss += float(part.loss)
            weight += sum(objective.weight(e) for e in batch)
            for key, value in part.sums.items():
                sums[key] = sums.get(key, 0.0) + value
    model.train()
    return {"dev_loss": loss / max(1, weight), **{k: v / max(1, weight) for k, v in sums.items()}}


def train_loop(model, train_set: list, dev_set: list, config: TrainConfig) -> TrainOutcome:
    settings, objective = config.settings, config.objective
    if not train_set:
        raise ValueError("no training examples")
    device = next(model.parameters()).device
    cpu_dropout(model)
    rank, world = distributed()
    torch.manual_seed(config.seed)
    n_batches = math.ceil(len(train_set) / settings.batch_size)  # global batches per epoch
    steps_per_epoch = math.ceil(n_batches / settings.grad_accum)
    total = settings.max_steps or max(1, math.ceil(settings.epochs * steps_per_epoch))
    warmup = int(settings.warmup_ratio * total)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, warmup, total))
    checkpoint = config.work_dir / "checkpoint"
    by_metric = settings.early_stopping == "dev_metric"
    if by_metric and config.dev_metric is None:
        raise ValueError("early_stopping: dev_metric needs a dev_metric callback")
    state = TrainState()
    resumed = None
    best_state = None
    found = _complete_checkpoint(checkpoint)
    if found is not None:
        saved = torch.load(found / "state.pt", map_location=device)
        _load_trainable(model, saved["trainable"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        if "rng" in saved:  # checkpoints from before it was saved resume with a fresh random state
            torch.set_rng_state(saved["rng"])
        state = TrainState.from_json(json.loads((found / "progress.json").read_text()))
        resumed = state.step
        if (found / "best.pt").is_file():
            best_state = torch.load(found / "best.pt", map_location=device)
    model.train()
    pass_tokens = tokens_per_pass(model, pass_memory(device))
    stopped_early = False
    shown = (progress_ui.track(f"[{config.rung}] training", total, "step", state.step) if rank == 0
             else contextlib.nullcontext(None))
    with MemorySampler() as memory, shown as bar:
        started = time.perf_counter() - state.wall_s
        epoch_cache: dict[int, list[list[int]]] = {}
        while state.step < total and not stopped_early:
            # One optimizer step = grad_accum global batches. The order is a pure function of the seed, so
            # every rank (and a resumed run) sees the same batches; each rank takes its share of each.
            global_batches = []
            for _ in range(settings.grad_accum):
                epoch, index = divmod(state.micro, n_batches)
                if epoch not in epoch_cache:
                    epoch_cache = {epoch: epoch_batches(train_set, settings.batch_size, config.seed, config.rung, epoch,
                                                        objective.length)}
                global_batches.append(epoch_cache[epoch][index])
                state.micro += 1
            # The loss is the mean over the step's whole weight (every answer token, or every pair), on all
            # ranks together: each rank backpropagates its summed loss over that global weight, and the
            # gradients are summed.
            global_weight = sum(objective.weight(train_set[i]) for batch in global_batches for i in batch)
            step_loss = torch.zeros(3, dtype=torch.float64)  # summed loss, real tokens, answer tokens
            for batch in global_batches:
                share = [train_set[i] for i in batch[rank::world]]
                # a batch goes through the model in passes of at most pass_tokens padded tokens: the
                # activations kept for the backward pass scale with them, the gradient does not change
                shared = planned_prefix(objective, share, device)
                for part in token_passes(share, pass_tokens, lambda e: objective.length(e, shared), shared):
                    with autocast(device):
                        result = objective.loss(model, part, config.pad_id, device)
                    (result.loss / max(1, global_weight)).backward()
                    step_loss += torch.tensor([result.loss.item(), result.tokens, result.answer_tokens],
                                              dtype=torch.float64)
            if world > 1:
                import torch.distributed as dist

                for param in params:
                    if param.grad is None:
                        param.grad = torch.zeros_like(param)
                    dist.all_reduce(param.grad)
                dist.all_reduce(step_loss)
            state.tokens += int(step_loss[1])
            state.answer_tokens += int(step_loss[2])
            loss_value = float(step_loss[0]) / max(1, global_weight)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            step = state.step
            state.curve.append({"step": step, "loss": round(loss_value, 5), "lr": scheduler.get_last_lr()[0]})
            if bar is not None:
                elapsed = time.perf_counter() - started
                bar.advance(1, loss=round(loss_value, 4), tokens_per_s=round(state.tokens / max(elapsed, 1e-9), 1))
            if step % settings.eval_every == 0 or step == total:
                measured = evaluate_dev(model, objective, dev_set, settings.batch_size, config.pad_id, device)
                evaluation = {"step": step, **{k: round(v, 5) for k, v in measured.items()}}
                score = -measured["dev_loss"]
                if by_metric:
                    score = config.dev_metric(model)
                    model.train()
                    evaluation["dev_metric"] = round(score, 5)
                state.dev_evals.append(evaluation)
                if state.best_score is None or score > state.best_score:
                    state.best_score, state.best_step, state.bad_evals = score, step, 0
                    best_state = _trainable_state(model)
                else:
                    state.bad_evals += 1
                    stopped_early = state.bad_evals >= settings.patience
            if (step % settings.checkpoint_every == 0 or stopped_early or step == total) and rank == 0:
                state.wall_s = time.perf_counter() - started
                _save_checkpoint(checkpoint, model, optimizer, scheduler, asdict(state), best_state)
            if config.on_step is not None:
                config.on_step(state)
        wall = time.perf_counter() - started
    if best_state is not None:
        _load_trainable(model, best_state)
    model.eval()
    return TrainOutcome(
        steps=state.step,
        epochs=state.micro / n_batches,
        wall_s=wall,
        tokens_seen=state.tokens,
        answer_tokens=state.answer_tokens,
        tokens_per_s=state.tokens / wall if wall > 0 else 0.0,
        rss_start_mb=memory.start_mb,
        rss_peak_mb=memory.peak_mb,
        curve=state.curve,
        dev_evals=state.dev_evals,
        best_step=state.best_step,
        stopped_early=stopped_early,
        resumed_from_step=resumed,
        truncated_examples=config.truncated,
    )


def outcome_dict(outcome: TrainOutcome) -> dict:
    return asdict(outcome)
