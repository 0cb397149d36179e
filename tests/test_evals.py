"""This repository's own gate suite (evals/gates.yaml) with the real bundled model: each gate assesses
its rung on its slice and must pass against its committed baseline, as a CI pipeline would run it."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from conftest import ROOT

from ladder.cli.main import main
from ladder.run.suite import load_suite

SUITE = ROOT / "evals" / "gates.yaml"


def test_the_suite_file_names_existing_tasks_and_baselines():
    suite, base = load_suite(SUITE)
    assert len(suite.gates) >= 1
    for spec in suite.gates:
        assert (base / spec.task).is_file() and (base / spec.baseline).is_file()


@pytest.mark.model
def test_the_gate_suite_passes_against_its_committed_baselines(tmp_path, capsys):
    junit = tmp_path / "gates.xml"
    code = main(
        [
            "gate-suite",
            str(SUITE),
            "--out",
            str(tmp_path / "runs"),
            "--junit",
            str(junit),
            "--md",
            str(tmp_path / "gates.md"),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert printed.count("[snips-fewshot] pass: fewshot accuracy") == 1 and "0 outputs changed" in printed
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "0" and int(root.get("tests")) >= 1
