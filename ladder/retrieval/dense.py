"""faiss indexes over unit vectors (inner product): exact for small corpora, IVF or HNSW above a size."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IndexParams:
    kind: str  # "exact" | "ivf" | "hnsw"
    ivf_nlist: int = 0
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80


def choose_params(kind: str, n: int, approx_threshold: int) -> IndexParams:
    if kind == "auto":
        kind = "exact" if n < approx_threshold else "hnsw"
    if kind == "ivf":
        # ~4*sqrt(n) lists, and at least ~39 training points per list as faiss advises
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39 or 1))
        return IndexParams("ivf", ivf_nlist=nlist)
    return IndexParams(kind)


def build_index(vectors: np.ndarray, params: IndexParams, seed: int = 0):
    import faiss

    dim = vectors.shape[1]
    if params.kind == "exact":
        index = faiss.IndexFlatIP(dim)
    elif params.kind == "ivf":
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, params.ivf_nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(vectors)
    elif params.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params.hnsw_ef_construction
    else:
        raise ValueError(f"unknown index kind {params.kind!r}")
    index.add(vectors)
    return index


def set_search_params(index, nprobe: int, ef_search: int) -> None:
    import faiss

    if isinstance(index, faiss.IndexIVF):
        index.nprobe = nprobe
    elif isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = ef_search


def search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, row ids), each (n_queries, k); missing hits have id -1."""
    k = min(k, index.ntotal)
    scores, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return scores, ids
