"""This repository's own gate suite (evals/gates.yaml) with the real bundled model: each gate assesses
its rung on its slice and must pass against its committed baseline, as a CI pipeline would run it."""

from __future__ import annotations

import shlex
import xml.etree.ElementTree as ET

import pytest
import yaml
from conftest import ROOT

from ladder.cli.main import main
from ladder.run.suite import load_suite

SUITE = ROOT / "evals" / "gates.yaml"


def test_the_suite_file_names_existing_tasks_and_baselines():
    suite, base = load_suite(SUITE)
    assert len(suite.gates) >= 1
    for spec in suite.gates:
        assert (base / spec.task).is_file() and (base / spec.baseline).is_file()


CI_FILES = {"github": ROOT / "evals" / "ci" / "github-actions.yml", "gitlab": ROOT / "evals" / "ci" / "gitlab-ci.yml"}


def _ladder_commands(path) -> list[list[str]]:
    """The `ladder` command lines of a CI file as written there (GitHub steps' `run:`, GitLab jobs' `script:`)."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if "jobs" in doc:
        lines = [step["run"] for job in doc["jobs"].values() for step in job["steps"] if "run" in step]
    else:
        lines = [line for job in doc.values() if isinstance(job, dict) for line in job.get("script", [])]
    return [shlex.split(line)[1:] for line in lines if line.startswith(".venv/bin/ladder ")]


def test_the_ci_files_validate_every_task_and_gate_the_suite():
    for name, path in CI_FILES.items():
        commands = _ladder_commands(path)
        validated = {args[1] for args in commands if args[0] == "validate"}
        assert validated == {f"tasks/{t.name}/task.yaml" for t in (ROOT / "tasks").iterdir() if t.is_dir()}, name
        (suite,) = [args for args in commands if args[0] == "gate-suite"]
        assert suite[1] == "evals/gates.yaml" and "--junit" in suite, name
    assert "--github" in _ladder_commands(CI_FILES["github"])[-1]


@pytest.mark.model
def test_the_ci_integrations_run_as_written(tmp_path, capsys, monkeypatch):
    """Each CI file's `ladder` commands, run as written from a checkout (this repository's tasks and evals): every
    task validates, the gate suite passes against its committed baselines, with JUnit, Markdown and HTML written, and
    on GitHub the annotations printed and the summary appended. The second file finds every output cached."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("evals", "tasks"):
        (checkout / name).symlink_to(ROOT / name)
    monkeypatch.chdir(checkout)
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    for ci, path in CI_FILES.items():
        printed = ""
        for args in _ladder_commands(path):
            code = main(args)
            printed += capsys.readouterr().out
            assert code == 0, (ci, args, printed)
        assert printed.count("[snips-fewshot] pass: fewshot accuracy") == 1 and "0 outputs changed" in printed
        root = ET.parse(checkout / "ladder-gates.xml").getroot()
        assert root.get("failures") == "0" and int(root.get("tests")) >= 1, ci
        assert "ladder gate: PASS" in (checkout / "ladder-gates.md").read_text(), ci
        assert "ladder gate: PASS" in (checkout / "ladder-gates.html").read_text(), ci
        if ci == "github":
            assert "::notice title=ladder gate snips-intent/fewshot accuracy%3A pass::pass: fewshot accuracy" in printed
            assert "ladder gate: PASS" in summary.read_text()
