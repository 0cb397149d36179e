"""Baselines and the paired regression gate, through the CLI as a CI pipeline calls it (scripted backend)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from conftest import _rows

from ladder.backends.scripted import ScriptedBackend
from ladder.cli.main import main
from ladder.gate import gate, load_baseline
from ladder.record import load_run
from ladder.run.assess import assess
from ladder.spec import load_task

KEYWORDS = {"raining": "weather", "song": "music", "table": "booking"}


def _perfect(prompt):
    tail = prompt.rsplit("Text: ", 1)[-1]
    return next((label for word, label in KEYWORDS.items() if word in tail), "weather")


def _run(task_path, out, responder=_perfect, limit=None):
    # uncached: the scripted backend's identity does not name its responder
    run, folder = assess(
        load_task(task_path),
        backend=ScriptedBackend(responder=responder),
        out_dir=out,
        limit=limit,
        exhaustive=True,
        use_cache=False,
    )
    return folder


@pytest.fixture
def task(make_task):
    return make_task({"policy": {"confidence": "point"}}, test=_rows("test", 60, 2))


@pytest.fixture
def baseline(task, tmp_path):
    folder = _run(task, tmp_path / "base")
    path = tmp_path / "baseline.json"
    assert main(["baseline", str(folder), "--rung", "fewshot", "--to", str(path)]) == 0
    return path


def test_baseline_file_holds_ids_scores_hashes_and_identity(baseline, tmp_path):
    data = json.loads(baseline.read_text())
    assert data["format"] == "ladder-baseline" and data["rung"] == "fewshot" and data["split"] == "test"
    assert len(data["examples"]) == 60 and set(data["examples"][0]) == {"id", "scores", "output_sha256"}
    assert data["metric"] == "accuracy" and set(data["data_hashes"]) == {"train", "dev", "test"}
    assert data["model"]["backend"] == "scripted" and data["ladder_version"]


def test_unchanged_candidate_passes_with_junit_and_markdown(task, baseline, tmp_path, capsys):
    folder = _run(task, tmp_path / "again")
    junit, md = tmp_path / "gate.xml", tmp_path / "gate.md"
    assert main(["gate", str(folder), "--baseline", str(baseline), "--junit", str(junit), "--md", str(md)]) == 0
    printed = capsys.readouterr().out
    assert (
        printed.startswith("pass: fewshot accuracy 1.000 vs baseline 1.000, Δ +0.000")
        and "0 outputs changed" in printed
    )
    # a perfect baseline still has an honest, non-zero detectable drop: ~0.13 at n=60
    mde = float(printed.split("sees drops of ")[1].split(" ")[0])
    assert 0.08 < mde < 0.2
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuites" and suite.get("tests") == "1" and suite.get("failures") == "0"
    assert "ladder gate: PASS" in md.read_text() and "the interval rules out a drop larger than 0" in md.read_text()


def test_a_degraded_candidate_fails_with_exit_1(task, baseline, tmp_path, capsys):
    folder = _run(task, tmp_path / "worse", responder=lambda p: "weather")  # right on a third of the examples
    junit = tmp_path / "gate.xml"
    assert main(["gate", str(folder), "--baseline", str(baseline), "--junit", str(junit)]) == 1
    printed = capsys.readouterr().out
    assert printed.startswith("REGRESSION: fewshot accuracy 0.333 vs baseline 1.000, Δ -0.667") and "mcnemar" in printed
    failure = ET.parse(junit).getroot().find("testsuite/testcase/failure")
    assert failure is not None and "regression: accuracy" == failure.get("message")


def test_a_drop_within_the_margin_passes(task, baseline, tmp_path):
    folder = _run(task, tmp_path / "slightly", responder=lambda p: "music" if "place test 0<" in p else _perfect(p))
    result = gate(load_run(folder), load_baseline(baseline), margin=0.1)
    (check,) = result.checks
    assert check.comparison.delta == pytest.approx(-1 / 60) and not check.regressed and result.exit_code == 0
    assert 0 < check.mde < 1 and 0 <= check.power_at_visible_drop <= 1


def _three_wrong(prompt):
    return "music" if any(f"place test {i}<" in prompt for i in (0, 1, 3)) else _perfect(prompt)


def test_a_drop_the_gate_cannot_judge_is_inconclusive_with_exit_3(task, baseline, tmp_path, capsys):
    """Three of 60 answers turned wrong: -0.050, McNemar p = 0.25. The interval allows a drop, none is shown:
    the gate could not have seen a regression of that size, so it says INCONCLUSIVE (exit 3), with the n that
    would decide and the margin it would pass at, never pass."""
    folder = _run(task, tmp_path / "three", responder=_three_wrong)
    junit, md, page = tmp_path / "gate.xml", tmp_path / "gate.md", tmp_path / "gate.html"
    args = ["gate", str(folder), "--baseline", str(baseline)]
    assert main([*args, "--junit", str(junit), "--md", str(md), "--html", str(page)]) == 3
    printed = capsys.readouterr().out
    assert printed.startswith("INCONCLUSIVE: fewshot accuracy 0.950 vs baseline 1.000, Δ -0.050")
    assert "the gate cannot tell" in printed and "paired examples would decide at this margin" in printed
    result = gate(load_run(folder), load_baseline(baseline))
    (check,) = result.checks
    assert check.verdict == "inconclusive" and check.p_regression == pytest.approx(0.25)
    assert check.n_to_decide > 60 and check.passing_margin == pytest.approx(-check.comparison.low)
    failure = ET.parse(junit).getroot().find("testsuite/testcase/failure")
    assert failure is not None and failure.get("message") == "inconclusive: accuracy"
    assert "ladder gate: INCONCLUSIVE" in md.read_text() and "ladder gate: INCONCLUSIVE" in page.read_text()
    # a team's choice: inconclusive fails, or passes (JUnit: skipped)
    assert main([*args, "--on-inconclusive", "fail"]) == 1
    assert main([*args, "--on-inconclusive", "pass", "--junit", str(junit)]) == 0
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "0" and root.get("skipped") == "1"
    assert root.find("testsuite/testcase/skipped").get("message") == "inconclusive: accuracy"
    # at a margin its interval rules out, the same run passes
    assert main([*args, "--margin", f"{check.passing_margin + 0.001:.3f}"]) == 0


def test_a_regression_anywhere_outranks_an_inconclusive_gate_in_a_suite():
    from ladder.cli.ci import _gate_exit
    from ladder.gate import GateResult

    def result(code_verdict):
        return type("R", (), {"exit_code": code_verdict})()

    assert _gate_exit([result(3), result(1), result(0)]) == 1
    assert _gate_exit([result(0), result(3)]) == 3 and _gate_exit([result(0), result(0)]) == 0
    assert GateResult.model_fields["on_inconclusive"].default is None


def test_the_gate_states_what_it_can_see():
    """At n=250 and 82% accuracy a 5-point drop is below what the gate can detect (independent errors):
    sd of a difference sqrt(2 * 0.82 * 0.18) = 0.543, MDE = (1.96 + 0.842) * 0.543 / sqrt(250) = 0.0962."""
    from ladder.scoring.stats import minimum_detectable_effect, power_at

    sd = (2 * 0.82 * 0.18) ** 0.5
    assert minimum_detectable_effect(250, sd) == pytest.approx(0.0962, abs=5e-4)
    assert power_at(0.05, 250, sd) == pytest.approx(0.30, abs=0.01)
    assert power_at(0.0962, 250, sd) == pytest.approx(0.80, abs=0.01)


def test_other_examples_are_a_one_line_usage_error(task, baseline, tmp_path, capsys):
    folder = _run(task, tmp_path / "sliced", limit=20)
    assert main(["gate", str(folder), "--baseline", str(baseline)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not the same examples" in err and "40 baseline id(s) missing" in err
    assert "--limit (None)" in err


def test_changed_data_is_a_one_line_usage_error(make_task, baseline, tmp_path, capsys):
    other = make_task({"policy": {"confidence": "point"}}, test=_rows("test", 61, 2), folder="other")
    folder = _run(other, tmp_path / "other-run")
    assert main(["gate", str(folder), "--baseline", str(baseline)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the test data differs from the baseline's" in err


def test_unknown_metric_rung_and_bad_files_are_exit_2(task, baseline, tmp_path, capsys):
    folder = _run(task, tmp_path / "again")
    assert main(["gate", str(folder), "--baseline", str(baseline), "--metric", "token_f1"]) == 2
    assert "'token_f1' is not in" in capsys.readouterr().err
    assert main(["gate", str(folder), "--baseline", str(baseline), "--rung", "lora"]) == 2
    assert "rung 'lora' was not measured" in capsys.readouterr().err
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"a": 1}')
    assert main(["gate", str(folder), "--baseline", str(bogus)]) == 2
    assert "not a ladder baseline file" in capsys.readouterr().err
    assert main(["gate", str(folder), "--baseline", str(tmp_path / "missing.json")]) == 2
    assert "cannot read baseline" in capsys.readouterr().err
    assert main(["baseline", str(folder), "--rung", "rag", "--to", str(tmp_path / "x.json")]) == 2
    assert "rung 'rag' was not measured" in capsys.readouterr().err


def test_a_trained_rung_without_a_passing_certificate_is_refused(task, baseline, tmp_path, capsys):
    """The gate refuses (exit 2, one line naming the check) a trained rung whose adapter certificate failed, or
    a record with none: it cannot trust what that rung's scores were measured on."""
    from ladder.record import (
        AdapterCertificate,
        CertificateCheck,
        TrainingRecord,
        save_run,
    )

    folder = _run(task, tmp_path / "again")
    run = load_run(folder)
    training = TrainingRecord(
        steps=1,
        epochs=1.0,
        wall_s=1.0,
        tokens_seen=1,
        answer_tokens=1,
        tokens_per_s=1.0,
        rss_start_mb=1.0,
        rss_peak_mb=1.0,
        train_examples=1,
        artifact="a",
        artifact_bytes=1,
        artifact_sha256="x",
        checkpoint_dir="x",
        template_sha256="t",
    )
    noop = AdapterCertificate(
        backend="vllm",
        probe=8,
        checks=[
            CertificateCheck(
                name="changes_outputs", passed=False, value=0.0, tolerance=1e-4, detail="it does nothing as served"
            )
        ],
    )
    for certificate, expected in [
        (noop, "its adapter certificate failed changes_outputs: it does nothing as served"),
        (None, "it has no adapter certificate"),
    ]:
        run.rungs[-1] = run.rungs[-1].model_copy(update={"training": training, "certificate": certificate})
        save_run(run, folder / "run.json")
        assert main(["gate", str(folder), "--baseline", str(baseline)]) == 2
        err = capsys.readouterr().err
        assert (
            err.count("\n") == 1 and "rung 'fewshot' is a trained rung the gate cannot trust" in err and expected in err
        )


def test_github_annotations_and_step_summary(task, baseline, tmp_path, capsys, monkeypatch):
    """``--github``: one annotation per check on stdout (``::warning`` for an inconclusive one, its title's ``:`` and
    ``,`` escaped as GitHub requires), the Markdown summary appended to $GITHUB_STEP_SUMMARY after what earlier steps
    wrote; outside GitHub Actions (no variable) the annotations still print and a note says no summary was written."""
    folder = _run(task, tmp_path / "three", responder=_three_wrong)
    summary = tmp_path / "summary.md"
    summary.write_text("## an earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["gate", str(folder), "--baseline", str(baseline), "--github"]) == 3
    captured = capsys.readouterr()
    (annotation,) = [line for line in captured.out.splitlines() if line.startswith("::")]
    assert annotation.startswith("::warning title=ladder gate tiny/fewshot accuracy%3A INCONCLUSIVE::INCONCLUSIVE: ")
    assert "Δ -0.050" in annotation and "\n" not in annotation
    written = summary.read_text()
    assert written.startswith("## an earlier step\n") and "ladder gate: INCONCLUSIVE" in written
    degraded = _run(task, tmp_path / "bad", responder=lambda prompt: "music")
    assert main(["gate", str(degraded), "--baseline", str(baseline), "--github"]) == 1
    assert (
        "\n::error title=ladder gate tiny/fewshot accuracy%3A REGRESSION::REGRESSION: "
        in "\n" + capsys.readouterr().out
    )
    assert summary.read_text().count("## ") >= 2 and "ladder gate: REGRESSION" in summary.read_text()
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    assert main(["gate", str(folder), "--baseline", str(baseline), "--github"]) == 3
    captured = capsys.readouterr()
    assert "::warning title=" in captured.out and "$GITHUB_STEP_SUMMARY is not set" in captured.err
