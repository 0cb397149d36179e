"""The policy on scripted outcomes: per-example dev scores go through the real comparison, cost and
decision code (no model), so each test states an outcome and checks what the ladder concludes."""

from __future__ import annotations

import numpy as np
import pytest

from ladder.decide.cost import rung_cost, with_break_even
from ladder.decide.policy import decide, next_rung_after, status_of
from ladder.decide.recommend import recommend
from ladder.metrics import METRICS, Scorer
from ladder.record import (
    AdapterCertificate,
    CertificateCheck,
    ExampleRecord,
    RungResult,
    SplitResult,
    TrainingRecord,
)
from ladder.scoring.compare import compare_with_earlier, split_scores
from ladder.scoring.stats import Estimate, estimate, score_sd, wilson
from ladder.spec import CostSpec, PolicySpec

POLICY = PolicySpec()


def _est(mean, low, high, n=100):
    return Estimate(mean=mean, low=low, high=high, n=n, method="wilson")


NO_PRICES = CostSpec()


def _rung(
    name,
    kind,
    dev_scores,
    earlier,
    policy=POLICY,
    threshold=0.9,
    wall_s=10.0,
    train_s=None,
    prompt_tokens=100.0,
    cost=NO_PRICES,
):
    """A measured rung from its per-example dev scores (test = the same scores), through the real code."""
    examples = [
        ExampleRecord(
            id=f"e{i}",
            split=split,
            prompt_hash="h",
            prompt_tokens=int(prompt_tokens),
            completion_tokens=2,
            output="x",
            target="x",
            scores={"accuracy": float(s)},
        )
        for split in ("dev", "test")
        for i, s in enumerate(dev_scores)
    ]
    n = len(dev_scores)
    splits = {
        split: SplitResult(
            n=n,
            metrics={"accuracy": estimate(list(map(float, dev_scores)), True)},
            wall_s=wall_s,
            latency_s_per_example=wall_s / n,
            examples_per_s=n / wall_s,
            prompt_tokens_per_call=prompt_tokens,
            completion_tokens_per_call=2.0,
            cached=False,
            cache_key="k",
        )
        for split in ("dev", "test")
    }
    splits = compare_with_earlier(
        examples, splits, earlier, {"accuracy": Scorer("accuracy", METRICS.get("accuracy"))}, seed=0
    )
    training = None
    if train_s is not None:
        training = TrainingRecord(
            steps=10,
            epochs=1.0,
            wall_s=train_s,
            tokens_seen=1000,
            answer_tokens=100,
            tokens_per_s=1000 / train_s,
            rss_start_mb=500.0,
            rss_peak_mb=900.0,
            train_examples=40,
            artifact="run/lora/adapter",
            artifact_bytes=2**20,
            artifact_sha256="ab" * 32,
            checkpoint_dir="store/x",
        )
    rung_costs = with_break_even(rung_cost(splits["dev"], training, 0.5, cost), earlier)
    sd = score_sd(list(split_scores(examples, "dev", "accuracy").values()))
    decision = decide(splits["dev"].metrics["accuracy"], sd, "accuracy", threshold, policy)
    certificate = None
    if training is not None:  # what a served artifact shows (tests/test_certificate.py measures real ones)
        certificate = AdapterCertificate(
            backend="transformers",
            probe=8,
            checks=[
                CertificateCheck(name="changes_outputs", passed=True, value=0.2, tolerance=1e-4, detail="moves them"),
                CertificateCheck(name="same_template", passed=True, detail="same"),
            ],
        )
    return RungResult(
        name=name,
        type=kind,
        settings={},
        demo_ids=[],
        build_s=0.5,
        splits=splits,
        decision=decision,
        examples=examples,
        training=training,
        cost=rung_costs,
        certificate=certificate,
    )


def _scores(n_right, n):
    return [1] * n_right + [0] * (n - n_right)


def test_status_from_the_interval():
    assert status_of(_est(0.95, 0.91, 0.98), 0.9, POLICY) == "meets"
    assert status_of(_est(0.92, 0.85, 0.96), 0.9, POLICY) == "inconclusive"  # mean above, interval below
    assert status_of(_est(0.92, 0.85, 0.96), 0.9, PolicySpec(confidence="point")) == "meets"
    assert status_of(_est(0.5, 0.4, 0.6), 0.9, POLICY) == "gap"
    assert status_of(_est(0.85, 0.77, 0.91), 0.9, POLICY) == "inconclusive"


def test_gap_climbs_meets_stops():
    gap = decide(_est(0.5, 0.4, 0.6), 0.5, "accuracy", 0.9, POLICY)
    assert (gap.status, gap.action) == ("gap", "climb") and "the gap is measured" in gap.reason
    meets = decide(_est(0.95, 0.91, 0.98), 0.2, "accuracy", 0.9, POLICY)
    assert (meets.status, meets.action, meets.meets_target) == ("meets", "stop", True)


@pytest.mark.parametrize("choice,action", [("climb", "climb"), ("stop", "stop"), ("report", "stop")])
def test_inconclusive_follows_the_policy_and_reports_the_n_needed(choice, action):
    policy = PolicySpec(inconclusive=choice)
    d = decide(_est(0.85, 0.77, 0.91), 0.357, "accuracy", 0.9, policy)
    assert d.status == "inconclusive" and d.action == action
    # yes/no scores: the n at which the Wilson interval (the one that decides) is wholly below 0.9 with 80% power
    # if the rate is 0.85; checked here by simulating binomial draws through the real Wilson interval
    assert d.n_needed == 313
    rng = np.random.default_rng(0)
    decided = [wilson(k, 313)[1] < 0.9 for k in rng.binomial(313, 0.85, size=4000)]
    assert 0.78 < np.mean(decided) < 0.86
    assert np.mean([wilson(k, 250)[1] < 0.9 for k in rng.binomial(250, 0.85, size=4000)]) < 0.78
    assert ("about 313 dev examples would resolve it" in d.reason) == (choice == "report")
    # other scores: the normal interval of the mean, (1.96 + 0.8416)^2 * 0.357^2 / 0.05^2 = 400.2 -> 401
    boot = decide(Estimate(mean=0.85, low=0.77, high=0.91, n=100, method="bootstrap"), 0.357, "f1", 0.9, policy)
    assert boot.n_needed == 401


def test_the_n_that_decides_is_never_below_the_n_measured():
    """1/10 against 0.40: 0.100 [0.018, 0.404] was once told 'about 8 dev examples would resolve it'."""
    d = decide(estimate(_scores(1, 10), True), 0.3, "accuracy", 0.4, POLICY)
    assert d.status == "inconclusive" and d.n_needed is not None and d.n_needed > 10
    assert "too small" not in d.reason  # one number, not two that contradict each other


def test_a_dev_split_that_cannot_confirm_a_rung_says_so_and_does_not_send_it_up_the_ladder():
    """lora at 30/40 = 0.750 [0.598, 0.858] against 0.60: needs ~76 dev examples; the task has 40."""
    lora = estimate(_scores(30, 40), True)
    d = decide(lora, 0.43, "accuracy", 0.6, POLICY, available=40, kind="lora", next_rung=("preference", "preference"))
    assert (d.status, d.action) == ("inconclusive", "stop") and d.n_needed > 40
    assert (
        "the dev split (40 examples) cannot confirm it" in d.reason and f"move {d.n_needed - 40} from train" in d.reason
    )
    result = _rung("lora", "lora", _scores(30, 40), [], threshold=0.6)
    result = result.model_copy(update={"decision": d})
    rec = recommend([result], "accuracy", 0.6, POLICY, ["preference"])
    assert rec.next_rung is None and "next rung to try" not in rec.summary
    assert "cannot confirm it" in rec.summary and "before trying a costlier rung" in rec.summary


def test_an_inconclusive_rung_climbs_when_the_task_cannot_resolve_it_or_the_next_rung_is_cheaper_per_call():
    # above the target (0.117 vs 0.10 at n=60 needs thousands) and the next rung serves the zero-shot prompt
    fewshot = estimate(_scores(7, 60), True)
    d = decide(fewshot, 0.32, "accuracy", 0.10, POLICY, available=300, kind="fewshot", next_rung=("lora", "lora"))
    assert d.status == "inconclusive" and d.action == "climb" and d.n_needed > 300
    assert "lora serves the zero-shot prompt, cheaper per call" in d.reason
    # below the target and more than the task has: the gap is likely, climb
    below = decide(
        estimate(_scores(8, 20), True),
        0.49,
        "accuracy",
        0.5,
        POLICY,
        available=20,
        kind="prompt",
        next_rung=("fewshot", "fewshot"),
    )
    assert below.action == "climb" and "more than the task's 20" in below.reason
    # resolvable within the task's dev split: stop and say how many (a --limit run is told to drop it)
    resolvable = decide(
        estimate(_scores(17, 20), True),
        0.36,
        "accuracy",
        0.9,
        POLICY,
        available=1000,
        kind="prompt",
        next_rung=("fewshot", "fewshot"),
    )
    assert resolvable.action == "stop" and "`ladder resolve RUN` walks the rest" in resolvable.reason


def test_a_dev_split_too_small_is_said_plainly():
    tiny = estimate([1, 1, 1, 1, 0, 1, 1, 1, 1, 1], binary=True)  # 9/10: 0.900 [0.596, 0.982]
    d = decide(tiny, 0.3, "accuracy", 0.9, POLICY)
    assert d.status == "inconclusive" and "dev n=10 is too small to decide: its 95% interval spans 0.39" in d.reason
    # a measured gap decided something, however small the split
    assert (
        "too small" not in decide(estimate([1, 0, 1, 0, 0, 1, 0, 0, 0, 1], True), 0.5, "accuracy", 0.9, POLICY).reason
    )
    needed = int(d.reason.split("about ")[-1].split(" dev examples would narrow")[0])
    assert needed == pytest.approx(10 * (tiny.half_width / 0.1) ** 2, abs=1)


def test_significant_improvement_makes_the_costlier_rung_best():
    prompt = _rung("prompt", "prompt", _scores(30, 100), [])
    fewshot = _rung("fewshot", "fewshot", _scores(60, 100), [prompt])
    rec = recommend([prompt, fewshot], "accuracy", 0.9, POLICY, [])
    assert not rec.met and rec.best_rung == "fewshot" and rec.next_rung == "rag"
    assert rec.holm_p["fewshot vs prompt"] < 0.001
    assert any(r.startswith("prompt vs fewshot: -0.300") and ", significant (Holm p < 0.001)" in r for r in rec.reasons)


def test_not_significant_improvement_keeps_the_cheaper_rung():
    # fewshot wins 3 and loses 1 of 100 over prompt: +0.02, McNemar p = 0.625
    base = _scores(50, 100)
    better = list(base)
    better[50], better[51], better[52], better[0] = 1, 1, 1, 0
    prompt = _rung("prompt", "prompt", base, [])
    fewshot = _rung("fewshot", "fewshot", better, [prompt])
    rec = recommend([prompt, fewshot], "accuracy", 0.9, POLICY, [])
    assert rec.best_rung == "prompt"
    assert any(r.startswith("fewshot vs prompt: +0.020") and "not significant" in r for r in rec.reasons)


def test_cheaper_rung_within_the_margin_is_recommended():
    policy = PolicySpec(non_inferiority_margin=0.05)
    base = _scores(190, 200)  # 0.95 [0.91, 0.97]
    lora_scores = list(base)
    lora_scores[190] = 1  # +0.005
    fewshot = _rung("fewshot", "fewshot", base, [], policy=policy)
    lora = _rung("lora", "lora", lora_scores, [fewshot], policy=policy, train_s=2400, prompt_tokens=20)
    assert fewshot.decision.status == "meets" and lora.decision.status == "meets"
    rec = recommend([fewshot, lora], "accuracy", 0.9, policy, [])
    assert rec.met and rec.rung == "fewshot" and rec.best_rung == "lora"
    assert any(
        "lora vs fewshot: +0.005" in r and "not significant" in r and "40.0 min more adaptation" in r
        for r in rec.reasons
    )


def test_among_rungs_that_meet_the_target_cost_decides_unless_quality_is_asked_for_and_shown():
    fewshot = _rung("fewshot", "fewshot", _scores(186, 200), [], threshold=0.85)  # 0.93
    lora = _rung("lora", "lora", _scores(200, 200), [fewshot], threshold=0.85, train_s=600)  # 1.00, Holm p < 0.001
    rec = recommend([fewshot, lora], "accuracy", 0.85, POLICY, [])
    assert rec.met and rec.rung == "fewshot" and rec.best_rung == "lora"
    assert rec.summary.endswith("policy.prefer: cost, the cheapest rung that meets the target")
    assert any("lora is significantly better than fewshot on dev but costlier" in r for r in rec.reasons)
    quality = recommend([fewshot, lora], "accuracy", 0.85, PolicySpec(prefer="quality"), [])
    assert quality.rung == "lora" and "policy.prefer: quality, significantly better than fewshot" in quality.summary


def test_a_cheaper_rung_is_not_passed_over_for_lack_of_power():
    """A formatting task: distill 0.967 and lora 1.000 both meet 0.80 by their whole intervals, lora not
    significantly better (5 wins, 0 losses: McNemar p = 0.062) and costlier. The non-inferiority check of distill
    fails for lack of power; that must not hand the choice to lora, whatever policy.prefer says."""
    scores = _scores(145, 150)
    distill = _rung("distill", "distill", scores, [], threshold=0.8, train_s=300, prompt_tokens=67)
    lora = _rung("lora", "lora", _scores(150, 150), [distill], threshold=0.8, train_s=600, prompt_tokens=67)
    assert distill.decision.status == lora.decision.status == "meets"
    for policy in (POLICY, PolicySpec(prefer="quality")):
        rec = recommend([distill, lora], "accuracy", 0.8, policy, [])
        assert rec.rung == "distill", policy
        assert any("distill is not shown to be within 0.020 of the best measured, lora" in r for r in rec.reasons)


def test_cost_decides_between_rungs_that_both_qualify():
    """Priced by tokens, a costlier-to-build rung with short prompts wins at a large volume."""
    cost = CostSpec(
        price_per_hour=2.0,
        price_per_1k_prompt_tokens=0.01,
        price_per_1k_completion_tokens=0.03,
        calls_per_month=1_000_000,
        months=12,
    )
    policy = PolicySpec(non_inferiority_margin=0.05)
    base = _scores(195, 200)
    fewshot = _rung("fewshot", "fewshot", base, [], policy=policy, prompt_tokens=434, cost=cost)
    lora = _rung("lora", "lora", base, [fewshot], policy=policy, prompt_tokens=87, train_s=3600, cost=cost)
    # per call: fewshot 434 * 0.01/1000 + 2 * 0.03/1000 = 0.0044; lora 0.00093; lora's hour costs 2.0
    assert lora.cost.cost_per_1k_calls == pytest.approx(0.93)
    assert lora.cost.break_even_calls["fewshot"] == pytest.approx((2.0 - 0.5 / 3600 * 2) / (0.00434 - 0.00087))
    rec = recommend([fewshot, lora], "accuracy", 0.9, policy, [])
    assert rec.rung == "lora"
    small = CostSpec(**{**cost.model_dump(), "calls_per_month": 10, "months": 1})
    fewshot2 = _rung("fewshot", "fewshot", base, [], policy=policy, prompt_tokens=434, cost=small)
    lora2 = _rung("lora", "lora", base, [fewshot2], policy=policy, prompt_tokens=87, train_s=3600, cost=small)
    assert recommend([fewshot2, lora2], "accuracy", 0.9, policy, []).rung == "fewshot"


def test_next_rung():
    assert next_rung_after(["prompt", "fewshot"], []) == ("rag", [])
    assert next_rung_after(["prompt"], ["fewshot"]) == ("fewshot", [])
    # distill learns a lower rung's answers: it is not the next rung to try for a gap
    assert next_rung_after(["prompt", "fewshot", "rag"], []) == ("lora", [])
    assert next_rung_after(["full"], []) == (None, [])


def test_the_next_rung_suggested_is_one_the_task_can_run(make_task, tmp_path):
    """A task without a corpus is never told to try rag: the next rung it can run is named, and what rag
    would need is said in one line."""
    from ladder.backends.scripted import ScriptedBackend
    from ladder.run.assess import assess
    from ladder.spec import load_task

    assert next_rung_after(["prompt", "fewshot"], [], {"rag": "a corpus"}) == ("lora", ["rag would need a corpus"])
    run, _ = assess(
        load_task(make_task()), backend=ScriptedBackend(responder=lambda p: "weather"), out_dir=tmp_path / "r"
    )
    rec = run.recommendation
    assert rec.next_rung == "lora" and rec.summary.endswith(
        "next rung to try: lora (rag would need a corpus of documents to retrieve from "
        "(`corpus:` in task.yaml, or `ladder init --corpus`))"
    )
    from conftest import TINY_CORPUS

    with_corpus = make_task({"corpus": {"path": "corpus.jsonl"}}, corpus=TINY_CORPUS, folder="with-corpus")
    run, _ = assess(
        load_task(with_corpus), backend=ScriptedBackend(responder=lambda p: "weather"), out_dir=tmp_path / "c"
    )
    assert run.recommendation.next_rung == "rag" and "would need" not in run.recommendation.summary


def test_a_distill_rung_is_measured_after_its_teacher_meets_the_target(make_task, tmp_path, monkeypatch):
    """The climb stops at a rung that meets the target, except for a distill rung taught by it: it exists to
    cut the cost per call, so it is measured; a rung above it stays skipped. (The loop's rule, on the
    scripted backend: the distill builder here answers like its teacher without training; the real rung is
    tested on the model in tests/test_distill_preference.py.)"""
    from ladder.backends.scripted import ScriptedBackend
    from ladder.run.assess import assess
    from ladder.rungs import RUNGS
    from ladder.rungs.base import Candidate
    from ladder.spec import load_task

    def stand_in(rung, ctx):
        teacher = ctx.candidate(rung.teacher)  # the teacher rung, as built by this assessment
        return Candidate(rung.name or "distill", "distill", teacher.instruction, teacher.input_template)

    monkeypatch.setitem(RUNGS._items, "distill", stand_in)

    def knows(prompt: str) -> str:
        text = prompt.rsplit("Text: ", 1)[-1]
        return "weather" if "raining" in text else "music" if "song" in text else "booking"

    backend = ScriptedBackend(responder=knows)
    path = make_task(
        {
            "target": {"metric": "accuracy", "threshold": 0.5},
            "policy": {"confidence": "point"},
            "rungs": [{"type": "prompt"}, {"type": "distill"}, {"type": "lora"}],
        }
    )
    run, _ = assess(load_task(path), backend=backend, out_dir=tmp_path / "run")
    assert [r.name for r in run.rungs] == ["prompt", "distill"] and run.rungs[0].decision.status == "meets"
    assert [s.name for s in run.skipped] == ["lora"] and "prompt meets the target" in run.skipped[0].reason
    # a teacher that does not meet the target: the distill rung is climbed to like any other
    path = make_task(
        {
            "target": {"metric": "accuracy", "threshold": 0.5},
            "policy": {"confidence": "point", "inconclusive": "climb"},
            "rungs": [{"type": "prompt"}, {"type": "distill"}],
        },
        folder="gap",
    )
    run, _ = assess(
        load_task(path),
        backend=ScriptedBackend(responder=lambda p: "none"),
        out_dir=tmp_path / "run-gap",
        use_cache=False,
    )  # the same prompts: not the first backend's cached answers
    assert run.rungs[0].decision.status != "meets" and run.rungs[0].decision.action == "climb"
    assert [r.name for r in run.rungs] == ["prompt", "distill"]


def test_a_trained_rung_without_a_passing_certificate_is_never_recommended():
    fewshot = _rung("fewshot", "fewshot", _scores(186, 200), [], threshold=0.85)
    lora = _rung("lora", "lora", _scores(200, 200), [fewshot], threshold=0.85, train_s=600, prompt_tokens=20)
    noop = lora.model_copy(
        update={
            "certificate": AdapterCertificate(
                backend="vllm",
                probe=8,
                checks=[
                    CertificateCheck(
                        name="changes_outputs", passed=False, value=0.0, tolerance=1e-4, detail="it does nothing"
                    )
                ],
            )
        }
    )
    quality = PolicySpec(prefer="quality")
    assert recommend([fewshot, lora], "accuracy", 0.85, quality, []).rung == "lora"
    rec = recommend([fewshot, noop], "accuracy", 0.85, quality, [])
    assert rec.rung == "fewshot"
    assert any(
        "lora meets the target but is not recommended: its adapter certificate failed (changes_outputs" in r
        for r in rec.reasons
    )
    missing = lora.model_copy(update={"certificate": None})  # a record from before certificates: fails closed
    assert not missing.certified() and recommend([missing], "accuracy", 0.85, quality, []).rung is None
