"""The transformers backend: real models on CPU (fp32) or CUDA (bf16).

Label scoring is what makes the low rungs cheap on a CPU:
- the prefix shared by all examples (instruction + demonstrations) is run once and its key/value cache
  reused for every batch;
- each example's own prompt tokens are computed once, and all of its candidate labels are scored in the
  same forward pass: the labels are laid side by side after the prompt with a block attention mask
  (each label sees the prefix, the prompt and itself, never another label) and position ids that
  restart after the prompt, so every label is scored exactly as if it were alone;
- the output layer runs only at the positions whose next token is a label token.
"""

from __future__ import annotations

import copy
import json
from collections import OrderedDict
from typing import Sequence

import torch

from ladder.backends.base import (
    ChatFormatter,
    ChoiceScores,
    Formatter,
    Generation,
    GenerateRequest,
    PlainFormatter,
    Prompt,
    ScoreRequest,
    json_value_end,
)
from ladder.backends.attention import NAME as ATTENTION
from ladder.backends.attention import register as register_attention
from ladder.errors import LadderError
from ladder.models import ModelRef, model_identity, resolve_model

def quiet_transformers() -> None:
    """Progress bars and advisory warnings from transformers would drown ladder's own output."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _pick_device(device: str | None) -> str:
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class TransformersBackend:
    name = "transformers"

    def __init__(self, ref: ModelRef, device: str | None = None, dtype: str | None = None, batch_size: int = 8):
        from transformers import AutoTokenizer

        quiet_transformers()
        self.ref = ref
        self.device = _pick_device(device)
        self.dtype_name = dtype or ("bfloat16" if self.device.startswith("cuda") else "float32")
        if self.dtype_name not in DTYPES:
            raise LadderError(f"dtype {self.dtype_name!r}: expected one of {', '.join(DTYPES)}")
        self.dtype = DTYPES[self.dtype_name]
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(ref.path)
        self._model = None
        self._identity: dict | None = None
        self._prefix_caches: OrderedDict[tuple[int, ...], object] = OrderedDict()
        config = json.loads((ref.path / "config.json").read_text())
        self.max_context: int | None = config.get("max_position_embeddings")
        probe = self.tokenizer("a").input_ids
        bos = self.tokenizer.bos_token_id
        self._adds_bos = bos is not None and len(probe) > 0 and probe[0] == bos

    @classmethod
    def from_spec(cls, model: str, base_dir=None, labels=None, **options) -> "TransformersBackend":
        return cls(resolve_model(model, base_dir), **options)

    # -- loading -------------------------------------------------------------------------------
    @property
    def model(self):
        if self._model is None:
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(
                self.ref.path, dtype=self.dtype, attn_implementation=register_attention()
            )
            self._model = model.to(self.device).eval()
        return self._model

    def derive(self, model, weights_sha256: str) -> "TransformersBackend":
        """The same backend (tokenizer, device, dtype) over other weights: a fine-tuned copy of the model."""
        derived = copy.copy(self)
        derived._model = model.to(self.device).eval()
        derived._prefix_caches = OrderedDict()
        base = self.identity()
        derived._identity = {**base, "weights_sha256": weights_sha256, "base_weights_sha256": base["weights_sha256"]}
        return derived

    def identity(self) -> dict:
        if self._identity is None:
            import transformers

            self._identity = {
                "backend": self.name,
                **model_identity(self.ref),
                "device": self.device.split(":")[0],
                "dtype": self.dtype_name,
                "attention": ATTENTION,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
            }
        return self._identity

    # -- text ----------------------------------------------------------------------------------
    def formatter(self, format: str) -> Formatter:
        if format == "plain":
            return PlainFormatter()
        if not self.tokenizer.chat_template:
            raise LadderError(f"model {self.ref.name!r} has no chat template: set prompt.format: plain")
        end = self.tokenizer.eos_token or ""

        def apply(messages, add_generation_prompt: bool) -> str:
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=add_generation_prompt
            )

        return ChatFormatter(apply, end)

    def _encode(self, prompt: Prompt) -> list[int]:
        if not isinstance(prompt, str):
            return list(prompt)
        ids = self.tokenizer(prompt, add_special_tokens=False).input_ids
        bos = self.tokenizer.bos_token_id
        if self._adds_bos and (not ids or ids[0] != bos) and not prompt.startswith(self.tokenizer.bos_token or "\0"):
            ids = [bos] + ids
        return ids

    def _encode_continuation(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def count_tokens(self, text: str) -> int:
        return len(self._encode(text))

    def _check_fits(self, prompt_tokens: int, extra: int) -> None:
        if self.max_context and prompt_tokens + extra > self.max_context:
            raise LadderError(
                f"a prompt of {prompt_tokens} tokens plus {extra} for the answer exceeds the context of "
                f"{self.ref.name!r} ({self.max_context} tokens): use fewer demonstrations or a smaller context_tokens"
            )

    # -- label scoring -------------------------------------------------------------------------
    def _prefix_cache(self, ids: tuple[int, ...]):
        if ids not in self._prefix_caches:
            with torch.inference_mode():
                out = self.model(input_ids=torch.tensor([ids], device=self.device), use_cache=True)
            self._prefix_caches[ids] = out.past_key_values
            while len(self._prefix_caches) > 2:
                self._prefix_caches.popitem(last=False)
        return self._prefix_caches[ids]

    def _by_shared_prefix(self, requests: Sequence[ScoreRequest | GenerateRequest], items: list[tuple]):
        """Groups ``items`` (``(index, prompt ids, ...)``, one per request) by the requests' declared
        prefix; yields each group with the tokens its prompts really share (see ``_shared_tokens``)."""
        groups: dict[object, tuple[Prompt, list[tuple]]] = {}
        for request, item in zip(requests, items):
            key = request.prefix if isinstance(request.prefix, str) else tuple(request.prefix)
            groups.setdefault(key, (request.prefix, []))[1].append(item)
        for prefix, members in groups.values():
            encoded = self._encode(prefix) if prefix else []
            yield _shared_tokens(encoded, [item[1] for item in members]), members

    def score_choices(self, requests: list[ScoreRequest]) -> list[ChoiceScores]:
        results: list[ChoiceScores | None] = [None] * len(requests)
        encoded: list[tuple[int, list[int], list[list[int]]]] = []
        for index, request in enumerate(requests):
            choices = [self._encode_continuation(c) for c in request.choices]
            if any(not c for c in choices):
                raise LadderError("a choice encodes to no tokens")
            ids = self._encode(request.prompt)
            self._check_fits(len(ids), max(len(c) for c in choices))
            encoded.append((index, ids, choices))
        for shared, items in self._by_shared_prefix(requests, encoded):
            cache = self._prefix_cache(tuple(shared)) if shared else None
            items.sort(key=lambda it: len(it[1]) + sum(len(c) for c in it[2]))
            for start in range(0, len(items), self.batch_size):
                batch = items[start : start + self.batch_size]
                for index, scores in zip((it[0] for it in batch), self._score_batch(batch, len(shared), cache)):
                    results[index] = scores
        return results  # type: ignore[return-value]

    def _score_batch(self, batch, shared_len: int, cache) -> list[ChoiceScores]:
        rows_ids, rows_pos, rows_block, targets = [], [], [], []
        for b, (_, ids, choices) in enumerate(batch):
            suffix = ids[shared_len:]
            tokens, positions, blocks = list(suffix), list(range(shared_len, len(ids))), [-1] * len(suffix)
            row_targets = []
            for j, choice in enumerate(choices):
                start = len(tokens)
                tokens += choice
                positions += range(len(ids), len(ids) + len(choice))
                blocks += [j] * len(choice)
                # the token before choice token t (t=0: the prompt's last token) predicts it
                row_targets.append([(b, (len(suffix) - 1) if t == 0 else start + t - 1, tok) for t, tok in enumerate(choice)])
            rows_ids.append(tokens)
            rows_pos.append(positions)
            rows_block.append(blocks)
            targets.append(row_targets)
        width = max(len(r) for r in rows_ids)
        bsz = len(batch)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((bsz, width), pad, dtype=torch.long)
        position_ids = torch.zeros((bsz, width), dtype=torch.long)
        allowed = torch.zeros((bsz, width, shared_len + width), dtype=torch.bool)
        allowed[:, :, :shared_len] = True
        for b in range(bsz):
            n = len(rows_ids[b])
            input_ids[b, :n] = torch.tensor(rows_ids[b])
            position_ids[b, :n] = torch.tensor(rows_pos[b])
            position_ids[b, n:] = rows_pos[b][-1]
            block = torch.tensor(rows_block[b])
            causal = torch.tril(torch.ones((n, n), dtype=torch.bool))
            same = (block[None, :] == -1) | (block[None, :] == block[:, None])
            allowed[b, :n, shared_len : shared_len + n] = causal & same
            idx = torch.arange(n, width)
            allowed[b, idx, shared_len + idx] = True  # padding rows attend to themselves only (no NaN)
        mask = torch.zeros(allowed.shape, dtype=self.dtype)
        mask.masked_fill_(~allowed, torch.finfo(self.dtype).min)
        mask = mask[:, None].to(self.device)

        model = self.model
        with torch.inference_mode():
            past = None
            if cache is not None:
                past = copy.deepcopy(cache)
                past.batch_repeat_interleave(bsz)
            hidden = model.get_decoder()(
                input_ids=input_ids.to(self.device),
                attention_mask=mask,
                position_ids=position_ids.to(self.device),
                past_key_values=past,
                use_cache=past is not None,
            ).last_hidden_state
            flat = [t for row in targets for choice in row for t in choice]
            rows = torch.tensor([t[0] for t in flat], device=self.device)
            cols = torch.tensor([t[1] for t in flat], device=self.device)
            wanted = torch.tensor([t[2] for t in flat], device=self.device)
            logits = self._logits(hidden[rows, cols]).float()
            token_logprobs = torch.log_softmax(logits, dim=-1).gather(1, wanted[:, None])[:, 0].cpu().tolist()
        out, k = [], 0
        for b, (_, ids, choices) in enumerate(batch):
            sums = []
            for choice in choices:
                sums.append(float(sum(token_logprobs[k : k + len(choice)])))
                k += len(choice)
            out.append(ChoiceScores(sums, [len(c) for c in choices], len(ids)))
        return out

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        model = self.model
        logits = model.get_output_embeddings()(hidden)
        cap = getattr(model.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        scale = getattr(model.config, "logit_scale", None)
        if scale:
            logits = logits * scale
        return logits

    # -- generation ----------------------------------------------------------------------------
    def generate(self, requests: list[GenerateRequest]) -> list[Generation]:
        """Greedy decoding in batches of similar length. Requests that declare a shared ``prefix``
        (instruction + demonstrations) reuse one key/value cache of it: each batch then computes only its
        own prompt tokens, laid out as ``prefix | left padding | prompt`` (the padding is masked and the
        position ids skip it, so every row decodes exactly as if it were alone)."""
        results: list[Generation | None] = [None] * len(requests)
        encoded: list[tuple[int, list[int]]] = []
        for index, request in enumerate(requests):
            ids = self._encode(request.prompt)
            self._check_fits(len(ids), request.max_new_tokens)
            encoded.append((index, ids))
        for shared, items in self._by_shared_prefix(requests, encoded):
            items.sort(key=lambda it: len(it[1]))
            for start in range(0, len(items), self.batch_size):
                batch = items[start : start + self.batch_size]
                for index, generation in zip((i for i, _ in batch), self._generate_batch(requests, batch, shared)):
                    results[index] = generation
        return results  # type: ignore[return-value]

    def _generate_batch(self, requests: list[GenerateRequest], batch, shared: list[int]) -> list[Generation]:
        from transformers import GenerationConfig

        eos = [t for t in {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id} if t is not None]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos[0]
        n_shared = len(shared)
        width = n_shared + max(len(ids) - n_shared for _, ids in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        if n_shared:
            input_ids[:, :n_shared] = torch.tensor(shared)
            attention[:, :n_shared] = 1
        for b, (_, ids) in enumerate(batch):
            input_ids[b, width - (len(ids) - n_shared) :] = torch.tensor(ids[n_shared:])
            attention[b, width - (len(ids) - n_shared) :] = 1
        past = None
        if n_shared:
            past = copy.deepcopy(self._prefix_cache(tuple(shared)))
            past.batch_repeat_interleave(len(batch))
        # the end-of-turn token already stops decoding as an eos id; string matching is for the rest
        stops = sorted({s for i, _ in batch for s in requests[i].stop if s != self.tokenizer.eos_token})
        first = requests[batch[0][0]]
        sampling = first.temperature > 0
        if sampling:
            # one generator state per batch, seeded by its first request: same batches, same samples
            torch.manual_seed(first.seed)
        config = GenerationConfig(
            max_new_tokens=max(requests[i].max_new_tokens for i, _ in batch),
            do_sample=sampling,
            **({"temperature": first.temperature, "top_p": first.top_p, "top_k": 0} if sampling else {}),
            eos_token_id=eos,
            pad_token_id=pad,
            stop_strings=stops or None,
        )
        criteria = None
        if any(requests[i].stop_at_json_end for i, _ in batch):
            from transformers import StoppingCriteriaList

            criteria = StoppingCriteriaList([_JsonObjectClosed(self.tokenizer, width)])
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                past_key_values=past,
                generation_config=config,
                tokenizer=self.tokenizer if stops else None,
                stopping_criteria=criteria,
            )
        generations = []
        for b, (index, ids) in enumerate(batch):
            request = requests[index]
            new = out[b, width:].tolist()[: request.max_new_tokens]
            used = len(new)
            for k, tok in enumerate(new):
                if tok in eos:
                    used, new = k + 1, new[:k]
                    break
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            if request.stop_at_json_end:
                end = json_value_end(text)
                if end >= 0:  # count only the tokens up to the closing brace
                    text = text[:end]
                    used = min(used, len(self.tokenizer(text, add_special_tokens=False).input_ids))
            for stop in request.stop:
                cut = text.find(stop)
                if cut >= 0:
                    text = text[:cut]
            generations.append(Generation(text.strip(), len(ids), used))
        return generations


def _shared_tokens(prefix: list[int], prompts: list[list[int]]) -> list[int]:
    """The longest run of tokens that the declared prefix and every prompt really begin with (a text
    prefix can end inside a token), keeping at least one token of each prompt outside it: its logits
    predict the first new token."""
    shared = prefix
    for ids in prompts:
        n = min(len(shared), len(ids) - 1)
        k = next((i for i in range(n) if ids[i] != shared[i]), n)
        shared = shared[:k]
    return shared


class _JsonObjectClosed:
    """Stopping criterion: a row is done once its generated text holds a complete JSON object."""

    def __init__(self, tokenizer, prompt_width: int):
        self.tokenizer = tokenizer
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_width :], skip_special_tokens=True)
        return torch.tensor([json_value_end(t) >= 0 for t in texts], device=input_ids.device)
