"""How a batch is cut into passes: the prefix its rows share, and runs of examples that fit the pass budget."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from ladder.rungs.train.data import IGNORE
from ladder.rungs.train.device import shares_prefix

SHARED_PREFIX_MIN = 16  # tokens: below this, one pass over the whole batch

if TYPE_CHECKING:
    from ladder.rungs.train.objectives import Objective


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


def planned_prefix(objective: Objective, examples: list, device) -> int:
    """The prefix ``answer_logits`` will share in a pass of these examples (``common_prefix`` of their
    prompts, where the device shares prefixes)."""
    return common_prefix([objective.prompt(e) for e in examples]) if shares_prefix(device) else 0
