"""The transformers backend: real models on CPU (fp32) or CUDA (bf16); ``hardware`` says why ``auto``
stays fp32 on a CPU, and greedy decoding runs in ladder's own loop (``decode``).

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
import warnings
from collections import OrderedDict
from collections.abc import Sequence

import torch

from ladder.backends.base import (
    Artifact,
    ChoiceScores,
    Formatter,
    GenerateRequest,
    Generation,
    Prompt,
    ScoreRequest,
    artifact_identity,
    finish_generation,
)
from ladder.backends.hardware import emulation_warning, pick_device, weights_dtype
from ladder.backends.hf import decode
from ladder.backends.hf.attention import NAME as ATTENTION
from ladder.backends.hf.attention import register as register_attention
from ladder.backends.hf.batching import JsonObjectClosed, shared_tokens
from ladder.backends.hf.model import HFModel, load_4bit, resolve_model
from ladder.backends.models import ModelRef, model_identity
from ladder.errors import LadderError, MissingDependency
from ladder.record import ModelIdentity

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CASCADE = "cascade"  # fp32 weights answer; a bf16 copy scores labels first (see CASCADE_MARGIN)
# How far ahead, in nats of summed log-probability, bf16's best label must be for its choice to stand. Measured
# (bench/cascade.py, SNIPS, every split, prompt/fewshot/lora rungs, SmolLM2-135M and Gemma 3 270M: 4,158 examples),
# bf16 moved one label's score against another's by at most MEASURED_LEAD_ERROR; the margin is about twice that,
# and the cascade's labels equalled fp32's on all 4,158. An empirical bound, not a proof; and it seldom pays on
# these small models (their labels are close: 23-91% of examples went back to fp32; 0.73-1.23x fp32's speed), so
# the cascade is asked for by name (``serving.dtype: cascade``), never picked by ``auto``. docs/benchmarks.md.
MEASURED_LEAD_ERROR = 0.96
CASCADE_MARGIN = 2.0


def _lead(logprobs: list[float]) -> float:
    """How far the best label's log-probability is ahead of the next (infinite with one label)."""
    if len(logprobs) < 2:
        return float("inf")
    first, second = sorted(logprobs, reverse=True)[:2]
    return first - second


class TransformersBackend:
    name = "transformers"

    def __init__(
        self,
        ref: ModelRef,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
        hf: HFModel | None = None,
    ):
        self.hf = hf or HFModel(ref)
        self.ref = ref
        self.device = pick_device(device)
        self.dtype_name = weights_dtype(dtype, self.device, ref.path, cascade=True)
        # label scoring in bf16 where its answer is certain, fp32 where it is not: fp32's labels at bf16's speed
        self.cascade = self.dtype_name == CASCADE
        if self.cascade:
            self.dtype_name = "float32"
        if self.dtype_name not in DTYPES:
            raise LadderError(f"dtype {self.dtype_name!r}: expected one of {', '.join(DTYPES)}")
        self.dtype = DTYPES[self.dtype_name]
        warning = emulation_warning(self.dtype_name, self.device)
        if warning:
            warnings.warn(warning, stacklevel=2)
        self.batch_size = batch_size
        self.decoding = "ladder"  # greedy decoding in ladder's own loop; "generate": transformers' generate
        self.tokenizer = self.hf.tokenizer
        self.artifact: Artifact | None = None
        self._model = None
        self._draft = None  # the cascade's bf16 copy of the weights
        self.cascade_counts = {"scored": 0, "exact": 0}  # the cascade's examples, and those re-scored in fp32
        self._base_identity: ModelIdentity | None = None
        self._views: dict[str, TransformersBackend] = {}
        self._prefix_caches: OrderedDict[tuple[torch.dtype, tuple[int, ...]], object] = OrderedDict()

    @classmethod
    def from_spec(cls, model: str, base_dir=None, labels=None, **options) -> TransformersBackend:
        return cls(resolve_model(model, base_dir), **options)

    # -- loading -------------------------------------------------------------------------------
    @property
    def model(self):
        if self._model is None:
            self._model = self._load().eval()
        return self._model

    def _load(self):
        artifact = self.artifact
        if artifact is None:
            return self.hf.load(self.dtype, self.device, attn_implementation=register_attention())
        if artifact.kind == "model":
            return self.hf.load(self.dtype, self.device, path=artifact.path, attn_implementation=register_attention())
        try:
            from peft import PeftModel
        except ImportError:
            raise MissingDependency("peft (to serve a LoRA adapter)", "pip install peft") from None
        if artifact.quantized:  # QLoRA: the 4-bit base cannot take the merge; the adapter stays a wrapper
            base = load_4bit(self.ref.path, self.device, f"adapter {artifact.path}")
            return PeftModel.from_pretrained(base, str(artifact.path))
        base = self.hf.load(torch.float32, self.device, attn_implementation=register_attention())
        merged = PeftModel.from_pretrained(base, str(artifact.path)).merge_and_unload()  # merged for speed
        return merged.to(self.dtype)

    @property
    def draft(self):
        """The cascade's bf16 copy of the served weights (made from them once, on first use)."""
        if self._draft is None:
            self._draft = copy.deepcopy(self.model).to(torch.bfloat16).eval()
        return self._draft

    def close(self) -> None:
        """The weights go with the object (and its views); nothing else is held."""
        self._model, self._draft, self._views = None, None, {}

    def serving(self, artifact: Artifact | None) -> TransformersBackend:
        """The same backend (tokenizer, device, dtype) over trained weights: an adapter merged into a
        fresh copy of the base (unmerged on a 4-bit base), or a full model folder. The latest view is
        kept, so dev and test share one load; the base model stays as it is for the other rungs."""
        if artifact is None:
            return self
        if artifact.sha256 not in self._views:
            view = copy.copy(self)
            view.artifact, view._model, view._draft, view._views = artifact, None, None, {}
            view.cascade_counts = self.cascade_counts
            view._prefix_caches = OrderedDict()
            self._views = {artifact.sha256: view}
        return self._views[artifact.sha256]

    def identity(self) -> ModelIdentity:
        if self._base_identity is None:
            import transformers

            self._base_identity = ModelIdentity(
                **{
                    "backend": self.name,
                    **model_identity(self.ref),
                    "device": self.device.split(":")[0],
                    "dtype": CASCADE if self.cascade else self.dtype_name,
                    "attention": ATTENTION,
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                }
            )
        return artifact_identity(self._base_identity, self.artifact)

    # -- text ----------------------------------------------------------------------------------
    def formatter(self, format: str) -> Formatter:
        return self.hf.formatter(format)

    def _encode(self, prompt: Prompt) -> list[int]:
        return self.hf.encode(prompt)

    def _encode_continuation(self, text: str) -> list[int]:
        return self.hf.encode_continuation(text)

    def count_tokens(self, text: str) -> int:
        return len(self._encode(text))

    def _check_fits(self, prompt_tokens: int, extra: int) -> None:
        self.hf.check_fits(prompt_tokens, extra)

    # -- label scoring -------------------------------------------------------------------------
    def prefix_cache(self, ids: tuple[int, ...], model=None):
        """The keys and values of a shared prompt prefix under ``model`` (default: the served weights; the cascade's
        bf16 draft has its own), two kept per model: label scoring and the decoding loop attend to them."""
        model = model if model is not None else self.model
        key = (next(model.parameters()).dtype, ids)
        if key not in self._prefix_caches:
            with torch.inference_mode():
                out = model(input_ids=torch.tensor([ids], device=self.device), use_cache=True)
            self._prefix_caches[key] = out.past_key_values
            while len(self._prefix_caches) > 4:
                self._prefix_caches.popitem(last=False)
        return self._prefix_caches[key]

    def _by_shared_prefix(self, requests: Sequence[ScoreRequest | GenerateRequest], items: list[tuple]):
        """Groups ``items`` (``(index, prompt ids, ...)``, one per request) by the requests' declared
        prefix; yields each group with the tokens its prompts really share (see ``shared_tokens``)."""
        groups: dict[object, tuple[Prompt, list[tuple]]] = {}
        for request, item in zip(requests, items):
            key = request.prefix if isinstance(request.prefix, str) else tuple(request.prefix)
            groups.setdefault(key, (request.prefix, []))[1].append(item)
        for prefix, members in groups.values():
            encoded = self._encode(prefix) if prefix else []
            yield shared_tokens(encoded, [item[1] for item in members]), members

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
        if not self.cascade:
            return self._score(requests, encoded, self.model)
        # the cascade: every example in bf16; where its best label leads the next by less than bf16 could
        # have moved them (CASCADE_MARGIN), the example again in fp32, whose answer is the answer of record
        results = self._score(requests, encoded, self.draft)
        unsure = [i for i, r in enumerate(results) if _lead(r.logprobs) < CASCADE_MARGIN]
        if unsure:
            exact = self._score(
                [requests[i] for i in unsure], [(k, *encoded[i][1:]) for k, i in enumerate(unsure)], self.model
            )
            for i, scores in zip(unsure, exact):
                results[i] = scores
        self.cascade_counts["scored"] += len(requests)
        self.cascade_counts["exact"] += len(unsure)
        return results

    def _score(self, requests: Sequence[ScoreRequest], encoded, model) -> list[ChoiceScores]:
        results: list[ChoiceScores | None] = [None] * len(requests)
        for shared, items in self._by_shared_prefix(requests, encoded):
            cache = self.prefix_cache(tuple(shared), model) if shared else None
            items.sort(key=lambda it: len(it[1]) + sum(len(c) for c in it[2]))
            for start in range(0, len(items), self.batch_size):
                batch = items[start : start + self.batch_size]
                scored = self._score_batch(batch, len(shared), cache, model)
                for index, scores in zip((it[0] for it in batch), scored):
                    results[index] = scores
        return results  # type: ignore[return-value]

    def _score_batch(self, batch, shared_len: int, cache, model) -> list[ChoiceScores]:
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
                row_targets.append(
                    [(b, (len(suffix) - 1) if t == 0 else start + t - 1, tok) for t, tok in enumerate(choice)]
                )
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
        dtype = next(model.parameters()).dtype
        mask = torch.zeros(allowed.shape, dtype=dtype)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)
        mask = mask[:, None].to(self.device)

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
            logits = self.logits(hidden[rows, cols], model).float()
            token_logprobs = torch.log_softmax(logits, dim=-1).gather(1, wanted[:, None])[:, 0].cpu().tolist()
        out, k = [], 0
        for _, ids, choices in batch:
            sums = []
            for choice in choices:
                sums.append(float(sum(token_logprobs[k : k + len(choice)])))
                k += len(choice)
            out.append(ChoiceScores(sums, [len(c) for c in choices], len(ids)))
        return out

    def logits(self, hidden: torch.Tensor, model=None) -> torch.Tensor:
        """The output layer over hidden states, with the model's logit soft-capping where it has one."""
        model = model if model is not None else self.model
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
        """Greedy decoding runs in ladder's own loop (``decode.Decoder``: the shared prefix attended once,
        a preallocated cache, finished rows refilled from the queue). Sampling, and models that loop
        cannot drive, go through ``generate`` in batches of similar length; requests that declare a
        shared ``prefix`` (instruction + demonstrations) reuse one key/value cache of it there too, laid
        out as ``prefix | left padding | prompt`` (the padding is masked and the position ids skip it, so
        every row decodes exactly as if it were alone)."""
        results: list[Generation | None] = [None] * len(requests)
        encoded: list[tuple[int, list[int]]] = []
        for index, request in enumerate(requests):
            ids = self._encode(request.prompt)
            self._check_fits(len(ids), request.max_new_tokens)
            encoded.append((index, ids))
        own_loop = self.decoding == "ladder" and decode.supported(self.model)
        for shared, items in self._by_shared_prefix(requests, encoded):
            greedy = [it for it in items if requests[it[0]].temperature <= 0] if own_loop else []
            if greedy:
                for index, generation in self._decode(requests, greedy, shared):
                    results[index] = generation
            items = [it for it in items if results[it[0]] is None]
            items.sort(key=lambda it: len(it[1]))
            for start in range(0, len(items), self.batch_size):
                batch = items[start : start + self.batch_size]
                for index, generation in zip((i for i, _ in batch), self._generate_batch(requests, batch, shared)):
                    results[index] = generation
        return results  # type: ignore[return-value]

    def _eos(self) -> list[int]:
        return [t for t in {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id} if t is not None]

    def _decode(self, requests: list[GenerateRequest], items, shared: list[int]):
        eos_text = self.tokenizer.eos_token
        n = len(shared)
        rows = [
            decode.Row(
                ids[n:],
                requests[index].max_new_tokens,
                tuple(s for s in requests[index].stop if s and s != eos_text),
                requests[index].stop_at_json_end,
            )
            for index, ids in items
        ]
        slots = decode.slots_for(
            self.model, len(rows), max(len(r.suffix) + r.max_new for r in rows), n, self.dtype, self.batch_size
        )
        decode.Decoder(self, shared, rows, self._eos(), slots).run()
        for row, (index, ids) in zip(rows, items):
            new = row.generated[:-1] if row.ended_by_eos else row.generated
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            yield (
                index,
                finish_generation(requests[index], text, len(ids), len(row.generated), self.hf.count_continuation),
            )

    def _generate_batch(self, requests: list[GenerateRequest], batch, shared: list[int]) -> list[Generation]:
        from transformers import GenerationConfig

        eos = self._eos()
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
            past = copy.deepcopy(self.prefix_cache(tuple(shared)))
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

            criteria = StoppingCriteriaList([JsonObjectClosed(self.tokenizer, width)])
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
            generations.append(finish_generation(request, text, len(ids), used, self.hf.count_continuation))
        return generations
