"""The sentence embedder (sentence-transformers, CPU by default), loaded from a local folder only."""

from __future__ import annotations

import os

import numpy as np

from ladder.data.corpus import EmbedderRef
from ladder.fileio import cache_key
from ladder.paths import shared_dir


class Embedder:
    def __init__(self, ref: EmbedderRef, device: str = "cpu", batch_size: int = 64):
        self.ref = ref
        self.device = device
        self.batch_size = batch_size
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from ladder.extras import require

            require(["rag"], f"the embedder {self.ref.name!r}")
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub: the folder is all there is
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.ref.path), device=self.device)
        return self._model

    @property
    def dimension(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors (inner product = cosine similarity)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_cached(self, texts: list[str]) -> np.ndarray:
        """`encode`, memoized on disk by (embedder identity, texts): re-runs do not embed again."""
        key = cache_key({"embedder": self.ref.identity, "texts": texts})
        path = shared_dir("embeddings") / key[:2] / f"{key}.npy"
        if path.is_file():
            return np.load(path)
        vectors = self.encode(texts)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{key}.{os.getpid()}.npy")
        np.save(tmp, vectors)
        os.replace(tmp, path)
        return vectors
