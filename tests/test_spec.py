from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT, base_spec

from ladder.errors import ValidationFailed
from ladder.spec import json_schema_text, load_task, parse_task

GOLDEN = ROOT / "tests" / "golden" / "bad_tasks"


def shipped_tasks() -> list[Path]:
    return sorted((ROOT / "tasks").glob("*/*.yaml"))


def test_every_shipped_task_validates():
    tasks = shipped_tasks()
    assert len(tasks) >= 1, "expected at least the SNIPS task under tasks/"
    for path in tasks:
        task = load_task(path)
        assert task.spec.rungs, path
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), f"{path}: first line should point at the schema"


def test_committed_schema_is_current():
    committed = (ROOT / "ladder" / "task.schema.json").read_text()
    assert committed == json_schema_text(), "run `ladder schema > ladder/task.schema.json`"


def test_defaults_live_in_the_model():
    spec = parse_task(base_spec(), "t.yaml")
    assert spec.model == "smollm2-135m-instruct"
    assert spec.generation.label_scoring == "loglik"
    assert spec.prompt.format == "auto"  # chat where the model has a chat template, plain where not
    assert spec.data.allow_duplicate_inputs is False


def _errors(raw: dict) -> list[str]:
    with pytest.raises(ValidationFailed) as info:
        parse_task(raw, "task.yaml")
    return info.value.problems


def test_all_problems_reported_at_once():
    raw = base_spec()
    raw["metrcs"] = ["accuracy"]
    raw["target"] = {"metric": "accuracy", "threshold": 1.5}
    raw["rungs"] = [{"type": "fewshoot"}]
    problems = _errors(raw)
    assert "task.yaml: metrcs: unknown field (did you mean 'metrics'?)" in problems
    assert "task.yaml: target.threshold: Input should be less than or equal to 1" in problems
    assert any("rungs[0].type: unknown rung 'fewshoot' (did you mean 'fewshot'?)" in p for p in problems)


def test_placeholders_are_checked():
    raw = base_spec()
    raw["prompt"]["input_template"] = "Text: {inptu}"
    assert _errors(raw) == ["task.yaml: prompt.input_template: unknown placeholder {inptu}; known: {input}"]


def test_rungs_must_climb_in_order():
    raw = base_spec()
    raw["rungs"] = [{"type": "fewshot"}, {"type": "prompt"}]
    assert _errors(raw) == [
        "task.yaml: (top level): rungs must climb in ladder order prompt -> fewshot -> rag -> distill -> continued -> lora -> preference -> full; got fewshot -> prompt"
    ]


@pytest.mark.parametrize("case", sorted(p.stem for p in GOLDEN.glob("*.yaml")))
def test_golden_error_messages(case, capsys, monkeypatch):
    from ladder.cli.main import main

    monkeypatch.chdir(GOLDEN)
    code = main(["validate", f"{case}.yaml"])
    err = capsys.readouterr().err
    expected = (GOLDEN / f"{case}.txt").read_text()
    assert code == 2
    assert "Traceback" not in err
    assert err == expected


def test_golden_cases_exist():
    assert len(list(GOLDEN.glob("*.yaml"))) >= 4


def test_fewshot_selection_defaults_to_what_fits_the_output_kind(make_task):
    """Stratified for labels, random otherwise: a text or JSON task with a bare `fewshot` rung validates."""
    from ladder.spec import load_task

    label = load_task(make_task({"rungs": [{"type": "prompt"}, {"type": "fewshot"}]}))
    assert label.spec.rungs[1].selection == "stratified"
    text = load_task(
        make_task(
            {
                "output": {"kind": "text"},
                "metrics": ["exact_match"],
                "target": {"metric": "exact_match", "threshold": 0.5},
                "rungs": [{"type": "fewshot", "k": 3}],
            },
            folder="text",
        )
    )
    assert text.spec.rungs[0].selection == "random"
