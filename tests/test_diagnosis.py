"""What kind of gap is left: the diagnosis on scripted outcomes (per-example dev results through the real
comparison code), and on the shipped tasks with the real model (small slices)."""

from __future__ import annotations

import pytest
from conftest import ROOT

from ladder.decide.diagnosis import advise, diagnose
from ladder.decide.policy import decide
from ladder.decide.recommend import recommend
from ladder.metrics import scorers
from ladder.record import ExampleRecord, RungResult, SplitResult
from ladder.scoring.compare import compare_with_earlier, split_scores
from ladder.scoring.stats import estimate, score_sd
from ladder.spec import parse_task

N = 60


def _spec(kind="text", metric="exact_match", labels=None, label_scoring="loglik", corpus=False):
    raw = {
        "name": "t",
        "data": {"train": "a.jsonl", "dev": "b.jsonl", "test": "c.jsonl"},
        "output": {"kind": kind, **({"labels": labels} if labels else {})},
        "metrics": [metric],
        "target": {"metric": metric, "threshold": 0.9},
        "prompt": {"instruction": "x"},
        "generation": {"label_scoring": label_scoring},
        "rungs": [{"type": "prompt"}, {"type": "fewshot", "k": 2}]
        + ([{"type": "rag"}] if corpus else [])
        + [{"type": "lora"}],
        **({"corpus": {"path": "corpus.jsonl"}} if corpus else {}),
    }
    return parse_task(raw, "task.yaml")


def _rung(spec, name, kind, outputs, targets, earlier, retrieved=None):
    """A measured rung from its dev outputs (test = the same), scored and compared by the real code."""
    metrics = scorers(spec)
    examples = []
    for split in ("dev", "test"):
        for i, (out, target) in enumerate(zip(outputs, targets)):
            scores = {m: s.score(out, (target,)) for m, s in metrics.items()}
            examples.append(
                ExampleRecord(
                    id=f"e{i}",
                    split=split,
                    prompt_hash="h",
                    prompt_tokens=10,
                    completion_tokens=2,
                    output=out,
                    target=target,
                    scores=scores,
                    retrieved=retrieved[i] if retrieved else None,
                    invalid=0,
                )
            )
    splits = {}
    for split in ("dev", "test"):
        recs = [r for r in examples if r.split == split]
        splits[split] = SplitResult(
            n=len(recs),
            metrics={m: estimate([r.scores[m] for r in recs], s.binary) for m, s in metrics.items()},
            wall_s=1.0,
            latency_s_per_example=0.1,
            examples_per_s=10.0,
            prompt_tokens_per_call=10.0,
            completion_tokens_per_call=2.0,
            cached=False,
            cache_key="k",
            invalid_share=sum(1 for r in recs if spec.output.kind == "json" and not r.output.startswith("{"))
            / len(recs),
        )
    splits = compare_with_earlier(examples, splits, earlier, metrics, seed=0)
    metric = spec.target.metric
    sd = score_sd(list(split_scores(examples, "dev", metric).values()))
    decision = decide(splits["dev"].metrics[metric], sd, metric, spec.target.threshold, spec.policy)
    return RungResult(
        name=name, type=kind, settings={}, demo_ids=[], build_s=0.1, splits=splits, decision=decision, examples=examples
    )


def test_knowledge_gap_retrieval_gain_and_answers_that_follow_recall():
    spec = _spec(corpus=True)
    targets = [f"answer {i}" for i in range(N)]
    wrong = ["no idea"] * N
    prompt = _rung(spec, "prompt", "prompt", [t if i < 5 else "no idea" for i, t in enumerate(targets)], targets, [])
    fewshot = _rung(
        spec,
        "fewshot",
        "fewshot",
        [t if i < 6 else w for i, (t, w) in enumerate(zip(targets, wrong))],
        targets,
        [prompt],
    )
    # retrieval finds the gold document for the first 40; answers right exactly there
    retrieved = [[f"doc{i}#0"] if i < 40 else ["other#0"] for i in range(N)]
    rag = _rung(
        spec,
        "rag",
        "rag",
        [t if i < 40 else "no idea" for i, t in enumerate(targets)],
        targets,
        [prompt, fewshot],
        retrieved,
    )
    gold = {f"e{i}": f"doc{i}" for i in range(N)}
    d = diagnose(spec, [prompt, fewshot, rag], gold, alpha=0.05)
    signals = {e.signal: e for e in d.evidence}
    assert d.kind == "knowledge" and d.best_rung == "rag"
    assert signals["rag_gain"].points_to == "knowledge" and signals["rag_gain"].value == pytest.approx(34 / N)
    assert signals["recall_follows"].value == pytest.approx(1.0)  # 100% right when found, 0% when not
    assert signals["fewshot_gain"].points_to == "neither"  # +1 example: not significant
    # 54 of 60 wrong under both prompt and fewshot; retrieval answers 34 of them
    assert (
        signals["unknown_share"].value == pytest.approx(54 / N)
        and "retrieval answers 63% of them" in signals["unknown_share"].text
    )
    rec = advise(recommend([prompt, fewshot, rag], "exact_match", 0.9, spec.policy, ["lora"]), d)
    assert rec.next_rung == "lora" and "missing knowledge, which lora is unlikely to close" in rec.summary
    assert any(r.startswith("the gap after rag looks like knowledge") for r in rec.reasons)


def test_behaviour_gap_invalid_json_lenient_gap_and_a_fewshot_gain():
    spec = _spec(kind="json", metric="json_field_f1")
    targets = [f'{{"city": "c{i}", "zip": "{i:05d}"}}' for i in range(N)]
    # zero-shot: the right JSON wrapped in chatter (invalid as written) for 40, nothing for the rest
    prompt_out = [f"Here is the JSON: {t}" if i < 40 else "I cannot" for i, t in enumerate(targets)]
    prompt = _rung(spec, "prompt", "prompt", prompt_out, targets, [])
    fewshot_out = [t if i < 45 else f"Sure: {t}" for i, t in enumerate(targets)]
    fewshot = _rung(spec, "fewshot", "fewshot", fewshot_out, targets, [prompt])
    d = diagnose(spec, [prompt, fewshot], {}, alpha=0.05)
    signals = {e.signal: e for e in d.evidence}
    assert d.kind == "behaviour" and d.best_rung == "fewshot"
    assert (
        signals["invalid_outputs"].value == pytest.approx(15 / N)
        and signals["invalid_outputs"].points_to == "behaviour"
    )
    assert signals["lenient_gap"].value == pytest.approx(15 / N)  # the 15 wrapped answers are right once extracted
    assert signals["fewshot_gain"].points_to == "behaviour" and signals["fewshot_gain"].value == pytest.approx(45 / N)
    rec = advise(recommend([prompt, fewshot], "json_field_f1", 0.9, spec.policy, ["lora"]), d)
    assert "looks like behaviour, which lora is likely to help with" in rec.summary


def test_no_gap_no_diagnosis_and_unclear_without_signals():
    spec = _spec()
    targets = [f"a{i}" for i in range(N)]
    prompt = _rung(spec, "prompt", "prompt", targets, targets, [])
    assert diagnose(spec, [prompt], {}, 0.05).kind == "none"
    half = [
        t if i % 3 else "x" for i, t in enumerate(targets)
    ]  # a third wrong: under the unknown share that says knowledge
    prompt = _rung(spec, "prompt", "prompt", half, targets, [])
    fewshot = _rung(spec, "fewshot", "fewshot", half, targets, [prompt])
    d = diagnose(spec, [prompt, fewshot], {}, 0.05)
    assert d.kind == "unclear" and {e.signal for e in d.evidence} == {"fewshot_gain", "unknown_share"}
    assert diagnose(spec, [], {}, 0.05) is None
    # said in English: never "the gap after fewshot looks like unclear"
    from ladder.decide.diagnosis import gap_kind

    assert (
        gap_kind("unclear") == "is of no clear kind" and gap_kind("mixed") == "looks like both behaviour and knowledge"
    )
    assert gap_kind("behaviour", bold=True) == "looks like **behaviour**"


@pytest.mark.model
def test_shipped_tasks_knowledge_and_behaviour_with_the_real_model(tmp_path):
    """quiz-facts: retrieval lifts token F1 far beyond zero-shot, and answers follow retrieval: knowledge.
    us-address: demonstrations turn unparseable answers into JSON addresses: behaviour."""
    from ladder.run.assess import assess
    from ladder.spec import load_task

    quiz, _ = assess(
        load_task(ROOT / "tasks" / "quiz-facts" / "task.yaml"),
        backend="transformers",
        rungs=["prompt", "rag"],
        limit=30,
        out_dir=tmp_path / "quiz",
        exhaustive=True,
    )
    signals = {e.signal: e for e in quiz.diagnosis.evidence}
    assert quiz.diagnosis.kind == "knowledge", quiz.diagnosis
    assert signals["rag_gain"].points_to == "knowledge" and signals["rag_gain"].value > 0.2
    assert any("looks like knowledge" in r for r in quiz.recommendation.reasons)
    assert quiz.recommendation.next_rung == "lora" and "which lora is unlikely to close" in quiz.recommendation.summary

    address, _ = assess(
        load_task(ROOT / "tasks" / "us-address" / "task.yaml"),
        backend="transformers",
        rungs=["prompt", "fewshot"],
        limit=12,
        out_dir=tmp_path / "address",
        exhaustive=True,
    )
    signals = {e.signal: e for e in address.diagnosis.evidence}
    assert address.diagnosis.kind == "behaviour", address.diagnosis
    assert signals["fewshot_gain"].points_to == "behaviour" and signals["fewshot_gain"].value > 0.1
    assert address.rung("prompt").splits["dev"].invalid_share > 0.5
    assert "which lora is likely to help with" in address.recommendation.summary


def test_after_a_trained_rung_the_diagnosis_is_a_reason_not_a_forecast():
    spec = _spec()
    targets = [f"a{i}" for i in range(N)]
    prompt = _rung(spec, "prompt", "prompt", ["x"] * N, targets, [])
    fewshot = _rung(
        spec, "fewshot", "fewshot", [t if i < 40 else "x" for i, t in enumerate(targets)], targets, [prompt]
    )
    lora = _rung(
        spec, "lora", "lora", [t if i < 50 else "x" for i, t in enumerate(targets)], targets, [prompt, fewshot]
    )
    d = diagnose(spec, [prompt, fewshot, lora], {}, 0.05)
    assert d.kind == "behaviour" and d.best_rung == "fewshot"
    rec = recommend([prompt, fewshot, lora], "exact_match", 0.9, spec.policy, [])
    advised = advise(rec, d, trained=True)
    assert advised.summary == rec.summary and advised.reasons[-1].startswith(
        "the gap after fewshot looks like behaviour"
    )
