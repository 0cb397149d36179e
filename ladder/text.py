"""Text normalization shared by metrics and leakage checks (one definition, documented in the README)."""

from __future__ import annotations

import hashlib
import re
import string
import unicodedata

_WS = re.compile(r"\s+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize(text: str) -> str:
    """Unicode NFKC, case-folded, trimmed, internal whitespace collapsed to one space."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def squad_tokens(text: str) -> list[str]:
    """SQuAD-style answer tokens: `normalize`, then punctuation and English articles removed."""
    text = normalize(text)
    text = "".join(ch for ch in text if ch not in _PUNCT and unicodedata.category(ch)[0] != "P")
    text = _ARTICLES.sub(" ", text)
    return text.split()


def short_hash(text: str, n: int = 12) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]
