"""The lora and full rungs on the real bundled model: a few steps on a tiny slice of SNIPS."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from conftest import ROOT

from ladder.backends.base import ScoreRequest
from ladder.backends.hf.transformers import TransformersBackend
from ladder.data.splits import load_task_data
from ladder.run.context import build_context
from ladder.rungs.finetune import finetune
from ladder.spec import FullRungSpec, LoraRungSpec, TrainSpec, load_task

pytestmark = pytest.mark.model
SNIPS = ROOT / "tasks" / "snips-intent" / "task.yaml"


@pytest.fixture(scope="module")
def backend():
    return TransformersBackend.from_spec("smollm2-135m-instruct", batch_size=4)


@pytest.fixture
def ctx(backend, tmp_path):
    task = load_task(SNIPS)
    data = load_task_data(task)
    return build_context(task, data.splits.train[:24], data.splits.dev[:8], backend, work_dir=tmp_path / "run")


def _lora(**train) -> LoraRungSpec:
    settings = dict(max_steps=6, batch_size=4, eval_every=3, checkpoint_every=2, max_seq_len=96)
    settings.update(train)
    return LoraRungSpec(type="lora", dropout=0.0, train=TrainSpec(**settings))


def _label_scores(backend, ctx, n=4):
    f = backend.formatter("chat")
    from ladder.rungs.base import Candidate

    c = Candidate("x", "prompt", ctx.spec.prompt.instruction, ctx.spec.prompt.input_template)
    convs = [c.messages(ex.input) for ex in ctx.dev[:n]]
    choices = [f.completion(convs[0], label) for label in ctx.spec.output.labels]
    return [s.logprobs for s in backend.score_choices([ScoreRequest(f.prompt(m), choices) for m in convs])]


def test_lora_trains_saves_and_loads_back(backend, ctx):
    candidate = finetune(_lora(), ctx)
    t = candidate.training
    losses = [p.loss for p in t.curve]
    assert t.steps == 6 and len(losses) == 6
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2  # the loss decreases
    assert t.tokens_seen > t.answer_tokens > 0 and t.tokens_per_s > 0
    assert t.rss_peak_mb >= t.rss_start_mb > 0 and [e.step for e in t.dev_evals] == [3, 6]
    adapter = ctx.work_dir / "lora" / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file() and (adapter / "adapter_config.json").is_file()
    served = backend.serving(candidate.artifact)
    assert t.artifact_bytes > 0 and served.identity().weights_sha256 == t.artifact_sha256
    assert candidate.artifact.path == adapter and candidate.artifact.rank == 8 and not t.reused

    base = _label_scores(backend, ctx)
    tuned = _label_scores(served, ctx)
    assert max(abs(a - b) for ra, rb in zip(base, tuned) for a, b in zip(ra, rb)) > 0.5  # predictions changed

    from peft import PeftModel

    reloaded = PeftModel.from_pretrained(copy.deepcopy(backend.model), str(adapter)).eval()
    ids = torch.tensor([backend._encode("<|im_start|>user\nPlay some jazz<|im_end|>\n<|im_start|>assistant\n")])
    with torch.inference_mode():
        unmerged = reloaded(ids).logits
        merged = served.model(ids).logits
    assert torch.allclose(unmerged, merged, atol=1e-3)  # the merged model used for evaluation is the adapter


def _interrupt_after(steps: int):
    def on_step(*args):
        state = args[-1]
        if state.step >= steps:
            raise KeyboardInterrupt(f"stopped after step {state.step} (test)")

    return on_step


def test_interrupted_training_resumes_with_the_same_data_order(backend, ctx, tmp_path, monkeypatch):
    monkeypatch.setenv("LADDER_HOME", str(tmp_path / "home-a"))
    with pytest.raises(KeyboardInterrupt):
        finetune(_lora(), replace(ctx, on_train_step=_interrupt_after(2)))
    resumed = finetune(_lora(), ctx).training
    assert resumed.resumed_from_step == 2 and resumed.steps == 6
    monkeypatch.setenv("LADDER_HOME", str(tmp_path / "home-b"))
    straight = finetune(_lora(), ctx).training
    assert straight.resumed_from_step is None
    assert [p.loss for p in resumed.curve] == pytest.approx([p.loss for p in straight.curve], abs=1e-3)
    # a finished training is reused, not repeated: no weights are loaded at all
    from ladder.backends.hf.model import HFModel

    def no_weights(*args, **kwargs):
        raise AssertionError("a finished training loaded weights")

    monkeypatch.setattr(HFModel, "load", no_weights)
    reused = finetune(_lora(), ctx)
    again = reused.training
    assert again.reused and again.curve == straight.curve
    assert again.artifact_sha256 == straight.artifact_sha256 == resumed.artifact_sha256
    assert (ctx.work_dir / "lora" / "adapter" / "adapter_model.safetensors").is_file()


def test_full_finetune_few_steps(backend, ctx):
    rung = FullRungSpec(
        type="full", train=TrainSpec(max_steps=3, batch_size=4, eval_every=3, learning_rate=5e-5, max_seq_len=96)
    )
    candidate = finetune(rung, ctx)
    losses = [p.loss for p in candidate.training.curve]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert (ctx.work_dir / "full" / "model" / "model.safetensors").is_file()
    assert candidate.training.trainable_params > 100_000_000
    served = backend.serving(candidate.artifact)
    assert served.model is not backend.model  # the base model is untouched
    assert (ctx.work_dir / "full" / "model" / "tokenizer.json").is_file()  # a folder any backend can load
    assert served.identity().weights_sha256 == candidate.training.artifact_sha256 != backend.identity().weights_sha256


@pytest.mark.skipif(torch.cuda.is_available(), reason="on CUDA a 4-bit base can train (found on a lent GPU)")
def test_qlora_needs_cuda_and_says_so(ctx):
    from ladder.errors import LadderError

    rung = LoraRungSpec(type="lora", quantize="4bit", train=TrainSpec(max_steps=1, batch_size=4))
    with pytest.raises(LadderError, match="needs a CUDA GPU"):
        finetune(rung, ctx)


def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    from ladder.rungs.train import TrainExample

    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=32,
        )
    )
    return model, [TrainExample([1 + i % 50, 2 + i % 40, 3, 4, 5], n_prompt=2) for i in range(32)]


def test_early_stopping_on_a_dev_metric_keeps_the_best_weights(tmp_path):
    """The loop's own logic, on a tiny random Llama: the metric (scripted) peaks at the 2nd evaluation, so
    with patience 2 training stops at the 4th and the weights are those of the 2nd."""
    from ladder.rungs.train import TrainConfig, train_loop

    model, data = _tiny_llama()
    scores, snapshots = iter([0.2, 0.6, 0.5, 0.4, 0.9]), []

    def metric(m):
        snapshots.append(m.model.embed_tokens.weight.detach().clone())
        return next(scores)

    settings = TrainSpec(
        max_steps=10,
        batch_size=4,
        eval_every=2,
        patience=2,
        early_stopping="dev_metric",
        learning_rate=1e-2,
        checkpoint_every=100,
        max_seq_len=16,
    )
    outcome = train_loop(model, data, data[:4], TrainConfig(settings, 0, "t", tmp_path, 0, dev_metric=metric))
    assert [e.dev_metric for e in outcome.dev_evals] == [0.2, 0.6, 0.5, 0.4]
    assert all(e.dev_loss is not None for e in outcome.dev_evals)
    assert outcome.stopped_early and outcome.steps == 8 and outcome.best_step == 4
    assert torch.equal(model.model.embed_tokens.weight, snapshots[1])  # the best evaluation's weights
    with pytest.raises(ValueError, match="dev_metric callback"):
        train_loop(model, data, data[:4], TrainConfig(settings, 0, "t", tmp_path / "b", 0))


def test_lora_with_dev_metric_early_stopping_on_the_real_model(backend, ctx):
    candidate = finetune(_lora(max_steps=4, eval_every=2, early_stopping="dev_metric", metric_examples=4), ctx)
    t = candidate.training
    assert [e.step for e in t.dev_evals] == [2, 4]
    assert all(0.0 <= e.dev_metric <= 1.0 and e.dev_loss > 0 for e in t.dev_evals)
    # the recorded metric of the kept weights is what the evaluation measures with them
    from ladder.run.cache import ResultCache
    from ladder.run.evaluate import run_eval
    from ladder.rungs.base import Candidate

    kept = next(e.dev_metric for e in t.dev_evals if e.step == t.best_step)
    zero_shot = Candidate("x", "prompt", ctx.spec.prompt.instruction, ctx.spec.prompt.input_template)
    outputs = run_eval(
        zero_shot,
        ctx.dev[:4],
        backend.serving(candidate.artifact),
        backend.formatter("chat"),
        ctx.spec,
        ResultCache(ctx.work_dir, enabled=False),
    ).outputs
    assert sum(o.output == ex.target for o, ex in zip(outputs, ctx.dev[:4])) / 4 == pytest.approx(kept)


def test_a_checkpoint_from_before_dev_metric_resumes(tmp_path):
    """Checkpoints written before dev_metric existed keep their best as `best_loss`: they still resume."""
    import json

    from ladder.rungs.train import TrainConfig, train_loop

    settings = TrainSpec(max_steps=4, batch_size=4, eval_every=2, checkpoint_every=2, max_seq_len=16)
    model, data = _tiny_llama()
    with pytest.raises(KeyboardInterrupt):
        train_loop(model, data, data[:4], TrainConfig(settings, 0, "t", tmp_path, 0, on_step=_interrupt_after(2)))
    progress_file = tmp_path / "checkpoint" / "progress.json"
    progress = json.loads(progress_file.read_text())
    progress["best_loss"] = -progress.pop("best_score")
    progress_file.write_text(json.dumps(progress))
    model, data = _tiny_llama()
    outcome = train_loop(model, data, data[:4], TrainConfig(settings, 0, "t", tmp_path, 0))
    assert outcome.resumed_from_step == 2 and outcome.steps == 4 and len(outcome.dev_evals) == 2


def test_token_passes_split_a_batch_by_its_padded_size():
    from ladder.rungs.train import SUPERVISED, TrainExample, token_passes

    batch = [TrainExample([1] * n, n_prompt=1) for n in (3, 4, 4, 9, 2)]
    passes = token_passes(batch, budget=10, length=SUPERVISED.length)
    assert [[len(e.ids) for e in p] for p in passes] == [[3, 4], [4], [9], [2]]
    assert all(len(p) * max(len(e.ids) for e in p) <= 10 or len(p) == 1 for p in passes)
    assert [len(e.ids) for p in token_passes(batch, budget=10**6, length=SUPERVISED.length) for e in p] == [
        3,
        4,
        4,
        9,
        2,
    ]


def test_a_batch_in_several_passes_makes_the_same_update_as_in_one(tmp_path, monkeypatch):
    """The activations kept for backward scale with the tokens of a pass; the update must not: every
    pass's summed loss is divided by the whole step's answer tokens before its backward pass."""
    from ladder.rungs import train
    from ladder.rungs.train import device as train_device

    settings = TrainSpec(
        max_steps=3, batch_size=8, eval_every=100, checkpoint_every=100, learning_rate=1e-2, max_seq_len=16
    )
    weights = {}
    for name, memory in (("one", 1 << 40), ("several", 2048 * 10)):  # 2048 bytes a token: 10 tokens a pass
        monkeypatch.setattr(train_device, "PASS_MEMORY", memory)
        model, data = _tiny_llama()
        assert (train_device.tokens_per_pass(model, train_device.pass_memory("cpu")) >= 40) == (name == "one")
        outcome = train.train_loop(model, data, data[:4], train.TrainConfig(settings, 0, "t", tmp_path / name, 0))
        weights[name] = (outcome.curve, [p.detach().clone() for p in model.parameters()])
        assert outcome.steps == 3 and outcome.tokens_seen == 3 * 8 * 5
    (curve_one, one), (curve_several, several) = weights["one"], weights["several"]
    assert [c.loss for c in curve_one] == pytest.approx([c.loss for c in curve_several], abs=1e-5)
    # AdamW's first steps move each weight by about lr whatever its gradient's size, so a gradient within
    # rounding of zero may move either way: compare against the step size, not against rounding
    worst = max(float((a - b).abs().max()) for a, b in zip(one, several))
    assert worst < 1e-3, worst


def test_a_shared_prefix_goes_through_the_model_once_with_the_same_loss_and_gradients(monkeypatch):
    """Rows beginning with the same tokens (an instruction) compute them once: the loss and every LoRA
    gradient equal those of the whole rows (dropout 0: the arithmetic is the same), the prefix stops
    before the first answer token's predictor, and different rows or a short prefix are not shared."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from ladder.rungs import train
    from ladder.rungs.train import plan as train_plan

    torch.manual_seed(0)
    base = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
        )
    )
    model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear", init_lora_weights=False)
    )
    instruction = [(7 * i) % 60 + 1 for i in range(20)]
    rows = [
        train.TrainExample(instruction + own + answer, len(instruction) + len(own))
        for own, answer in (([5, 6], [9, 10, 11]), ([8], [12]), ([3, 4, 5, 6], [13, 14]))
    ]
    ids, mask, labels = train.collate(rows, 0, "cpu")
    assert train.shared_prefix_length(ids, labels) == len(instruction)  # row 2's answer starts at 21: 20 stays shared
    results = {}
    for name, minimum in (("shared", 16), ("whole", 10**9)):
        monkeypatch.setattr(train_plan, "SHARED_PREFIX_MIN", minimum)
        model.zero_grad()
        loss, n = train.answer_loss(model, ids, mask, labels)
        loss.backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}
        results[name] = (float(loss), n, grads)
    (loss_s, n_s, g_s), (loss_w, n_w, g_w) = results["shared"], results["whole"]
    assert n_s == n_w == 6 and loss_s == pytest.approx(loss_w, rel=1e-5)
    assert len(g_s) == len(g_w) > 0
    for key in g_w:
        assert torch.allclose(g_s[key], g_w[key], rtol=1e-4, atol=1e-6), key
    # nothing in common, or too little: one pass over whole rows
    monkeypatch.setattr(train_plan, "SHARED_PREFIX_MIN", 16)
    short = train.collate([train.TrainExample([1] * 10 + [2, 3], 10), train.TrainExample([1] * 10 + [4], 10)], 0, "cpu")
    assert train.shared_prefix_length(short[0], short[2]) == 0
    alone = train.collate(rows[:1], 0, "cpu")
    assert train.shared_prefix_length(alone[0], alone[2]) == 0
    # only a CPU shares: on a GPU a small model's step is bound by kernel launches, and whole rows are faster
    assert train.shared_prefix_length(ids.to("meta"), labels.to("meta")) == 0


def test_passes_are_planned_with_the_prefix_their_rows_share():
    """A batch whose rows share a long instruction fits more rows a pass: the prefix counts once."""
    from ladder.rungs.train import (
        SUPERVISED,
        TrainExample,
        planned_prefix,
        token_passes,
    )

    instruction = list(range(1, 41))
    batch = [TrainExample(instruction + [50 + i, 60 + i, 70], n_prompt=42) for i in range(6)]
    shared = planned_prefix(SUPERVISED, batch, torch.device("cpu"))
    assert planned_prefix(SUPERVISED, batch, torch.device("cuda")) == 0  # a GPU takes whole rows
    assert shared == 40  # the common 40 tokens; the 42nd (last prompt token) differs anyway
    whole = token_passes(batch, 100, SUPERVISED.length)
    assert [len(p) for p in whole] == [2, 2, 2]  # 43 tokens a row: two rows 86, three 129 > 100
    planned = token_passes(batch, 100, lambda e: SUPERVISED.length(e, shared), shared)
    assert [len(p) for p in planned] == [6]  # 40 once + 6 x 3 = 58 <= 100
    assert planned_prefix(SUPERVISED, [TrainExample([1, 2, 3, 4], 2), TrainExample([1, 2, 5], 2)], "cpu") == 0


def test_activation_checkpointing_recomputes_each_block_and_trains_the_same(backend, ctx, tmp_path, monkeypatch):
    """`activation_checkpointing: true` on the LoRA rung of the bundled model: every transformer block runs again
    in the backward pass (its activations were not kept), and the curve is the one trained without it (rows no
    longer share the instruction's prefix, so sums differ in their last digits)."""
    from ladder.backends.hf import forward

    calls = {"on": 0}
    enable = forward.checkpoint_activations

    def counted(model):
        enable(model)
        # a pre-hook: the recomputation stops once it has what backward needs, before any post-forward hook
        forward.decoder_blocks(model)[0].register_forward_pre_hook(lambda *_: calls.__setitem__("on", calls["on"] + 1))

    monkeypatch.setattr(forward, "checkpoint_activations", counted)
    settings = {"max_steps": 2, "batch_size": 4, "eval_every": 100, "max_seq_len": 96}
    monkeypatch.setenv("LADDER_HOME", str(tmp_path / "plain"))
    plain = finetune(LoraRungSpec(type="lora", dropout=0.0, train=TrainSpec(**settings)), ctx).training
    monkeypatch.setenv("LADDER_HOME", str(tmp_path / "checkpointed"))
    rung = LoraRungSpec(type="lora", dropout=0.0, train=TrainSpec(**settings, activation_checkpointing=True))
    checkpointed = finetune(rung, replace(ctx, work_dir=tmp_path / "run2")).training
    # 2 steps of one pass each, forward + recomputation, then the final dev evaluation's batches (forward only)
    dev_batches = -(-len(ctx.dev) // 4)
    assert calls["on"] == 2 * 2 + dev_batches
    assert [p.loss for p in checkpointed.curve] == pytest.approx([p.loss for p in plain.curve], abs=1e-3)
    assert checkpointed.dev_evals[-1].dev_loss == pytest.approx(plain.dev_evals[-1].dev_loss, abs=1e-3)
