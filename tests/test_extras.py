"""What a command needs installed, said before any work; the user cache and its migration; `ladder cache`.
(The real core install, with nothing heavy in it: tests/test_install.py.)"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from ladder.cli.main import main
from ladder.extras import EXTRAS, missing, needed, pip_line


@pytest.fixture
def without(monkeypatch):
    """Make modules look uninstalled to ladder.extras (and to the checks that ask find_spec)."""

    def hide(*modules: str) -> None:
        real = importlib.util.find_spec

        def find_spec(name, *args, **kwargs):
            return None if name.split(".")[0] in modules else real(name, *args, **kwargs)

        monkeypatch.setattr(importlib.util, "find_spec", find_spec)

    return hide


def test_needed_names_each_extra_with_what_needs_it():
    from ladder.spec import FewShotRungSpec, LoraRungSpec, PromptRungSpec, RagRungSpec

    rungs = [
        PromptRungSpec(type="prompt"),
        FewShotRungSpec(type="fewshot", selection="similar"),
        RagRungSpec(type="rag"),
        LoraRungSpec(type="lora"),
    ]
    assert needed("openai", rungs) == {
        "rag": ["the fewshot rung's selection: similar", "the rag rung"],
        "local": ["the lora rung"],
    }
    assert needed("transformers", rungs[:1]) == {"local": ["the transformers backend"]}
    assert needed("openai", rungs[:1]) == {} and needed("scripted", []) == {}
    assert pip_line(["rag", "local", "rag"]) == 'pip install "ladder[local,rag]"'
    assert missing(EXTRAS) == [] or set(missing(EXTRAS)) <= {"vllm"}  # this venv has everything but maybe vllm


def test_assess_stops_before_any_work_with_the_pip_line(make_task, tmp_path, capsys, without):
    path = make_task({"rungs": [{"type": "prompt"}, {"type": "lora"}]})
    without("torch", "peft")
    assert main(["assess", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: {path}: ladder[local] (for the transformers backend and the lora rung) is not installed: run "
        '`pip install "ladder[local]"`'
    )
    assert not (tmp_path / "run").exists() and not (tmp_path / "ladder-home" / "results").exists()
    # the openai backend with the trained rung left out needs nothing more
    spec = {"serving": {"backend": "openai", "base_url": "http://127.0.0.1:9/v1"}}
    other = make_task({**spec, "rungs": [{"type": "prompt"}]}, folder="served")
    from ladder.extras import require_for
    from ladder.spec import load_task

    require_for("openai", load_task(other).spec.rungs, str(other))  # no error


def test_check_data_label_errors_needs_the_checks_extra(make_task, capsys, without):
    path = make_task()
    without("cleanlab")
    assert main(["check-data", str(path), "--label-errors", "--backend", "scripted"]) == 2
    assert capsys.readouterr().err.strip() == (
        'error: ladder[checks] (for --label-errors) is not installed: run `pip install "ladder[checks]"`'
    )


def test_without_datasketch_near_duplicates_are_said_unchecked_not_passed(make_task, capsys, without):
    path = make_task()
    without("datasketch")
    assert main(["check-data", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        'info Near-duplicate leakage into test: not checked: datasketch is not installed (`pip install "ladder[checks]"`)'
        in out
    )
    from ladder.init.split import split_rows

    _, notes = split_rows(["a", "b"] * 10, [f"text {i}" for i in range(20)], ["a", "b"], 0)
    assert any(n.startswith("near-duplicate inputs were not grouped") for n in notes)


def test_without_matplotlib_the_html_report_says_where_each_figure_would_be(tmp_path, capsys, without):
    record = Path(__file__).resolve().parents[1] / "reports" / "records" / "snips-intent.json"
    without("matplotlib")
    assert main(["report", str(record), "--out", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text()
    assert html.count("<svg") == 0 and html.count("Figure not drawn: matplotlib is not installed") >= 3
    assert "figures are not drawn" in capsys.readouterr().err


def _fake_model(folder: Path, weights: bytes) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def test_a_model_made_before_the_user_cache_is_moved_there_not_made_again(tmp_path, monkeypatch):
    from ladder.backends.hf.model import materialize_gguf
    from ladder.fileio import cached_file_hash

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LADDER_HOME")
    monkeypatch.delenv("LADDER_MODEL_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"not really a gguf")
    key = f"m-{cached_file_hash(gguf)[:12]}"
    _fake_model(tmp_path / ".ladder" / "models" / key, b"weights")
    moved = materialize_gguf(gguf)  # would need transformers to make it; it is found made
    assert moved == tmp_path / "xdg" / "ladder" / "models" / key
    assert (moved / "model.safetensors").read_bytes() == b"weights"
    assert not (tmp_path / ".ladder" / "models" / key).exists()


def test_cache_info_and_prune_keep_what_a_record_refers_to(tmp_path, monkeypatch, capsys):
    from ladder.fileio import hash_files

    monkeypatch.setenv("LADDER_MODEL_DIR", str(tmp_path / "models"))
    kept = _fake_model(tmp_path / "models" / "kept-000000000000", b"kept weights")
    gone = _fake_model(tmp_path / "models" / "gone-111111111111", b"other weights")
    record = json.loads((Path(__file__).resolve().parents[1] / "tests" / "golden" / "report" / "run.json").read_text())
    record["model"]["weights_sha256"] = hash_files([kept / "model.safetensors"])
    runs = tmp_path / "runs" / "t" / "r1"
    runs.mkdir(parents=True)
    (runs / "run.json").write_text(json.dumps(record))
    assert main(["cache", "info", "--runs", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "kept-000000000000" in out and "gone-111111111111" in out and "1 run records read" in out
    assert " referred" in out and " unreferred" in out
    assert main(["cache", "prune", "--runs", str(tmp_path / "runs"), "--dry-run"]) == 0
    assert gone.exists() and "would remove" in capsys.readouterr().out
    assert main(["cache", "prune", "--runs", str(tmp_path / "runs")]) == 0
    assert kept.exists() and not gone.exists()
    assert f"removed {gone}" in capsys.readouterr().out
    # no records where it looks: refused, nothing removed
    assert main(["cache", "prune", "--runs", str(tmp_path / "nowhere")]) == 2
    assert "no run records under" in capsys.readouterr().err and kept.exists()


def test_a_tokenizer_only_folder_serves_the_openai_backend_not_the_local_ones(tmp_path):
    """A team whose model is served elsewhere has its tokenizer files alone: the openai backend tokenizes with them
    (the record's weights hash empty, the server's identity saying what answered: tests/test_install.py); a local
    backend says in one line that there are no weights to load."""
    import shutil

    from ladder.backends import create_backend
    from ladder.backends.hf.model import HFModel, resolve_model
    from ladder.backends.models import TOKENIZER_FILES, model_identity
    from ladder.errors import LadderError

    model = resolve_model("smollm2-135m-instruct").path
    folder = tmp_path / "tokenizer"
    folder.mkdir()
    for name in TOKENIZER_FILES:
        if (model / name).is_file():
            shutil.copy(model / name, folder / name)
    ref = resolve_model(str(folder))
    full = HFModel(resolve_model("smollm2-135m-instruct"))
    light = HFModel(ref)
    assert light.light is not None and light.max_context is None
    prompt = light.formatter("chat").prompt([{"role": "user", "content": "play a song"}])
    assert light.encode(prompt) == full.encode(prompt)
    identity = model_identity(ref, weights_required=False)
    assert identity["weights_sha256"] == "" and identity["config_sha256"] is None
    assert identity["tokenizer_sha256"] == model_identity(resolve_model("smollm2-135m-instruct"))["tokenizer_sha256"]
    with pytest.raises(LadderError, match=r"^model: no weight files \(\*\.safetensors, \*\.bin\) in "):
        create_backend("transformers", str(folder)).identity()
    with pytest.raises(LadderError, match="neither config.json nor tokenizer.json"):
        resolve_model(str(tmp_path))
