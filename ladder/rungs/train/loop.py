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
- Under torchrun (gloo on CPU, NCCL on CUDA) every rank takes its share of each global batch, and the engine
  (``parallel``: DistributedDataParallel, or FSDP2 sharding parameters, gradients and optimizer state) exchanges
  the gradients; N processes with the same total batch compute the same update as one. Checkpoints are saved
  by every rank together (torch.distributed.checkpoint) and resume on any number of ranks.
- Peak memory is sampled during training (resident set size, every 50 ms), not taken as a process
  lifetime maximum that would blame this rung for another's memory.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ladder import progress as progress_ui
from ladder.record import TrainingOutcome
from ladder.rungs.train.checkpoint import (
    complete_checkpoint,
    load_checkpoint,
    load_trainable,
    save_checkpoint,
    trainable_state,
)
from ladder.rungs.train.data import epoch_batches
from ladder.rungs.train.device import (
    autocast,
    distributed,
    pass_memory,
    tokens_per_pass,
)
from ladder.rungs.train.dropout import cpu_dropout
from ladder.rungs.train.objectives import SUPERVISED, Objective
from ladder.rungs.train.parallel import (
    Engine,
    LossOf,
    is_adapter,
    make_engine,
    most_passes,
    resolve_strategy,
    rows_whole,
)
from ladder.rungs.train.plan import planned_prefix, token_passes
from ladder.spec import TrainSpec


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

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss())


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


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
    def from_json(cls, data: dict) -> TrainState:
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
    # where to compute when that is not where the model was loaded: FSDP2 on CUDA loads the whole model in host
    # memory and moves each rank's shards to its GPU
    device: str | None = None


def evaluate_dev(engine: Engine, examples: list, batch_size: int) -> dict[str, float]:
    """The objective on dev without gradients: ``dev_loss`` (its loss per unit of weight) and each of its
    statistics per unit of weight (a preference objective's reward accuracy and margin). Every rank measures the
    whole of dev (under FSDP2 through the root, which gathers the weights)."""
    pass_loss = engine.pass_loss
    objective = pass_loss.objective
    pass_loss.eval()
    loss, weight, sums = 0.0, 0, {}
    with torch.no_grad():
        order = sorted(range(len(examples)), key=lambda i: objective.length(examples[i]))
        for start in range(0, len(order), batch_size):
            batch = [examples[i] for i in order[start : start + batch_size]]
            with autocast(pass_loss.device):
                pass_loss(batch)
            part = pass_loss.result
            loss += float(part.loss)
            weight += sum(objective.weight(e) for e in batch)
            for key, value in part.sums.items():
                sums[key] = sums.get(key, 0.0) + value
    engine.reshard()
    pass_loss.train()
    return {"dev_loss": loss / max(1, weight), **{k: v / max(1, weight) for k, v in sums.items()}}


def train_loop(model, train_set: list, dev_set: list, config: TrainConfig) -> TrainingOutcome:
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
    by_metric = settings.early_stopping == "dev_metric"
    if by_metric and config.dev_metric is None:
        raise ValueError("early_stopping: dev_metric needs a dev_metric callback")
    if settings.activation_checkpointing:
        from ladder.backends.hf.forward import checkpoint_activations

        checkpoint_activations(model)
    pass_loss = LossOf(model, objective, config.pad_id, device)
    strategy = resolve_strategy(settings.strategy, is_adapter(model))
    engine = make_engine(
        pass_loss, strategy, torch.device(config.device) if config.device else device, cpu_offload=settings.cpu_offload
    )
    device = pass_loss.device = next(model.parameters()).device  # FSDP2 moves the shards to the mesh's device
    params = [p for p in model.parameters() if p.requires_grad]  # (after sharding: its parameters are new)
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, warmup, total))
    checkpoint = config.work_dir / "checkpoint"
    state = TrainState()
    resumed = None
    best_state = None
    found = complete_checkpoint(checkpoint)
    if found is not None:
        progress, best_state = load_checkpoint(found, model, optimizer, scheduler, device)
        state = TrainState.from_json(progress)
        resumed = state.step
    model.train()
    pass_tokens = tokens_per_pass(model, pass_memory(device))
    stopped_early = False
    shown = (
        progress_ui.track(f"[{config.rung}] training", total, "step", state.step)
        if rank == 0
        else contextlib.nullcontext(None)
    )
    with MemorySampler() as memory, shown as bar, rows_whole(engine, settings.activation_checkpointing):
        started = time.perf_counter() - state.wall_s
        epoch_cache: dict[int, list[list[int]]] = {}
        while state.step < total and not stopped_early:
            # One optimizer step = grad_accum global batches. The order is a pure function of the seed, so
            # every rank (and a resumed run) sees the same batches; each rank takes its share of each.
            global_batches = []
            for _ in range(settings.grad_accum):
                epoch, index = divmod(state.micro, n_batches)
                if epoch not in epoch_cache:
                    epoch_cache = {
                        epoch: epoch_batches(
                            train_set, settings.batch_size, config.seed, config.rung, epoch, objective.length
                        )
                    }
                global_batches.append(epoch_cache[epoch][index])
                state.micro += 1
            # The loss is the mean over the step's whole weight (every answer token, or every pair), on all
            # ranks together: each rank backpropagates its summed loss over that global weight (times the world
            # size: DDP averages the ranks' gradients), the gradients exchanged in the step's last pass.
            global_weight = sum(objective.weight(train_set[i]) for batch in global_batches for i in batch)
            scale = world / max(1, global_weight)
            step_loss = torch.zeros(3, dtype=torch.float64)  # summed loss, real tokens, answer tokens
            passes: list[tuple[list, float]] = []
            for batch in global_batches:
                share = [train_set[i] for i in batch[rank::world]]
                # a batch goes through the model in passes of at most pass_tokens padded tokens: the
                # activations kept for the backward pass scale with them, the gradient does not change
                shared = planned_prefix(objective, share, device)
                passes += [
                    (part, 1.0)
                    for part in token_passes(
                        share, pass_tokens, lambda e, shared=shared: objective.length(e, shared), shared
                    )
                ]
            if engine.same_passes:  # every rank as many passes as the busiest (empty ones add nothing)
                filler = ([train_set[global_batches[0][0]]], 0.0)
                passes += [filler] * (most_passes(len(passes)) - len(passes))
            elif engine.strategy == "ddp" and not passes:  # a share smaller than a row: a pass that adds nothing,
                passes = [([train_set[global_batches[0][0]]], 0.0)]  # so the ranks still meet in the exchange
            for k, (part, keep) in enumerate(passes):
                with engine.holding(last=k == len(passes) - 1):
                    with autocast(device):
                        loss = engine(part)
                    (loss * (keep * scale)).backward()
                result = pass_loss.result
                step_loss += keep * torch.tensor(
                    [result.loss.item(), result.tokens, result.answer_tokens], dtype=torch.float64
                )
            if world > 1:
                import torch.distributed as dist

                dist.all_reduce(step_loss)  # the step's loss and token counts, for the curve
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
                measured = evaluate_dev(engine, dev_set, settings.batch_size)
                evaluation = {"step": step, **{k: round(v, 5) for k, v in measured.items()}}
                score = -measured["dev_loss"]
                if by_metric:
                    score = config.dev_metric(model)
                    model.train()
                    evaluation["dev_metric"] = round(score, 5)
                state.dev_evals.append(evaluation)
                if state.best_score is None or score > state.best_score:
                    state.best_score, state.best_step, state.bad_evals = score, step, 0
                    best_state = trainable_state(model)
                else:
                    state.bad_evals += 1
                    stopped_early = state.bad_evals >= settings.patience
            if step % settings.checkpoint_every == 0 or stopped_early or step == total:
                state.wall_s = time.perf_counter() - started
                save_checkpoint(checkpoint, model, optimizer, scheduler, asdict(state), best_state)
            if config.on_step is not None:
                config.on_step(state)
        wall = time.perf_counter() - started
    if best_state is not None:
        load_trainable(model, best_state)
    model.eval()
    return TrainingOutcome(
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
        processes=world,
        strategy=strategy,
    )
