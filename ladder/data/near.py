"""Near-duplicate inputs: word-pair shingles, Jaccard similarity, MinHash LSH candidates confirmed exactly
(the leakage checks and `ladder init`'s split)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from ladder.extras import pip_line
from ladder.text import normalize, squad_tokens

NOT_INSTALLED = f"datasketch is not installed (`{pip_line(['checks'])}`)"


def available() -> bool:
    """Near-duplicates are found by MinHash LSH (datasketch, in ``ladder[checks]``); a core install finds exact ones."""
    import importlib.util

    return importlib.util.find_spec("datasketch") is not None


def shingles(text: str) -> set[str]:
    """Word pairs: templated inputs that differ in their one key word ("atomic number of Osmium" vs "of
    Iridium") stay apart; a copy with a word or two changed in a longer text does not."""
    words = squad_tokens(text) or [normalize(text)]
    return {" ".join(words[i : i + 2]) for i in range(max(1, len(words) - 1))}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def near_pairs(
    texts: list[str], threshold: float, seed: int = 0, pairs_of: Callable[[int, int], bool] = lambda i, j: True
) -> list[tuple[int, int, float]]:
    """(i, j, Jaccard) for pairs of texts whose word-pair sets are at least ``threshold`` similar: MinHash LSH
    (datasketch) proposes candidates, the exact Jaccard confirms them; ``pairs_of`` says which pairs count.
    LSH banding misses some pairs just above its threshold, so it is asked for pairs 0.2 below it."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=max(0.1, threshold - 0.2), num_perm=128)
    sets = [shingles(t) for t in texts]
    found = []
    for i, words in enumerate(sets):
        signature = MinHash(num_perm=128, seed=seed)
        signature.update_batch([w.encode() for w in words])
        for j in lsh.query(signature):
            if pairs_of(j, i):
                similarity = jaccard(words, sets[j])
                if similarity >= threshold:
                    found.append((j, i, similarity))
        lsh.insert(i, signature)
    return found


def duplicate_groups(inputs: list[str], threshold: float, seed: int) -> list[list[int]]:
    """Rows whose inputs are equal after normalization, or near-duplicates, in one group (union-find)."""
    parent = list(range(len(inputs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, text in enumerate(inputs):
        key = " ".join(squad_tokens(text)) or normalize(text)
        if key in first:
            parent[find(i)] = find(first[key])
        else:
            first[key] = i
    kept = list(first.values())
    for a, b, _ in [] if not available() else near_pairs([inputs[i] for i in kept], threshold, seed):
        parent[find(kept[a])] = find(kept[b])
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(inputs)):
        groups[find(i)].append(i)
    return list(groups.values())


# --- the cheap checks ---------------------------------------------------------------------------------
