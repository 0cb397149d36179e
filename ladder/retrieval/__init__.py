"""Retrieval: the sentence embedder, faiss dense indexes, BM25, hybrid fusion, and the on-disk index cache.

Heavy libraries (sentence-transformers, faiss, bm25s) are imported inside the functions that need them.
"""
