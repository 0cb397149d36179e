"""The openai backend: any OpenAI-compatible server (a `vllm serve` deployment, with tensor or data
parallelism over many GPUs, is the scale-out path).

- ``serving.api: chat`` (servers without ``/v1/completions``): the conversation goes to
  ``/v1/chat/completions`` as messages and the server's chat template formats it; generation only
  (label tasks need ``label_scoring: generate``).
- Prompts are rendered and tokenized locally with the task model's own tokenizer and chat template
  (the task's ``model`` is the model the server serves) and sent to ``/v1/completions`` as token ids, so
  the server sees exactly what the other backends see. The record names the server (its ``/v1/models``
  entry and version) beside the local files' hashes.
- Label scoring sums each label's token log-probabilities after the prompt. On a vLLM server (it answers
  ``/version``): next-token log-probabilities of exactly the label tokens (``logprob_token_ids``), one
  request per distinct label prefix, because ``echo`` + prompt log-probabilities kill a vLLM 0.32 engine
  started with ``--enable-lora`` (vllm-project/vllm#29955). Elsewhere: ``echo`` + ``logprobs``. A server
  that returns neither (OpenAI's own API) is named in a one-line error: such a task needs
  ``generation.label_scoring: generate``.
- Generation: ``temperature`` 0 (greedy) or the task's sampling settings with a per-request seed; stop
  strings go to the server; the JSON early stop cuts the text at the close of the first JSON value.
- LoRA artifacts: served as ``ladder-<sha256[:12]>``. If the server does not list that name, it is
  loaded at run time (``POST /v1/load_lora_adapter``, which a vLLM server allows when started with
  ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``); otherwise the error says how to pre-register it
  (``--lora-modules ladder-<sha>=<path>``). The adapter folder must be readable by the server.
- The API key is read from the environment variable that ``serving.api_key_env`` names; timeouts,
  retries with exponential backoff (connection errors, 429 and 5xx), and at most ``concurrency``
  requests in flight.
"""

from __future__ import annotations

import json
import os

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
from ladder.backends.hf.model import HFModel, resolve_model
from ladder.backends.http import Client, ServerError
from ladder.backends.models import ModelRef, model_identity
from ladder.errors import LadderError
from ladder.record import ModelIdentity


class MessagesFormatter:
    """``serving.api: chat``: the conversation itself is the prompt (as JSON; the result cache keys on it),
    and the server's chat template renders it. Chat completions give no prompt log-probabilities, so
    labels cannot be scored by likelihood."""

    end_of_turn = ""
    format = "chat"

    def prompt(self, messages) -> str:
        return json.dumps(list(messages), ensure_ascii=False)

    def completion(self, messages, answer: str) -> str:
        raise LadderError(
            "serving.api: chat gives no log-probabilities to score labels with: set "
            "generation.label_scoring: generate (or serving.api: completions)"
        )


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        ref: ModelRef,
        base_url: str,
        model: str | None = None,
        api_key_env: str | None = None,
        timeout_s: float = 120,
        retries: int = 4,
        concurrency: int = 8,
        batch_size: int = 8,
        hf: HFModel | None = None,
        api: str = "completions",
    ):
        api_key = None
        if api_key_env:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise LadderError(f"serving.api_key_env: the environment variable {api_key_env} is not set")
        self.ref = ref
        self.hf = hf or HFModel(ref)
        self.batch_size = batch_size
        self.client = Client(base_url, api_key, timeout_s, retries, concurrency)
        self._served = model
        self.api = api
        self.artifact: Artifact | None = None
        self._base_identity: ModelIdentity | None = None
        self._loaded: set[str] = set()  # adapters this session made sure the server has

    @classmethod
    def from_spec(cls, model: str, base_dir=None, serving=None, base_url: str | None = None, batch_size: int = 8):
        url = base_url or (serving.base_url if serving is not None else None)
        if not url:
            raise LadderError(
                "serving.base_url: the openai backend needs the server's URL (serving.base_url in "
                "the task file, or --base-url)"
            )
        options = {}
        if serving is not None:
            options = dict(
                model=serving.model,
                api_key_env=serving.api_key_env,
                timeout_s=serving.timeout_s,
                retries=serving.retries,
                concurrency=serving.concurrency,
                api=serving.api,
            )
        return cls(resolve_model(model, base_dir), url, batch_size=batch_size, **options)

    # -- the server ----------------------------------------------------------------------------
    def _models(self) -> list[dict]:
        try:
            return self.client.call("GET", "/models").get("data", [])
        except ServerError as exc:
            raise LadderError(f"serving.base_url: {exc}") from None

    @property
    def served(self) -> str:
        """The base model's name on the server: as configured, else the only model it serves that is not
        an adapter."""
        if self._served is None:
            bases = [m["id"] for m in self._models() if not m.get("parent")]
            if len(bases) != 1:
                raise LadderError(
                    f"serving.model: the server at {self.client.base_url} serves {len(bases)} base "
                    f"models ({', '.join(bases) or 'none'}): name one"
                )
            self._served = bases[0]
        return self._served

    def identity(self) -> ModelIdentity:
        if self._base_identity is None:
            listed = {m["id"]: m for m in self._models()}
            if self.served not in listed:
                raise LadderError(
                    f"serving.model: {self.served!r} is not served at {self.client.base_url} "
                    f"(it serves: {', '.join(listed) or 'nothing'})"
                )
            entry = listed[self.served]
            try:
                version = self.client.call("GET", "/version", root=True).get("version")
            except LadderError:
                version = None  # not every server reports one
            self._base_identity = ModelIdentity(
                **{
                    "backend": self.name,
                    # the local files the prompts were tokenized with (a tokenizer-only folder will do)
                    **model_identity(self.ref, weights_required=False),
                    "base_url": self.client.base_url,
                    "served_model": self.served,
                    "api": self.api,
                    "server": {
                        k: entry.get(k) for k in ("root", "owned_by", "max_model_len") if entry.get(k) is not None
                    },
                    "server_version": version,
                }
            )
        return artifact_identity(self._base_identity, self.artifact)

    def serving(self, artifact: Artifact | None) -> OpenAIBackend:
        if artifact is None:
            return self
        if artifact.kind == "model":
            raise LadderError(
                f"the openai backend cannot load a full fine-tune at run time: serve {artifact.path} with its own "
                "`vllm serve` and assess it there, or evaluate this rung with --backend vllm or transformers"
            )
        import copy

        view = copy.copy(self)
        view.artifact = artifact
        return view

    def _model_name(self) -> str:
        if self.artifact is None:
            return self.served
        name = f"ladder-{self.artifact.sha256[:12]}"
        if name not in self._loaded:
            with self.client.lock:
                if name not in {m["id"] for m in self._models()}:
                    self._load_adapter(name)
                self._loaded.add(name)
        return name

    def _load_adapter(self, name: str) -> None:
        path = self.artifact.path.resolve()
        try:
            self.client.call("POST", "/load_lora_adapter", {"lora_name": name, "lora_path": str(path)})
        except ServerError as exc:
            if exc.status in (404, 405):
                how = "the server has no /v1/load_lora_adapter (a vLLM server needs VLLM_ALLOW_RUNTIME_LORA_UPDATING=True)"
            else:
                how = f"loading it failed ({exc})"
            raise LadderError(
                f"the LoRA adapter {path} is not on the server at {self.client.base_url} and {how}: "
                f"start the server with --enable-lora --lora-modules {name}={path}"
            ) from None

    # -- text ----------------------------------------------------------------------------------
    def formatter(self, format: str) -> Formatter:
        if self.api == "chat":
            return MessagesFormatter()
        return self.hf.formatter(format)

    def count_tokens(self, text: str) -> int:
        return len(self.hf.encode(text))

    # -- label scoring -------------------------------------------------------------------------
    def score_choices(self, requests: list[ScoreRequest]) -> list[ChoiceScores]:
        model = self._model_name()
        encoded = []
        for request in requests:
            choices = [self.hf.encode_continuation(c) for c in request.choices]
            if any(not c for c in choices):
                raise LadderError("a choice encodes to no tokens")
            encoded.append((self.hf.encode(request.prompt), choices))
        if self._is_vllm():
            sums = self._next_token_scores(model, encoded)
        else:
            sums = self._echo_scores(model, encoded)
        return [ChoiceScores(row, [len(c) for c in choices], len(ids)) for row, (ids, choices) in zip(sums, encoded)]

    def _is_vllm(self) -> bool:
        self.identity()
        return self._base_identity.server_version is not None

    def _next_token_scores(self, model: str, encoded) -> list[list[float]]:
        """On a vLLM server: one request per distinct label prefix, asking for the log-probabilities of
        exactly the tokens that may follow (vLLM's ``logprob_token_ids``). Not ``echo`` + prompt
        log-probabilities: on a server started with --enable-lora, vLLM 0.32 computing those kills the
        engine (vllm-project/vllm#29955), and the server with it. The bare prompts go first, so the
        server's prefix cache holds them for the rest."""
        queries = label_prefix_queries(encoded)

        def ask(query) -> dict[int, float]:
            r, prefix, wanted = query
            body = {
                "model": model,
                "prompt": encoded[r][0] + list(prefix),
                "max_tokens": 1,
                "temperature": 0,
                "logprobs": 1,
                "logprob_token_ids": wanted,
                "return_tokens_as_token_ids": True,
            }
            top = (
                (self.client.call("POST", "/completions", body)["choices"][0].get("logprobs") or {}).get("top_logprobs")
                or [None]
            )[0] or {}
            got = {int(k.split(":", 1)[1]): v for k, v in top.items() if k.startswith("token_id:")}
            if not set(wanted) <= set(got):
                raise LadderError(
                    f"the server at {self.client.base_url} did not return the requested token "
                    "log-probabilities (logprob_token_ids): set generation.label_scoring: generate"
                )
            return got

        first = [q for q in queries if not q[1]]
        rest = [q for q in queries if q[1]]
        answers = self.client.map(ask, first) + self.client.map(ask, rest)
        found = {(r, prefix): got for (r, prefix, _), got in zip(first + rest, answers)}
        return label_path_sums(encoded, found)

    def _echo_scores(self, model: str, encoded) -> list[list[float]]:
        """Other servers: ``echo`` + ``logprobs``: the prompt's log-probabilities of ``prompt + label``."""
        rows = [(ids + c, len(c)) for ids, choices in encoded for c in choices]

        def score(row) -> float:
            ids, length = row
            body = {"model": model, "prompt": ids, "max_tokens": 1, "temperature": 0, "echo": True, "logprobs": 1}
            choice = self.client.call("POST", "/completions", body)["choices"][0]
            logprobs = (choice.get("logprobs") or {}).get("token_logprobs") or []
            tail = logprobs[len(ids) - length : len(ids)]
            if len(logprobs) < len(ids) or any(v is None for v in tail):
                raise LadderError(
                    f"the server at {self.client.base_url} returned no prompt log-probabilities "
                    "(echo + logprobs): set generation.label_scoring: generate for this task"
                )
            return float(sum(tail))

        flat, sums, k = self.client.map(score, rows), [], 0
        for _, choices in encoded:
            sums.append(flat[k : k + len(choices)])
            k += len(choices)
        return sums

    # -- generation ----------------------------------------------------------------------------
    def generate(self, requests: list[GenerateRequest]) -> list[Generation]:
        model = self._model_name()
        eos = self.hf.eos_token

        def one(request: GenerateRequest) -> Generation:
            if self.api == "chat":
                return self._chat(model, request)
            ids = self.hf.encode(request.prompt)
            sampling = request.temperature > 0
            body = {
                "model": model,
                "prompt": ids,
                "max_tokens": request.max_new_tokens,
                "temperature": request.temperature if sampling else 0.0,
                "top_p": request.top_p if sampling else 1.0,
            }
            if sampling:
                body["seed"] = request.seed
            stops = [s for s in request.stop if s != eos][:4]  # the end-of-turn token stops as eos; the API takes 4
            if stops:
                body["stop"] = stops
            answer = self.client.call("POST", "/completions", body)
            text = answer["choices"][0].get("text") or ""
            used = (answer.get("usage") or {}).get("completion_tokens")
            if used is None:
                used = self.hf.count_continuation(text)
            return finish_generation(request, text, len(ids), used, self.hf.count_continuation)

        return self.client.map(one, requests)

    def _chat(self, model: str, request: GenerateRequest) -> Generation:
        """/v1/chat/completions: the server's chat template renders the conversation."""
        sampling = request.temperature > 0
        body = {
            "model": model,
            "messages": json.loads(request.prompt),
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature if sampling else 0.0,
            "top_p": request.top_p if sampling else 1.0,
        }
        if sampling:
            body["seed"] = request.seed
        answer = self.client.call("POST", "/chat/completions", body)
        text = answer["choices"][0]["message"].get("content") or ""
        usage = answer.get("usage") or {}
        used = usage.get("completion_tokens", self.hf.count_continuation(text))
        return finish_generation(request, text, usage.get("prompt_tokens", 0), used, self.hf.count_continuation)

    def close(self) -> None:
        self.client.close()
