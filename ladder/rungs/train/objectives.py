"""What the loop optimizes: an ``Objective`` owns its example type, collation and summed loss. ``Supervised``
(answer-token cross-entropy) lives here; the preference rung's DPO objective in ``rungs/preference.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from ladder.rungs.train.data import IGNORE, TrainExample, answer_tokens, collate
from ladder.rungs.train.plan import shared_prefix_length


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


class NextToken(Supervised):
    """Continued pretraining: blocks of raw text, every token after a block's first one predicted (the supervised
    loss with only the first token as its prompt); the mean over every predicted token of the step."""

    name = "next_token"


NEXT_TOKEN = NextToken()
