"""One contract test over every registered backend: the protocol the assess loop relies on."""

from __future__ import annotations

import pytest
from conftest import ROOT

from ladder.backends import BACKENDS, create_backend
from ladder.backends.base import GenerateRequest, ScoreRequest


def _param(name: str):
    """vllm and openai start a vLLM engine or server: marked ``vllm`` (``make test-fast`` leaves them out)."""
    return pytest.param(name, marks=pytest.mark.vllm) if name in ("vllm", "openai") else name


@pytest.fixture(scope="module", params=[_param(name) for name in BACKENDS.names()])
def backend(request):
    from conftest import need_vllm

    if request.param == "transformers":
        made = create_backend("transformers", "smollm2-135m-instruct", batch_size=2)
    elif request.param == "vllm":
        need_vllm()
        made = create_backend("vllm", "smollm2-135m-instruct", batch_size=2)
    elif request.param == "openai":
        made = create_backend("openai", "smollm2-135m-instruct", base_url=request.getfixturevalue("vllm_server"))
    else:
        made = create_backend(request.param, "unused", labels=["yes", "no"])
    yield made
    made.close()  # a vllm engine's memory goes before the next backend's


def test_backend_contract(backend):
    identity = backend.identity()
    assert identity.backend == backend.name and identity.weights_sha256 and identity.tokenizer_sha256
    for fmt in ("chat", "plain"):
        f = backend.formatter(fmt)
        messages = [{"role": "system", "content": "Answer yes or no."}, {"role": "user", "content": "Is it yes?"}]
        prompt = f.prompt(messages)
        assert "Answer yes or no." in prompt and "Is it yes?" in prompt
        completions = [f.completion(messages, a) for a in ("yes", "no")]
        assert completions[0].startswith("yes") and completions[0].endswith(f.end_of_turn)
        scored = backend.score_choices([ScoreRequest(prompt, completions), ScoreRequest(prompt + "x", completions)])
        assert len(scored) == 2 and all(len(s.logprobs) == 2 and all(lp <= 0 for lp in s.logprobs) for s in scored)
        assert all(s.prompt_tokens > 0 and min(s.token_counts) >= 1 for s in scored)
        generated = backend.generate([GenerateRequest(prompt, 5, stop=[f.end_of_turn])])
        assert len(generated) == 1 and isinstance(generated[0].text, str) and generated[0].completion_tokens <= 5
    assert backend.count_tokens("hello world") >= 1
    # an artifact changes the identity (cache keys), never the base backend itself
    from ladder.backends.base import Artifact

    if backend.name != "scripted":
        return  # serving real artifacts: tests/test_serving.py
    view = backend.serving(Artifact("adapter", ROOT, "f" * 64, 1, rank=8))
    assert view.identity().weights_sha256 == "f" * 64 and backend.identity().weights_sha256 != "f" * 64
    assert backend.serving(None) is backend
