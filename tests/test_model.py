"""Integration tests on the real bundled SmolLM2-135M-Instruct (CPU, fp32), on small slices."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import ROOT

from ladder.backends.base import GenerateRequest, ScoreRequest
from ladder.backends.hf.transformers import TransformersBackend
from ladder.record import load_run
from ladder.report import write_report
from ladder.run.assess import assess
from ladder.spec import load_task

pytestmark = pytest.mark.model
SNIPS = ROOT / "tasks" / "snips-intent" / "task.yaml"


@pytest.fixture(scope="module")
def backend():
    return TransformersBackend.from_spec("smollm2-135m-instruct", batch_size=4)


def test_instruction_replaces_the_default_system_text(backend):
    f = backend.formatter("chat")
    text = f.prompt([{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}])
    assert text.startswith("<|im_start|>system\nBe terse.<|im_end|>") and "SmolLM" not in text
    assert f.completion([{"role": "user", "content": "hi"}], "get") == "get<|im_end|>"


def test_label_scoring_equals_one_full_forward_per_label(backend):
    f = backend.formatter("chat")
    system = {"role": "system", "content": "Label the intent: get_weather, play_music or get."}
    demo = [{"role": "user", "content": "Will it rain?"}, {"role": "assistant", "content": "get_weather"}]
    inputs = ["Play some jazz", "Is it cold in Oslo today?", "x"]
    labels = ["get_weather", "play_music", "get"]  # "get" is a prefix of "get_weather"
    convs = [[system, *demo, {"role": "user", "content": x}] for x in inputs]
    prompts = [f.prompt(c) for c in convs]
    choices = [f.completion(convs[0], label) for label in labels]
    prefix = f.prompt([system, *demo]).rsplit("<|im_start|>assistant", 1)[0]
    fast = backend.score_choices([ScoreRequest(p, choices, prefix=prefix) for p in prompts])
    model = backend.model
    for prompt, result in zip(prompts, fast):
        ids = backend._encode(prompt)
        assert result.prompt_tokens == len(ids)
        for choice, got, count in zip(choices, result.logprobs, result.token_counts):
            cont = backend._encode_continuation(choice)
            assert count == len(cont)
            with torch.inference_mode():
                logp = torch.log_softmax(model(torch.tensor([ids + cont])).logits[0].float(), -1)
            want = sum(logp[len(ids) - 1 + t, tok].item() for t, tok in enumerate(cont))
            assert got == pytest.approx(want, abs=2e-3)
    # token-id prompts are accepted too (what a remote scorer would send)
    by_ids = backend.score_choices([ScoreRequest(backend._encode(prompts[0]), choices)])
    assert by_ids[0].logprobs == pytest.approx(fast[0].logprobs, abs=2e-3)


def test_generation_stops_at_end_of_turn(backend):
    f = backend.formatter("chat")
    prompt = f.prompt([{"role": "user", "content": "What is the capital of France?"}])
    out = backend.generate([GenerateRequest(prompt, 24, stop=[f.end_of_turn])])[0]
    assert "Paris" in out.text and "<|im_end|>" not in out.text
    assert 1 <= out.completion_tokens <= 24 and out.prompt_tokens == len(backend._encode(prompt))


def test_snips_zero_and_few_shot_end_to_end(backend, tmp_path):
    task = load_task(SNIPS)
    labels = set(task.spec.output.labels)
    run, out = assess(task, backend=backend, rungs=["prompt", "fewshot"], limit=6, out_dir=tmp_path / "run")
    assert [r.name for r in run.rungs] == ["prompt", "fewshot"]
    for rung in run.rungs:
        assert len(rung.examples) == 12
        assert all(e.output in labels and set(e.label_logprobs) == labels for e in rung.examples)
        assert all(e.label_logprobs[e.output] == max(e.label_logprobs.values()) for e in rung.examples)
        assert rung.splits["test"].examples_per_s > 0 and not rung.splits["test"].cached
    assert run.rungs[1].splits["test"].prompt_tokens_per_call > run.rungs[0].splits["test"].prompt_tokens_per_call + 200
    assert run.model.weights_sha256 and run.model.tokenizer_sha256 and run.model.dtype == "float32"
    assert load_run(out) == run
    report = write_report(out).read_text()
    assert "| prompt |" in report and "| fewshot |" in report

    # Unchanged task, fresh backend: every split comes from the cache and the weights are never loaded.
    fresh = TransformersBackend.from_spec("smollm2-135m-instruct")
    again, _ = assess(task, backend=fresh, rungs=["prompt", "fewshot"], limit=6, out_dir=tmp_path / "again")
    assert all(s.cached for r in again.rungs for s in r.splits.values())
    assert fresh._model is None
    assert [e.output for r in again.rungs for e in r.examples] == [e.output for r in run.rungs for e in r.examples]


def test_free_generation_mode_on_real_model(backend, make_task, tmp_path):
    path = make_task({"generation": {"label_scoring": "generate", "max_new_tokens": 8}})
    run, _ = assess(load_task(path), backend=backend, rungs=["fewshot"], limit=3, out_dir=tmp_path / "g")
    examples = run.rungs[0].examples
    assert len(examples) == 6 and all(e.label_logprobs is None for e in examples)
    assert all(1 <= e.completion_tokens <= 8 and "<|im_end|>" not in e.output for e in examples)


def test_quiz_facts_rag_rung_end_to_end(backend, tmp_path):
    task = load_task(ROOT / "tasks" / "quiz-facts" / "task.yaml")
    run, _ = assess(task, backend=backend, rungs=["rag"], limit=3, out_dir=tmp_path / "rag")
    rag = run.rungs[0]
    assert rag.name == "rag" and len(rag.examples) == 6
    for example in rag.examples:
        assert len(example.retrieved) == 1 and example.passages == 1
        assert example.completion_tokens <= 24 and "<|im_end|>" not in example.output
    test = rag.splits["test"]
    assert set(test.retrieval) == {"recall@1", "mrr@1"} and test.selection_s > 0
    # passages (for the question and each of the 4 demonstrations) are in the prompt, within the budget
    assert 100 < test.prompt_tokens_per_call < 5 * (128 + 40) + 100


def test_prompts_longer_than_the_context_are_refused(backend, monkeypatch):
    from ladder.errors import LadderError

    monkeypatch.setattr(backend.hf, "max_context", 16)
    prompt = backend.formatter("chat").prompt([{"role": "user", "content": "word " * 20}])
    with pytest.raises(LadderError, match="exceeds the context"):
        backend.score_choices([ScoreRequest(prompt, ["a<|im_end|>"])])
    with pytest.raises(LadderError, match="exceeds the context"):
        backend.generate([GenerateRequest(prompt, 4)])


def test_json_generation_stops_when_the_object_closes(backend):
    f = backend.formatter("chat")
    prompt = f.prompt(
        [
            {"role": "system", "content": "You answer with JSON."},
            {
                "role": "user",
                "content": 'Repeat this JSON object exactly, then explain it in detail: {"city": "Paris", "zip": "75001"}',
            },
        ]
    )
    free = backend.generate([GenerateRequest(prompt, 48, stop=[f.end_of_turn])])[0]
    stopped = backend.generate([GenerateRequest(prompt, 48, stop=[f.end_of_turn], stop_at_json_end=True)])[0]
    assert stopped.text.endswith("}") and "{" in stopped.text
    assert stopped.completion_tokens <= free.completion_tokens
    assert free.text.startswith(stopped.text[: len(stopped.text) // 2])  # same greedy path, cut earlier


def test_json_generation_of_an_array_stops_at_its_closing_bracket(backend):
    """A top-level array of objects is one answer: the JSON early stop must let it run to its ``]`` (it
    used to cut every array after its first object), so here it decodes exactly what free decoding does."""
    f = backend.formatter("chat")
    prompt = f.prompt(
        [
            {"role": "system", "content": "List every measurement in the text as a JSON array of objects."},
            {"role": "user", "content": "It weighed 3 grams and held 4 litres."},
            {"role": "assistant", "content": '[{"value": 3, "unit": "gram"}, {"value": 4, "unit": "litre"}]'},
            {"role": "user", "content": "It ran 5 metres in 2 seconds."},
        ]
    )
    free = backend.generate([GenerateRequest(prompt, 48, stop=[f.end_of_turn])])[0]
    stopped = backend.generate([GenerateRequest(prompt, 48, stop=[f.end_of_turn], stop_at_json_end=True)])[0]
    assert free.text.startswith("[{") and free.text.count("{") >= 2  # the model does answer with an array
    assert stopped.text == free.text and stopped.text.endswith("]")


def test_generation_with_a_shared_prefix_equals_generation_without_it(backend):
    """The prefix's key/value cache is computed once and reused (prefix | left padding | prompt): every
    row must decode exactly as it does alone, without the shared cache."""
    f = backend.formatter("chat")
    system = {"role": "system", "content": "Answer with the city name only."}
    demo = [{"role": "user", "content": "Where is the Eiffel Tower?"}, {"role": "assistant", "content": "Paris"}]
    questions = [
        "Where is Big Ben?",
        "Where is the Colosseum, the ancient amphitheatre?",
        "Where is the Brandenburg Gate?",
    ]
    prompts = [f.prompt([system, *demo, {"role": "user", "content": q}]) for q in questions]
    prefix = f.prompt([system, *demo]).rsplit("<|im_start|>assistant", 1)[0]
    shared = backend.generate([GenerateRequest(p, 12, stop=[f.end_of_turn], prefix=prefix) for p in prompts])
    alone = [backend.generate([GenerateRequest(p, 12, stop=[f.end_of_turn])])[0] for p in prompts]
    assert len(backend._encode(prefix)) > 20  # the cache really covers the demonstration
    assert [g.text for g in shared] == [g.text for g in alone]
    assert [g.completion_tokens for g in shared] == [g.completion_tokens for g in alone]
    assert [g.prompt_tokens for g in shared] == [len(backend._encode(p)) for p in prompts]


@pytest.mark.parametrize("with_prefix,lookup", [(True, 4), (False, 4), (True, 0)])
def test_ladder_decoding_loop_equals_transformers_generate(backend, monkeypatch, with_prefix, lookup):
    """Greedy decoding in ladder's loop (shared prefix attended once, slot cache, finished rows refilled
    from the queue, buffers compacted at the end; prompt-lookup drafts or none) against transformers' generate on the
    same prompts: the same texts. Two slots for seven requests, so refills and compaction both happen."""
    from ladder.backends.hf import decode

    monkeypatch.setattr(backend, "lookup", lookup)
    monkeypatch.setattr(decode, "LOOKUP_MIN_NEW", 1)  # these answers are short: draft anyway, to check the texts

    f = backend.formatter("chat")
    system = {"role": "system", "content": "Answer briefly. When asked for JSON, answer with one JSON object."}
    demo = [
        {"role": "user", "content": "JSON with the city of the Eiffel Tower"},
        {"role": "assistant", "content": '{"city": "Paris"}'},
    ]
    questions = [
        "JSON with the city of Big Ben",
        "Where is the Colosseum?",
        "Name three colours.",
        "JSON with the country and city of the Brandenburg Gate",
        "What is 2 + 2?",
        "Write a haiku about rain.",
        "JSON with the year the Berlin Wall fell",
    ]
    prompts = [f.prompt([system, *demo, {"role": "user", "content": q}]) for q in questions]
    prefix = f.prompt([system, *demo]).rsplit("<|im_start|>assistant", 1)[0] if with_prefix else ""
    requests = [
        GenerateRequest(p, 8 + 5 * (i % 4), stop=[f.end_of_turn], prefix=prefix, stop_at_json_end=i % 2 == 0)
        for i, p in enumerate(prompts)
    ]
    monkeypatch.setattr(decode, "MAX_SLOTS", 2)
    monkeypatch.setattr(backend, "batch_size", 2)
    backend.decoding = "ladder"
    ours = backend.generate(requests)
    backend.decoding = "generate"
    try:
        stock = backend.generate(requests)
    finally:
        backend.decoding = "ladder"
    assert decode.supported(backend.model)
    assert [g.text for g in ours] == [g.text for g in stock]
    assert all(0 < g.completion_tokens <= r.max_new_tokens for g, r in zip(ours, requests))
    assert [g.prompt_tokens for g in ours] == [g.prompt_tokens for g in stock]
    assert any(g.completion_tokens == r.max_new_tokens for g, r in zip(ours, requests))  # some ran to the limit


@pytest.mark.parametrize("task,rung", [("us-address", "fewshot"), ("quiz-facts", "prompt")])
def test_prompt_lookup_drafts_keep_the_greedy_texts_on_the_generation_tasks(backend, monkeypatch, task, rung):
    """The tasks' own prompts through ladder's loop with prompt-lookup drafts and without: the same texts and token
    counts, drafts kept (4 slots for 12 prompts: refills, compaction, and rows with and without
    drafts in one step)."""
    import sys

    from ladder.backends.hf import decode

    sys.path.insert(0, str(ROOT / "bench"))
    from ceiling import task_prompts

    spec, examples, candidate = task_prompts(ROOT / "tasks" / task / "task.yaml", rung, 12)
    f = backend.formatter(spec.prompt.format)
    prompts = [f.prompt(candidate.messages(e.input)) for e in examples]
    prefix = os.path.commonprefix(prompts)
    json_end = spec.output.kind == "json"
    requests = [
        GenerateRequest(p, spec.generation.max_new_tokens, [f.end_of_turn], prefix=prefix, stop_at_json_end=json_end)
        for p in prompts
    ]
    monkeypatch.setattr(decode, "MAX_SLOTS", 4)
    monkeypatch.setattr(backend, "batch_size", 4)
    monkeypatch.setattr(decode, "LOOKUP_MIN_NEW", 1)  # quiz-facts' short answers would not draft (not faster)
    monkeypatch.setattr(decode, "LOOKUP_TRIAL", 10**9)  # nor would drafts that are rarely kept: draft throughout
    runs = {}
    for lookup in (0, 4):
        monkeypatch.setattr(backend, "lookup", lookup)
        monkeypatch.setattr(backend, "lookup_counts", {"drafted": 0, "accepted": 0, "passes": 0})
        runs[lookup] = (backend.generate(requests), dict(backend.lookup_counts))
    (plain, off), (drafted, on) = runs[0], runs[4]
    assert [g.text for g in drafted] == [g.text for g in plain]
    assert [g.completion_tokens for g in drafted] == [g.completion_tokens for g in plain]
    assert off["drafted"] == 0 and on["accepted"] > 0  # (whether it is faster is bench/lookup.py's question)


def test_grouped_decode_attention_equals_transformers_sdpa(backend):
    """ladder_sdpa (grouped-query decoding without copying the cache) against transformers' sdpa, on a
    padded batch: same logits at prompt and decode steps, same greedy tokens."""
    from transformers import AutoModelForCausalLM

    stock = AutoModelForCausalLM.from_pretrained(
        backend.ref.path, dtype=torch.float32, attn_implementation="sdpa"
    ).eval()
    ours = backend.model
    assert (
        ours.config._attn_implementation == "ladder_sdpa"
        and ours.config.num_key_value_heads < ours.config.num_attention_heads
    )
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8], [0, 0, 0, 9, 10, 11, 12, 13]]) + 100
    mask = torch.tensor([[1] * 8, [0, 0, 0, 1, 1, 1, 1, 1]])
    with torch.inference_mode():
        kwargs = dict(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=10,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=0,
        )
        a, b = stock.generate(**kwargs), ours.generate(**kwargs)
    assert torch.equal(a.sequences, b.sequences)
    for la, lb in zip(a.logits, b.logits):
        assert torch.allclose(la, lb, atol=1e-4)


def test_the_caches_follow_the_weights_not_where_their_files_are(tmp_path, monkeypatch):
    """The same materialized model reached through another folder (a symlink here; an absolute vs a
    relative $LADDER_HOME, another checkout in practice) hits the result cache: keys hold the weights'
    hashes, never the path (found when a re-run of the shipped tasks recomputed everything)."""
    import os
    from pathlib import Path

    first = assess(load_task(SNIPS), rungs=["prompt"], limit=3, out_dir=tmp_path / "a")[0]
    link = tmp_path / "models-elsewhere"
    link.symlink_to(Path(os.environ["LADDER_MODEL_DIR"]).resolve())
    monkeypatch.setenv("LADDER_MODEL_DIR", str(link))
    second = assess(load_task(SNIPS), rungs=["prompt"], limit=3, out_dir=tmp_path / "b")[0]
    assert first.model.path != second.model.path and first.model.weights_sha256 == second.model.weights_sha256
    assert all(s.cached for s in second.rungs[0].splits.values())
