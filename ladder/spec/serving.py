"""Which backend serves the candidates, and its settings."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import (
    Field,
    field_validator,
)

from ladder.spec.base import Strict


class ServingSpec(Strict):
    """Which backend serves the candidates, and its settings. ``--backend`` on the command line overrides
    ``backend``."""

    backend: Literal["auto", "transformers", "vllm", "openai"] = Field(
        default="auto",
        description="auto: vllm where CUDA and vllm are both present, else transformers. openai: any "
        "OpenAI-compatible server (e.g. a `vllm serve` deployment) at base_url.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16", "cascade"] = Field(
        default="auto",
        description="Weights' precision for transformers and vllm: auto is float32 on CPU, and on CUDA the "
        "precision the checkpoint was saved in (config.json's dtype; bfloat16 where it names none). bf16 weights "
        "changed the bundled fp32 SmolLM2's label predictions on 3-8 of 100 SNIPS examples, on CPU and on CUDA; a "
        "CPU without avx512_bf16/amx_bf16 only emulates bf16, several times slower. cascade (transformers; float32 "
        "elsewhere): labels scored in bf16 and again in fp32 where bf16's best leads by under 2 nats, so the labels are "
        "fp32's (measured on 4,158 SNIPS examples); 0.73-1.23x fp32's speed on the bundled models.",
    )
    base_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="openai: the server's URL up to /v1, e.g. http://10.0.0.5:8000/v1.",
    )
    model: str | None = Field(
        default=None,
        description="openai: the served model's name (as /v1/models lists it); default: the only one served.",
    )
    api_key_env: str | None = Field(
        default=None,
        description="openai: the NAME of the environment variable holding the API key (never the key itself).",
    )
    api: Literal["completions", "chat"] = Field(
        default="completions",
        description="openai: /v1/completions with prompts rendered by ladder (needed for label log-likelihoods), or "
        "/v1/chat/completions for servers without it (the server's chat template formats; label_scoring: generate).",
    )
    timeout_s: float = Field(default=120, gt=0, description="openai: seconds per HTTP request.")
    retries: int = Field(
        default=4, ge=0, le=20, description="openai: retries of a failed request, with exponential backoff."
    )
    concurrency: int = Field(default=8, ge=1, le=256, description="openai: requests in flight at once.")
    gpu_memory_utilization: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="vllm on CUDA: the engine's share of GPU memory (the rest is left for training rungs).",
    )
    tensor_parallel_size: int = Field(default=1, ge=1, description="vllm: GPUs one engine spans.")
    max_model_len: int | None = Field(default=None, ge=16, description="vllm: context length (default: the model's).")
    enforce_eager: bool | None = Field(
        default=None,
        description="vllm: no CUDA graphs / compilation (default: eager on CPU, where start-up is 3x faster).",
    )
    kv_cache_gb: float = Field(default=2, gt=0, description="vllm on CPU: memory for the key/value cache (GiB).")

    @field_validator("api_key_env")
    @classmethod
    def _a_name_not_a_key(cls, value: str | None) -> str | None:
        # the message never repeats the value: it may be a key pasted in by mistake
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(
                "name an environment variable (e.g. OPENAI_API_KEY) that holds the key, not the key itself"
            )
        return value
