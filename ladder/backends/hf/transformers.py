"""The transformers backend: real models on CPU (fp32) or CUDA (bf16); ``hardware`` says why ``auto``
stays fp32 on a CPU. Label scoring (what makes the low rungs cheap on a CPU: the shared prefix once, all labels of
an example in one pass; the bf16/fp32 cascade) is ``labels``; greedy decoding runs in ladder's own loop (``decode``).
"""

from __future__ import annotations

import copy
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

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
from ladder.backends.hf import ATTENTION
from ladder.backends.hf.model import HFModel, load_4bit, resolve_model
from ladder.backends.models import ModelRef, installed_version, model_identity
from ladder.errors import LadderError, MissingDependency
from ladder.record import ModelIdentity

if TYPE_CHECKING:
    import torch

# torch is imported when weights are first needed: a run whose outputs are all cached never imports it
DTYPES = ("float32", "bfloat16", "float16")
LOOKUP_CPU = 4
CASCADE = "cascade"  # fp32 weights answer; a bf16 copy scores labels first (labels.CASCADE_MARGIN)


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
        warning = emulation_warning(self.dtype_name, self.device)
        if warning:
            warnings.warn(warning, stacklevel=2)
        self.batch_size = batch_size
        self.decoding = "ladder"  # greedy decoding in ladder's own loop; "generate": transformers' generate
        # prompt-lookup drafts per row and step in that loop (``decode.Decoder``): on a CPU 4 (bench/lookup.py, us-address
        # 8-shot: 1.14x at 64 rows, 1.36x at 16, every text the same); elsewhere not measured, so none
        self.lookup = LOOKUP_CPU if self.device == "cpu" else 0
        self.lookup_counts = {"drafted": 0, "accepted": 0, "passes": 0}
        self.artifact: Artifact | None = None
        self._model = None
        self._draft = None  # the cascade's bf16 copy of the weights
        self.cascade_counts = {"scored": 0, "exact": 0}  # the cascade's examples, and those re-scored in fp32
        self._base_identity: ModelIdentity | None = None
        self._views: dict[str, TransformersBackend] = {}
        self._prefix_caches: OrderedDict[tuple[torch.dtype, tuple[int, ...]], object] = OrderedDict()

    @property
    def dtype(self) -> torch.dtype:
        import torch

        return getattr(torch, self.dtype_name)

    @property
    def tokenizer(self):
        """transformers' tokenizer (decoding), loaded on first use; prompts are encoded by ``hf`` without it."""
        return self.hf.tokenizer

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
        import torch

        from ladder.backends.hf.attention import register as register_attention

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
            import torch

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
        if self._base_identity is None:  # versions from the installed packages' metadata: nothing imported
            self._base_identity = ModelIdentity(
                **{
                    "backend": self.name,
                    **model_identity(self.ref),
                    "device": self.device.split(":")[0],
                    "dtype": CASCADE if self.cascade else self.dtype_name,
                    "attention": ATTENTION,
                    "torch": installed_version("torch"),
                    "transformers": installed_version("transformers"),
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
            import torch

            with torch.inference_mode():
                out = model(input_ids=torch.tensor([ids], device=self.device), use_cache=True)
            self._prefix_caches[key] = out.past_key_values
            while len(self._prefix_caches) > 4:
                self._prefix_caches.popitem(last=False)
        return self._prefix_caches[key]

    def by_shared_prefix(self, requests: Sequence[ScoreRequest | GenerateRequest], items: list[tuple]):
        """Groups ``items`` (``(index, prompt ids, ...)``, one per request) by the requests' declared
        prefix; yields each group with the tokens its prompts really share (see ``shared_tokens``)."""
        from ladder.backends.hf.batching import shared_tokens

        groups: dict[object, tuple[Prompt, list[tuple]]] = {}
        for request, item in zip(requests, items):
            key = request.prefix if isinstance(request.prefix, str) else tuple(request.prefix)
            groups.setdefault(key, (request.prefix, []))[1].append(item)
        for prefix, members in groups.values():
            encoded = self._encode(prefix) if prefix else []
            yield shared_tokens(encoded, [item[1] for item in members]), members

    def score_choices(self, requests: list[ScoreRequest]) -> list[ChoiceScores]:
        """Every request's choices by summed log-probability (``labels.score_choices``: one pass per example, the
        shared prefix once; with the cascade, bf16 first)."""
        from ladder.backends.hf import labels

        return labels.score_choices(self, requests)

    def logits(self, hidden: torch.Tensor, model=None) -> torch.Tensor:
        """The output layer over hidden states, with the model's logit soft-capping where it has one."""
        model = model if model is not None else self.model
        logits = model.get_output_embeddings()(hidden)
        cap = getattr(model.config, "final_logit_softcapping", None)
        if cap:
            import torch

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
        from ladder.backends.hf import decode

        results: list[Generation | None] = [None] * len(requests)
        encoded: list[tuple[int, list[int]]] = []
        for index, request in enumerate(requests):
            ids = self._encode(request.prompt)
            self._check_fits(len(ids), request.max_new_tokens)
            encoded.append((index, ids))
        own_loop = self.decoding == "ladder" and decode.supported(self.model)
        for shared, items in self.by_shared_prefix(requests, encoded):
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
        return [t for t in {self.hf.eos_token_id, self.hf.pad_token_id} if t is not None]

    def _decode(self, requests: list[GenerateRequest], items, shared: list[int]):
        from ladder.backends.hf import decode

        eos_text = self.hf.eos_token
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
        decoder = decode.Decoder(self, shared, rows, self._eos(), slots, lookup=self.lookup)
        decoder.run()
        for name in self.lookup_counts:
            self.lookup_counts[name] += getattr(decoder, name)
        for row, (index, ids) in zip(rows, items):
            new = row.generated[:-1] if row.ended_by_eos else row.generated
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            yield (
                index,
                finish_generation(requests[index], text, len(ids), len(row.generated), self.hf.count_continuation),
            )

    def _generate_batch(self, requests: list[GenerateRequest], batch, shared: list[int]) -> list[Generation]:
        import torch
        from transformers import GenerationConfig

        from ladder.backends.hf.batching import JsonObjectClosed

        eos = self._eos()
        pad = self.hf.pad_token_id if self.hf.pad_token_id is not None else eos[0]
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
        stops = sorted({s for i, _ in batch for s in requests[i].stop if s != self.hf.eos_token})
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
