"""BM25 over chunks (the bm25s library). Codes, names and acronyms are kept whole: the token pattern keeps
runs like `1-103`, `forget-me-not` or `U.S` as one token, where dense retrieval is weak."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TOKEN_PATTERN = r"(?u)\w+(?:[-.']\w+)*"


def _tokenize(texts: list[str]):
    import bm25s

    return bm25s.tokenize(texts, lower=True, stopwords="en", token_pattern=TOKEN_PATTERN, show_progress=False)


class BM25Index:
    def __init__(self, retriever):
        self.retriever = retriever

    @classmethod
    def build(cls, texts: list[str]) -> BM25Index:
        import bm25s

        retriever = bm25s.BM25()
        retriever.index(_tokenize(texts), show_progress=False)
        return cls(retriever)

    def save(self, folder: Path) -> None:
        self.retriever.save(str(folder))

    @classmethod
    def load(cls, folder: Path) -> BM25Index:
        import bm25s

        return cls(bm25s.BM25.load(str(folder)))

    def search(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, row ids), each (n_queries, k); rows with score 0 are not matches and get id -1."""
        n_docs = int(self.retriever.scores["num_docs"])
        k = min(k, n_docs)
        tokens = _tokenize(queries)
        ids, scores = self.retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        ids = np.asarray(ids, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float32)
        ids[scores <= 0] = -1
        return scores, ids
