"""What the transformers backend needs around a batch: the prompt prefix all its rows share, and the stopping rule
that ends a JSON answer when its object closes (the generate path)."""

from __future__ import annotations

import torch

from ladder.backends.base import (
    json_value_end,
)


def shared_tokens(prefix: list[int], prompts: list[list[int]]) -> list[int]:
    """The longest run of tokens that the declared prefix and every prompt really begin with (a text
    prefix can end inside a token), keeping at least one token of each prompt outside it: its logits
    predict the first new token."""
    shared = prefix
    for ids in prompts:
        n = min(len(shared), len(ids) - 1)
        k = next((i for i in range(n) if ids[i] != shared[i]), n)
        shared = shared[:k]
    return shared


class JsonObjectClosed:
    """Stopping criterion: a row is done once its generated text holds a complete JSON object."""

    def __init__(self, tokenizer, prompt_width: int):
        self.tokenizer = tokenizer
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_width :], skip_special_tokens=True)
        return torch.tensor([json_value_end(t) >= 0 for t in texts], device=input_ids.device)
