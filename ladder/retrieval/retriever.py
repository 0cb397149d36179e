"""The retriever of a task: chunks, their dense faiss index and BM25 index, built once and cached on disk.

Cache key: corpus content + chunking + embedder identity + index structure. A changed corpus rebuilds;
an unchanged one loads. Search parameters (nprobe, efSearch) are applied at load, no rebuild needed.
Hybrid retrieval fuses the dense and lexical rankings by reciprocal rank (RRF, k=60).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import ladder
from ladder.data.corpus import Chunk, Corpus
from ladder.fileio import cache_key
from ladder.paths import shared_dir
from ladder.retrieval import dense
from ladder.retrieval.embedder import Embedder
from ladder.retrieval.lexical import BM25Index
from ladder.spec import CorpusSpec

RRF_K = 60


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float
    rank: int  # 1-based


@dataclass(frozen=True)
class BuildInfo:
    key: str
    cached: bool  # loaded from disk rather than built
    seconds: float
    chunks: int
    index_kind: str


def rrf(rankings: list[list[int]], depth: int) -> list[int]:
    """Reciprocal-rank fusion of several rankings of row ids (-1 = no hit); the best `depth` rows."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, row in enumerate(ranking, start=1):
            if row >= 0:
                scores[row] = scores.get(row, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores, key=lambda r: (-scores[r], r))[:depth]


class Retriever:
    def __init__(self, chunks: list[Chunk], index, bm25: BM25Index, embedder: Embedder, info: BuildInfo):
        self.chunks = chunks
        self.index = index
        self.bm25 = bm25
        self.embedder = embedder
        self.info = info

    def search(self, queries: list[str], k: int, mode: str) -> list[list[Hit]]:
        depth = k if mode != "hybrid" else max(4 * k, 20)
        dense_ids = lexical_ids = None
        if mode in ("dense", "hybrid"):
            _, dense_ids = dense.search(self.index, self.embedder.encode_cached(queries), depth)
        if mode in ("lexical", "hybrid"):
            _, lexical_ids = self.bm25.search(queries, depth)
        out: list[list[Hit]] = []
        for q in range(len(queries)):
            if mode == "dense":
                rows = [int(r) for r in dense_ids[q] if r >= 0][:k]
            elif mode == "lexical":
                rows = [int(r) for r in lexical_ids[q] if r >= 0][:k]
            else:
                rows = rrf([list(map(int, dense_ids[q])), list(map(int, lexical_ids[q]))], k)
            out.append([Hit(self.chunks[r], 1.0 / rank, rank) for rank, r in enumerate(rows, start=1)])
        return out


def index_cache_dir() -> Path:
    return shared_dir("indexes")


def _embed_chunks(embedder: Embedder, texts: list[str], per_step: int = 256) -> np.ndarray:
    """The corpus embedded in steps of ``per_step`` chunks, so an index build reports its progress."""
    from ladder import progress

    if not texts:
        return embedder.encode(texts)
    parts = []
    with progress.track("[index] embedding corpus chunks", total=len(texts), unit="chunk") as bar:
        for first in range(0, len(texts), per_step):
            parts.append(embedder.encode(texts[first : first + per_step]))
            bar.advance(len(parts[-1]))
    return np.concatenate(parts)


def load_or_build(
    corpus: Corpus, spec: CorpusSpec, embedder: Embedder | None = None, root: Path | None = None
) -> Retriever:
    started = time.perf_counter()
    embedder = embedder or Embedder(corpus.embedder)
    chunks = corpus.chunks()
    params = dense.choose_params(spec.index, len(chunks), spec.approx_threshold)
    key = cache_key(
        {
            "format": 1,
            "ladder": ladder.__version__,
            "corpus": corpus.content_hash,
            "chunk_size": corpus.chunk_size,
            "chunk_overlap": corpus.chunk_overlap,
            "embedder": corpus.embedder.identity,
            "index": params.__dict__,
        }
    )
    folder = (root or index_cache_dir()) / key
    import faiss

    if (folder / "done").is_file():
        index = faiss.read_index(str(folder / "dense.faiss"))
        bm25 = BM25Index.load(folder / "bm25")
        cached = True
    else:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{key[:12]}."))
        try:
            vectors = _embed_chunks(embedder, [c.text for c in chunks])
            index = dense.build_index(vectors, params)
            faiss.write_index(index, str(tmp / "dense.faiss"))
            bm25 = BM25Index.build([c.text for c in chunks])
            bm25.save(tmp / "bm25")
            np.save(tmp / "embeddings.npy", vectors)
            (tmp / "chunks.jsonl").write_text("".join(json.dumps(c.__dict__) + "\n" for c in chunks), encoding="utf-8")
            (tmp / "done").write_text(json.dumps({"chunks": len(chunks), "index": params.__dict__}))
            try:
                os.replace(tmp, folder)
            except OSError:
                if not (folder / "done").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        cached = False
    dense.set_search_params(index, spec.ivf_nprobe, spec.hnsw_ef_search)
    info = BuildInfo(key, cached, time.perf_counter() - started, len(chunks), params.kind)
    return Retriever(chunks, index, bm25, embedder, info)
