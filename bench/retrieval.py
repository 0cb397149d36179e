"""Retrieval benchmarks, measured side by side in one run.

    python bench/retrieval.py [--sizes 10000,100000] [--queries 500]

1. Embedding throughput of the bundled all-MiniLM-L6-v2 on ~1.1k real texts (the quiz-facts corpus and
   the SNIPS utterances), docs/s.
2. faiss index build time and single-query latency (p50/p95) of exact (flat inner product) vs IVF vs
   HNSW on synthetic clustered unit vectors (dim 384, like the embedder's), with the approximate
   indexes' recall@10 against exact search, using the search parameters ladder defaults to.
3. recall@k of dense vs lexical (BM25) vs hybrid (RRF) retrieval on the quiz-facts test questions.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import ROOT  # noqa: E402  (the repository on sys.path, the model cache)

from ladder.data.corpus import doc_of, resolve_embedder  # noqa: E402
from ladder.data.splits import load_task_data  # noqa: E402
from ladder.retrieval import dense  # noqa: E402
from ladder.retrieval.embedder import Embedder  # noqa: E402
from ladder.retrieval.retriever import load_or_build  # noqa: E402
from ladder.spec import CorpusSpec, load_task  # noqa: E402

DIM = 384


def clustered(n: int, rng: np.random.Generator, clusters: int = 200) -> np.ndarray:
    centers = rng.normal(size=(clusters, DIM))
    points = centers[rng.integers(0, clusters, n)] + 0.35 * rng.normal(size=(n, DIM))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32)


def bench_embedding() -> dict:
    quiz = load_task_data(load_task(ROOT / "tasks" / "quiz-facts" / "task.yaml"))
    snips = load_task_data(load_task(ROOT / "tasks" / "snips-intent" / "task.yaml")).splits
    texts = [c.text for c in quiz.corpus.chunks()] + [e.input for s in ("train", "dev", "test") for e in snips.get(s)]
    embedder = Embedder(resolve_embedder("all-minilm-l6-v2"))
    embedder.encode(texts[:64])  # load + warm-up
    start = time.perf_counter()
    embedder.encode(texts)
    wall = time.perf_counter() - start
    return {"texts": len(texts), "wall_s": wall, "docs_per_s": len(texts) / wall}


def bench_indexes(sizes: list[int], n_queries: int) -> list[dict]:
    spec = CorpusSpec(path="-")
    rows = []
    rng = np.random.default_rng(0)
    for n in sizes:
        base = clustered(n, rng)
        queries = base[rng.integers(0, n, n_queries)] + 0.05 * rng.normal(size=(n_queries, DIM)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        truth = None
        for kind in ("exact", "ivf", "hnsw"):
            params = dense.choose_params(kind, n, spec.approx_threshold)
            start = time.perf_counter()
            index = dense.build_index(base, params)
            build = time.perf_counter() - start
            dense.set_search_params(index, spec.ivf_nprobe, spec.hnsw_ef_search)
            latencies, found = [], []
            for q in queries:
                t = time.perf_counter()
                _, ids = dense.search(index, q[None, :], 10)
                latencies.append(time.perf_counter() - t)
                found.append(ids[0])
            found = np.array(found)
            if kind == "exact":
                truth = found
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)]))
            rows.append(
                {
                    "n": n,
                    "index": kind,
                    "params": params.__dict__,
                    "build_s": build,
                    "p50_ms": float(np.percentile(latencies, 50) * 1000),
                    "p95_ms": float(np.percentile(latencies, 95) * 1000),
                    "recall@10_vs_exact": recall,
                }
            )
            print(
                f"  {n:>7} {kind:6} build {build:7.2f} s  p50 {rows[-1]['p50_ms']:7.3f} ms  "
                f"p95 {rows[-1]['p95_ms']:7.3f} ms  recall@10 {recall:.3f}",
                flush=True,
            )
    return rows


def bench_modes() -> dict:
    task = load_task(ROOT / "tasks" / "quiz-facts" / "task.yaml")
    data = load_task_data(task)
    retriever = load_or_build(data.corpus, task.spec.corpus)
    out = {}
    for split in ("dev", "test"):
        examples = data.splits.get(split)
        for mode in ("dense", "lexical", "hybrid"):
            hits = retriever.search([e.input for e in examples], 10, mode)
            for k in (1, 4, 5, 10):
                recall = sum(e.doc_id in {doc_of(h.chunk.id) for h in found[:k]} for e, found in zip(examples, hits))
                out[f"{split}/{mode}/recall@{k}"] = recall / len(examples)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "retrieval.json")
    args = parser.parse_args()
    print("1. embedding throughput (all-MiniLM-L6-v2, CPU)")
    emb = bench_embedding()
    print(f"  {emb['texts']} real texts in {emb['wall_s']:.1f} s: {emb['docs_per_s']:.1f} docs/s")
    print(f"2. faiss indexes, {DIM}-d clustered unit vectors, {args.queries} single queries each, top 10")
    idx = bench_indexes([int(s) for s in args.sizes.split(",")], args.queries)
    print("\n  n        index   build s   p50 ms   p95 ms   recall@10 vs exact   p50 speed-up vs exact")
    for row in idx:
        exact = next(r for r in idx if r["n"] == row["n"] and r["index"] == "exact")
        print(
            f"  {row['n']:<8} {row['index']:6} {row['build_s']:8.2f} {row['p50_ms']:8.3f} {row['p95_ms']:8.3f} "
            f"{row['recall@10_vs_exact']:12.3f} {exact['p50_ms'] / row['p50_ms']:18.1f}x"
        )
    print("3. recall@k on quiz-facts questions (gold document among the top-k chunks)")
    modes = bench_modes()
    for split in ("dev", "test"):
        print(f"  {split:5} {'mode':8} " + " ".join(f"{'R@' + str(k):>6}" for k in (1, 4, 5, 10)))
        for mode in ("dense", "lexical", "hybrid"):
            print(
                f"  {'':5} {mode:8} " + " ".join(f"{modes[f'{split}/{mode}/recall@{k}']:6.3f}" for k in (1, 4, 5, 10))
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"embedding": emb, "indexes": idx, "modes": modes}, indent=1))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
