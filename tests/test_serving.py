"""vLLM behind the backend seam, on the real bundled model: the in-process vllm backend and the openai
backend against a real vLLM OpenAI-compatible server, both compared with the transformers backend on
SNIPS prompts (label log-probabilities, greedy generations), base and a trained LoRA adapter.

Tolerances, stated: per-label log-probabilities within 1e-3 nats on the base model (fp32 on both; measured
~7e-5) and within 0.05 with an adapter (transformers merges it into the weights, vllm applies it unmerged:
another order of the same fp32 arithmetic); the same argmax on at least 98%; greedy generations equal on
at least 95%.
"""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, need_vllm

from ladder.backends import create_backend
from ladder.backends.base import GenerateRequest, ScoreRequest
from ladder.data.splits import load_task_data
from ladder.rungs.base import Candidate
from ladder.spec import load_task

pytestmark = [pytest.mark.model, pytest.mark.vllm]
SNIPS = ROOT / "tasks" / "snips-intent" / "task.yaml"
MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def snips():
    task = load_task(SNIPS)
    return task.spec, load_task_data(task).splits


@pytest.fixture(scope="module")
def hf():
    return create_backend("transformers", MODEL, batch_size=8)


@pytest.fixture(scope="module")
def vb():
    need_vllm()
    backend = create_backend("vllm", MODEL, batch_size=8, lora_ranks=[8])  # the slots the adapter will need
    yield backend
    backend.close()


def _requests(backend, spec, examples):
    f = backend.formatter("chat")
    zero = Candidate("prompt", "prompt", spec.prompt.instruction, spec.prompt.input_template)
    convs = [zero.messages(ex.input) for ex in examples]
    choices = [f.completion(convs[0], label) for label in spec.output.labels]
    scores = [ScoreRequest(f.prompt(c), choices) for c in convs]
    gens = [GenerateRequest(f.prompt(c), 24, stop=[f.end_of_turn]) for c in convs]
    return scores, gens


def _argmax(rows) -> list[int]:
    return [max(range(len(r.logprobs)), key=lambda j: r.logprobs[j]) for r in rows]


def _max_diff(a, b) -> float:
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra.logprobs, rb.logprobs))


def _compare(reference, other, spec, examples, tolerance: float):
    scores, gens = _requests(reference, spec, examples)
    a, b = reference.score_choices(scores), other.score_choices(scores)
    assert [r.prompt_tokens for r in a] == [r.prompt_tokens for r in b]
    assert [r.token_counts for r in a] == [r.token_counts for r in b]
    diff = _max_diff(a, b)
    assert diff <= tolerance, f"label log-probabilities differ by up to {diff:.2e}"
    agree = sum(x == y for x, y in zip(_argmax(a), _argmax(b)))
    assert agree >= 0.98 * len(examples)
    ga, gb = reference.generate(gens), other.generate(gens)
    equal = sum(x.text == y.text for x, y in zip(ga, gb))
    assert equal >= 0.95 * len(examples), [(x.text, y.text) for x, y in zip(ga, gb) if x.text != y.text]
    return a, b


def test_vllm_matches_transformers_on_50_snips_prompts(hf, vb, snips):
    spec, splits = snips
    _compare(hf, vb, spec, splits.dev[:50], tolerance=1e-3)
    assert vb.identity().backend == "vllm" and vb.identity().weights_sha256 == hf.identity().weights_sha256


def test_vllm_hot_swaps_a_lora_adapter_on_the_same_engine(hf, vb, snips, trained_adapter):
    """The guard against adapters silently ignored (lm-evaluation-harness #2432): every example whose
    transformers answer changes with the adapter changes under vllm too, and the scores follow."""
    spec, splits = snips
    examples = splits.dev[:12]
    scores, _ = _requests(hf, spec, examples)
    base_hf, base_vllm = _argmax(hf.score_choices(scores)), _argmax(vb.score_choices(scores))
    tuned_hf, tuned_vllm = _compare(hf.serving(trained_adapter), vb.serving(trained_adapter), spec, examples, 0.05)
    changed_hf = {i for i, (x, y) in enumerate(zip(base_hf, _argmax(tuned_hf))) if x != y}
    changed_vllm = {i for i, (x, y) in enumerate(zip(base_vllm, _argmax(tuned_vllm))) if x != y}
    assert changed_hf, "the adapter changed no prediction: the test would prove nothing"
    assert changed_hf <= changed_vllm
    # one restart: the base engine gains LoRA slots with the first adapter, and then serves base and adapter
    assert [s["lora"] for s in vb.engines.starts] == [False, True]
    assert vb.serving(trained_adapter).identity().weights_sha256 == trained_adapter.sha256


def test_openai_backend_against_a_real_vllm_server(hf, vllm_server, snips, trained_adapter):
    spec, splits = snips
    ob = create_backend("openai", MODEL, base_url=vllm_server)
    identity = ob.identity()
    assert identity.served_model == "smollm2" and identity.base_url == vllm_server
    assert identity.server is not None and identity.server["max_model_len"] == 2048 and identity.server_version
    _compare(hf, ob, spec, splits.dev[:12], tolerance=1e-3)
    # the adapter is loaded at run time (/v1/load_lora_adapter) and then listed by the server
    tuned = ob.serving(trained_adapter)
    _compare(hf.serving(trained_adapter), tuned, spec, splits.dev[:12], tolerance=0.05)
    listed = {m["id"] for m in tuned._models()}
    assert f"ladder-{trained_adapter.sha256[:12]}" in listed


def test_openai_backend_says_what_is_wrong_with_a_server(vllm_server, trained_adapter):
    from ladder.backends.base import Artifact
    from ladder.errors import LadderError

    wrong = create_backend("openai", MODEL, base_url=vllm_server + "x")
    with pytest.raises(LadderError, match="HTTP 404"):
        wrong.identity()
    with pytest.raises(LadderError, match="cannot load a full fine-tune"):
        create_backend("openai", MODEL, base_url=vllm_server).serving(
            Artifact("model", trained_adapter.path, "0" * 64, 1)
        )
    unreachable = create_backend("openai", MODEL, base_url="http://127.0.0.1:9/v1")
    unreachable.client.retries = 1
    with pytest.raises(LadderError, match="no answer after 2 tries"):
        unreachable.identity()


@pytest.mark.parametrize("name", ["vllm", "openai"])
def test_assess_snips_end_to_end_matches_transformers(name, request, tmp_path, capsys):
    """`ladder assess tasks/snips-intent/task.yaml --backend NAME` (prompt and fewshot on 20 dev and 20
    test examples): the same record and report as transformers, the same predictions."""
    from ladder.cli.main import main
    from ladder.record import load_run

    need_vllm()
    runs = {}
    for backend in ("transformers", name):
        out = tmp_path / backend
        extra = ["--base-url", request.getfixturevalue("vllm_server")] if backend == "openai" else []
        assert (
            main(
                [
                    "assess",
                    str(SNIPS),
                    "--backend",
                    backend,
                    "--rungs",
                    "prompt,fewshot",
                    "--limit",
                    "20",
                    "--out",
                    str(out),
                    *extra,
                ]
            )
            == 0
        )
        assert (out / "report.md").is_file()
        runs[backend] = load_run(out)
    capsys.readouterr()
    reference, other = runs["transformers"], runs[name]
    assert other.model.backend == name and other.status == "complete"
    for a, b in zip(reference.rungs, other.rungs):
        same = sum(x.output == y.output for x, y in zip(a.examples, b.examples))
        assert same >= 0.98 * len(a.examples), (a.name, same, len(a.examples))
        for split in ("dev", "test"):
            assert abs(a.splits[split].metrics["accuracy"].mean - b.splits[split].metrics["accuracy"].mean) <= 0.05
    assert json.loads((tmp_path / name / "run.json").read_text())["model"]["backend"] == name


def test_assess_climbs_to_a_lora_rung_on_the_vllm_backend(make_task, tmp_path, capsys):
    """The loop with a trained rung on vllm: the adapter trained by the lora rung is served as a
    LoRARequest (the engine restarted once with LoRA slots), recorded with its hash, and an unchanged
    re-run reuses the training and every output without starting an engine."""
    from ladder.cli.main import main
    from ladder.record import load_run

    need_vllm()
    lora = {
        "type": "lora",
        "dropout": 0.0,
        "train": {"max_steps": 2, "batch_size": 4, "eval_every": 2, "max_seq_len": 64},
    }
    path = make_task({"rungs": [{"type": "prompt"}, lora]})
    assert main(["assess", str(path), "--backend", "vllm", "--exhaustive", "--out", str(tmp_path / "a")]) == 0
    run = load_run(tmp_path / "a")
    tuned = run.rung("lora")
    assert run.model.backend == "vllm" and tuned.training.artifact_sha256
    assert (tmp_path / "a" / "lora" / "adapter" / "adapter_config.json").is_file()
    from ladder.run.assess import assess
    from ladder.spec import load_task

    fresh = create_backend("vllm", MODEL, lora_ranks=[8])
    rerun, _ = assess(load_task(path), backend=fresh, exhaustive=True, out_dir=tmp_path / "b")
    assert fresh.engines.starts == []  # every output from the cache: no engine started, no weights loaded
    again = rerun.rung("lora")
    assert again.training.reused and again.training.artifact_sha256 == tuned.training.artifact_sha256
    assert [e.output for e in again.examples] == [e.output for e in tuned.examples]
    # the adapter certificate, made through vllm against the transformers reference, comes back from the cache too
    checks = {c.name: c for c in tuned.certificate.checks}
    assert checks["matches_reference"].passed and checks["same_template"].passed
    assert again.certificate == tuned.certificate
    capsys.readouterr()


def test_vllm_serves_a_full_fine_tune_on_its_own_engine(hf, vb, snips, tmp_path, monkeypatch):
    """A full fine-tune's folder (weights + tokenizer) is an engine of its own; the base engine is shut
    down first, and the answers match the transformers backend over the same folder."""
    from ladder.run.context import base_loader
    from ladder.rungs import BuildContext
    from ladder.rungs.finetune import finetune
    from ladder.spec import FullRungSpec, TrainSpec

    spec, splits = snips
    monkeypatch.setenv("LADDER_HOME", str(tmp_path / "home"))
    ctx = BuildContext(
        spec=spec,
        train=splits.train[:16],
        dev=splits.dev[:4],
        work_dir=tmp_path / "run",
        task_dir=SNIPS.parent,
        load_base=base_loader(spec, SNIPS.parent),
    )
    rung = FullRungSpec(
        type="full", train=TrainSpec(max_steps=2, batch_size=4, eval_every=2, learning_rate=5e-5, max_seq_len=96)
    )
    artifact = finetune(rung, ctx).artifact
    assert artifact.kind == "model"
    before = len(vb.engines.starts)
    _compare(hf.serving(artifact), vb.serving(artifact), spec, splits.dev[:8], tolerance=1e-3)
    assert vb.engines.starts[before]["model"] == str(artifact.path) and vb.engines.key == f"model:{artifact.sha256}"


def test_openai_chat_api_lets_the_server_format_the_conversation(vllm_server, snips):
    """serving.api: chat sends messages to /v1/chat/completions; the server's chat template (SmolLM2's own)
    renders them, so greedy answers equal those of ladder-rendered prompts on /v1/completions. Label
    likelihoods need /v1/completions: asking for them is a one-line error."""
    from ladder.errors import LadderError

    spec, splits = snips
    completions = create_backend("openai", MODEL, base_url=vllm_server)
    chat = create_backend("openai", MODEL, base_url=vllm_server)
    chat.api = "chat"
    zero = Candidate("prompt", "prompt", spec.prompt.instruction, spec.prompt.input_template)
    convs = [zero.messages(ex.input) for ex in splits.dev[:8]]
    f, g = completions.formatter("chat"), chat.formatter("chat")
    texts = [
        x.text for x in completions.generate([GenerateRequest(f.prompt(c), 24, stop=[f.end_of_turn]) for c in convs])
    ]
    chatted = chat.generate([GenerateRequest(g.prompt(c), 24) for c in convs])
    assert [x.text for x in chatted] == texts and all(x.prompt_tokens > 0 for x in chatted)
    assert chat.identity().api == "chat"
    with pytest.raises(LadderError, match="label_scoring: generate"):
        g.completion(convs[0], spec.output.labels[0])


def _certify(backend, artifact, spec, splits, reference):
    from ladder.backends.base import template_fingerprint
    from ladder.record import TrainingRecord
    from ladder.run.cache import ResultCache
    from ladder.run.certificate import certify

    formatter = backend.formatter("chat")
    training = TrainingRecord(
        steps=12,
        epochs=1.0,
        wall_s=1.0,
        tokens_seen=1,
        answer_tokens=1,
        tokens_per_s=1.0,
        rss_start_mb=1.0,
        rss_peak_mb=1.0,
        train_examples=48,
        artifact="adapter",
        artifact_bytes=1,
        artifact_sha256="x",
        checkpoint_dir="x",
        template_sha256=template_fingerprint(formatter),
    )
    candidate = Candidate("lora", "lora", spec.prompt.instruction, spec.prompt.input_template, artifact=artifact)
    return certify(
        candidate,
        training,
        backend,
        formatter,
        spec,
        splits.dev,
        ResultCache(ROOT, enabled=False),
        reference=lambda: reference,
    )


def test_vllm_serving_is_certified_against_the_peft_reference_and_a_noop_adapter_fails(
    hf, vb, snips, trained_adapter, noop_adapter
):
    """The certificate through the in-process vllm backend: the trained adapter moves the served log-probabilities
    and matches transformers/PEFT within 0.05 nats; the same adapter with zeroed B matrices fails closed."""
    spec, splits = snips
    cert = _certify(vb, trained_adapter, spec, splits, hf)
    checks = {c.name: c for c in cert.checks}
    assert cert.passed and cert.backend == "vllm", cert
    assert checks["matches_reference"].passed and checks["matches_reference"].value <= 0.05
    noop = _certify(vb, noop_adapter, spec, splits, hf)
    assert noop.failure().name == "changes_outputs" and noop.failure().value < 1e-4


def test_an_openai_compatible_server_is_certified_too(hf, vllm_server, snips, trained_adapter):
    spec, splits = snips
    ob = create_backend("openai", MODEL, base_url=vllm_server)
    cert = _certify(ob, trained_adapter, spec, splits, hf)
    assert cert.passed and cert.backend == "openai", cert
