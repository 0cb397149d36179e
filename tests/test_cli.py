from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

from ladder.cli.main import main
from ladder.spec import json_schema_text

SNIPS = ROOT / "tasks" / "snips-intent" / "task.yaml"


def _py(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)


def test_light_commands_import_no_heavy_libraries():
    code = (
        "import sys, contextlib, io\n"
        "import ladder\n"
        "from ladder.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
        f"    assert main(['validate', {str(SNIPS)!r}]) == 0\n"
        "    main(['schema'])\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'vllm') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = _py(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_assess_on_the_scripted_backend_imports_no_model_library(make_task, tmp_path):
    """The whole loop (rungs registered, the lora rung among them; prompt and fewshot built, evaluated,
    scored, decided, reported) without torch, transformers, peft or vllm."""
    path = make_task({"rungs": [{"type": "prompt"}, {"type": "fewshot", "k": 3}, {"type": "lora"}]})
    code = (
        "import sys, contextlib, io\n"
        "from ladder.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        f"    code = main(['assess', {str(path)!r}, '--backend', 'scripted', '--rungs', 'prompt,fewshot',"
        f" '--out', {str(tmp_path / 'run')!r}])\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'vllm', 'faiss', 'sentence_transformers')"
        " if m in sys.modules]\n"
        "print(code, heavy)\n"
    )
    result = _py(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0 []"
    assert (tmp_path / "run" / "run.json").is_file()


def test_validate_ok(capsys):
    assert main(["validate", str(SNIPS)]) == 0
    assert "ok (train 343, dev 100, test 250; rungs: prompt, fewshot, lora)" in capsys.readouterr().out


def test_missing_task_is_one_line_exit_2(capsys, tmp_path):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "no such task file" in err


def test_schema_command(capsys):
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == json_schema_text()
    assert json.loads(json_schema_text())["title"] == "ladder task.yaml"


def test_assess_with_scripted_backend_prints_table_and_writes_report(make_task, tmp_path, capsys):
    path = make_task()
    out = tmp_path / "run"
    assert main(["assess", str(path), "--backend", "scripted", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "rung" in printed and "prompt" in printed and "recommendation:" in printed
    assert (out / "run.json").is_file() and (out / "report.md").read_text().startswith("# ladder report: tiny")
    assert main(["report", str(out)]) == 0


def test_assess_unknown_backend_exit_2(make_task, capsys):
    assert main(["assess", str(make_task()), "--backend", "scriptd"]) == 2
    assert "did you mean 'scripted'" in capsys.readouterr().err


def test_subprocess_error_has_no_traceback(tmp_path):
    bad = tmp_path / "task.yaml"
    bad.write_text("name: x\nnope: 1\n")
    result = subprocess.run([sys.executable, "-m", "ladder", "validate", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "nope: unknown field" in result.stderr
