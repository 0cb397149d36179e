"""Training examples: encoded (prompt + answer token ids), batched by similar length in a seeded order per
epoch, collated with the prompt masked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ladder.rungs.base import rng_for

if TYPE_CHECKING:
    import torch

IGNORE = -100


@dataclass(frozen=True)
class TrainExample:
    ids: list[int]
    n_prompt: int  # tokens of ids that are prompt (masked from the loss)


def encode_examples(
    pairs: list[tuple[str, str]],
    encode: Callable[[str], list[int]],
    encode_answer: Callable[[str], list[int]],
    max_len: int,
) -> tuple[list[TrainExample], int]:
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


def epoch_batches(
    examples: list, batch_size: int, seed: int, rung: str, epoch: int, length: Callable[[object], int]
) -> list[list[int]]:
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
    import torch  # here, not above: encoding examples (a finished training's store key) needs no torch

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


def answer_tokens(example: TrainExample) -> int:
    """Tokens the loss is computed on (the first token is never a target)."""
    return len(example.ids) - max(1, example.n_prompt)
