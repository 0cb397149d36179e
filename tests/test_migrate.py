"""``ladder migrate``: a finished run's shipped rung against a new climb on another base, paired on the same test
examples; migrate, stay and inconclusive each reached (scripted backend: the logic; test_model.py runs it on the
real models)."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, _rows

from ladder.backends.scripted import ScriptedBackend
from ladder.cli.main import main
from ladder.errors import LadderError
from ladder.gate.migration import load_migration, migration
from ladder.record import load_run
from ladder.run.assess import assess
from ladder.run.migrate import migrate
from ladder.spec import load_task

KEYWORDS = {"raining": "weather", "song": "music", "table": "booking"}


def _perfect(prompt):
    tail = prompt.rsplit("Text: ", 1)[-1]
    return next((label for word, label in KEYWORDS.items() if word in tail), "weather")


def _slips(every):
    """Right except on the examples whose number is a multiple of ``every``."""

    def respond(prompt):
        tail = prompt.rsplit("Text: ", 1)[-1].split("<|im_end|>")[0]
        number = int(tail.split()[-1])
        return "music" if number % every == 0 and "song" not in tail else _perfect(prompt)

    return respond


@pytest.fixture
def task(make_task):
    return make_task({"policy": {"confidence": "point"}}, dev=_rows("dev", 30, 1), test=_rows("test", 60, 2))


@pytest.fixture
def shipped(task, tmp_path):
    """Today's run: both rungs right on every example; nothing recommended (point policy meets at prompt)."""
    _, folder = assess(
        load_task(task),
        backend=ScriptedBackend(responder=_perfect),
        out_dir=tmp_path / "old",
        exhaustive=True,
        use_cache=False,
    )
    return folder


def _migrate(shipped, tmp_path, responder, name, **options):
    return migrate(
        shipped,
        "new-base",
        from_rung="fewshot",
        backend=ScriptedBackend(responder=responder),
        out_dir=tmp_path / name,
        use_cache=False,  # the scripted backend's identity does not name its responder
        **options,
    )


def test_an_equal_new_base_migrates_to_its_cheapest_rung_and_stops_climbing(shipped, tmp_path):
    outcome, folder = _migrate(shipped, tmp_path, _perfect, "same")
    assert outcome.verdict == "migrate" and outcome.rung == "prompt"
    # prompt was non-inferior on dev already: the costlier fewshot was not climbed to
    assert [c.rung for c in outcome.candidates] == ["prompt"]
    assert [s.name for s in outcome.skipped] == ["fewshot"] and "non-inferior on dev" in outcome.skipped[0].reason
    (c,) = outcome.candidates
    assert c.gate_verdict == "pass" and c.verdict == "non-inferior" and c.comparison.n == 60 == outcome.n
    assert c.comparison.delta == 0 and c.won == c.lost == [] and c.cost is not None
    assert outcome.summary.startswith("Migrate: prompt on scripted is non-inferior to fewshot on scripted")
    for name in ("migration.json", "migration.md", "migration.html", "run.json", "report.html"):
        assert (folder / name).is_file(), name
    new = load_run(folder)
    assert new.spec.model == "new-base" and new.limit is None and new.spec.prompt.format == "chat"


def test_a_worse_new_base_says_stay_with_the_closest_rung(shipped, tmp_path):
    outcome, _ = _migrate(shipped, tmp_path, lambda p: "weather", "worse")  # right on a third
    assert outcome.verdict == "stay" and outcome.rung is None and outcome.closest in ("prompt", "fewshot")
    assert {c.verdict for c in outcome.candidates} == {"regression"}
    c = outcome.candidates[0]
    assert c.comparison.delta == pytest.approx(-2 / 3) and len(c.lost) == 40 and c.won == []
    assert f"the closest, {outcome.closest}, is at Δ -0.667" in outcome.summary
    # examples won and lost carry what the report shows: input, target, both answers
    ex = outcome.examples[c.lost[0]]
    assert ex.input and ex.target != "weather" and ex.shipped == ex.target and ex.outputs["prompt"] == "weather"


def test_a_slightly_worse_new_base_is_inconclusive_with_the_n_that_would_decide(shipped, tmp_path):
    outcome, _ = _migrate(shipped, tmp_path, _slips(20), "slips")  # wrong on 2 of 60 test examples (0 and 40)
    assert outcome.verdict == "inconclusive" and outcome.rung is None
    assert [c.rung for c in outcome.candidates] == ["prompt", "fewshot"]  # never non-inferior on dev: climbed on
    c = next(c for c in outcome.candidates if c.rung == outcome.closest)
    assert (
        c.gate_verdict == "inconclusive"
        and c.lost == ["test-0", "test-40"]
        and c.comparison.delta == pytest.approx(-2 / 60)
    )
    assert outcome.n_to_decide is not None and outcome.n_to_decide > 60
    assert f"about {outcome.n_to_decide} paired test examples would decide it" in outcome.summary
    # a margin that tolerates the drop turns it into a migration
    tolerant, _ = _migrate(shipped, tmp_path, _slips(20), "tolerant", margin=0.15)
    assert tolerant.verdict == "migrate" and tolerant.rung == "prompt"


def test_holm_adjusts_the_non_inferiority_over_the_rungs_gated(shipped, task, tmp_path):
    from ladder.scoring.stats import holm

    # both rungs of a new climb, gated at once (migrate stops at the first non-inferior on dev; assess does not)
    _, folder = assess(
        load_task(task).with_model("new-base"),
        backend=ScriptedBackend(responder=_slips(20)),
        out_dir=tmp_path / "both",
        exhaustive=True,
        use_cache=False,
    )
    outcome = migration(load_run(shipped), "fewshot", load_run(folder), "new-base", margin=0.15)
    raw = [c.p_noninferior for c in outcome.candidates]
    assert len(raw) == 2 and [c.p_adjusted for c in outcome.candidates] == holm(raw)
    assert all(c.p_adjusted >= c.p_noninferior for c in outcome.candidates)
    assert outcome.verdict == "migrate" and outcome.rung == "prompt"  # both non-inferior: the cheaper one
    assert any("Holm's adjustment over them" in r for r in outcome.reasons)


def test_cli_exit_codes_report_and_rerender(shipped, tmp_path, capsys, monkeypatch):
    import ladder.run.migrate as module

    real = module.assess
    monkeypatch.setattr(
        module,
        "assess",
        lambda task, **kw: real(task, **{**kw, "backend": ScriptedBackend(responder=lambda p: "weather")}),
    )
    out = tmp_path / "cli"
    code = main(
        ["migrate", str(shipped), "--to", "new-base", "--from-rung", "fewshot", "--out", str(out), "--no-cache"]
    )
    assert code == 1
    printed = capsys.readouterr().out
    assert printed.startswith("Stay: every rung on scripted is worse than fewshot on scripted")
    record = json.loads((out / "migration.json").read_text())
    assert record["format"] == "ladder-migration" and record["verdict"] == "stay"
    md = (out / "migration.md").read_text()
    assert "## Old against new, per rung" in md and "shipped: fewshot" in md and "## Examples won and lost" in md
    # the report comes from the record alone, byte for byte
    (out / "migration.md").unlink()
    assert main(["report", str(out / "migration.json"), "--format", "md"]) == 0
    assert (out / "migration.md").read_text() == md
    assert load_migration(out / "migration.json").verdict == "stay"


def test_checked_before_anything_is_computed(shipped, task, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    old = load_run(shipped)
    # a run that recommends nothing needs --from-rung
    _, failing = assess(
        load_task(task), backend=ScriptedBackend(responder=lambda p: "weather"), out_dir=tmp_path / "f", use_cache=False
    )
    assert load_run(failing).recommendation.rung is None
    with pytest.raises(LadderError, match="recommends no rung .* --from-rung"):
        migrate(failing, "new-base", backend=ScriptedBackend(responder=_perfect))
    with pytest.raises(LadderError, match="rung 'lora' was not measured"):
        migrate(shipped, "new-base", from_rung="lora", backend=ScriptedBackend(responder=_perfect))
    with pytest.raises(LadderError, match="is the model .* already used"):
        migrate(shipped, old.spec.model, backend=ScriptedBackend(responder=_perfect))
    with pytest.raises(LadderError, match="--margin"):
        migrate(shipped, "new-base", margin=1.5, backend=ScriptedBackend(responder=_perfect))
    # the test data changed since the run: nothing is paired, nothing runs
    (task.parent / "test.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in _rows("test", 59, 2)), encoding="utf-8"
    )
    assert main(["migrate", str(shipped), "--to", "new-base", "--backend", "scripted"]) == 2
    assert "the test data differs from what" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_model_option_swaps_the_base_and_resolves_paths_from_the_working_directory(task, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loaded = load_task(task)
    assert loaded.with_model(None) is loaded and loaded.with_model("gemma3-270m").spec.model == "gemma3-270m"
    (tmp_path / "mine").mkdir()
    assert loaded.with_model("mine").spec.model == str(tmp_path / "mine")  # a folder here, not beside task.yaml
    assert loaded.with_model("x/model.gguf").spec.model == str(tmp_path / "x" / "model.gguf")
    assert loaded.spec.model == "smollm2-135m-instruct"  # the task itself is unchanged
    out = tmp_path / "run"
    assert main(["assess", str(task), "--backend", "scripted", "--model", "gemma3-270m", "--out", str(out)]) == 0
    assert load_run(out).spec.model == "gemma3-270m" and "--model gemma3-270m" in load_run(out).command
    # a model that does not exist is one line naming the option's value, before anything runs
    assert main(["assess", str(task), "--model", "no-such-model", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


MIGRATIONS = sorted((ROOT / "reports").glob("migration-*/migration.json"))


def test_a_committed_migration_exists():
    assert MIGRATIONS, "reports/migration-*/ holds the SNIPS migration to Gemma 3 270M"


@pytest.mark.parametrize("record", MIGRATIONS, ids=lambda p: p.parent.name)
def test_committed_migration_reports_regenerate_byte_for_byte(record):
    """`make reports` renders the migration and its new climb from their records; committed as rendered."""
    from ladder.gate.migration_report import render_migration
    from ladder.report import render

    outcome = load_migration(record)
    run = load_run(record.parent / "run.json")
    assert outcome.new_run_id == run.run_id and outcome.candidates
    for fmt in ("md", "html"):
        stale = f"{record.parent.name}: run `make reports`"
        assert render_migration(outcome, fmt) == (record.parent / f"migration.{fmt}").read_text(encoding="utf-8"), stale
        assert render([run], fmt) == (record.parent / f"report.{fmt}").read_text(encoding="utf-8"), stale


def test_check_data_takes_the_model_option_too(make_task, capsys):
    task = make_task({"rungs": [{"type": "prompt"}, {"type": "lora"}]}, folder="trained")
    assert main(["check-data", str(task), "--model", "no-such-model"]) == 2
    assert capsys.readouterr().err.startswith("error: --model: 'no-such-model' is neither a known alias")
