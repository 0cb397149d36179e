"""Splitting one file into train, dev and test: seeded, stratified by label, equal or near-duplicate inputs kept
in one split; or taking the files a team gave as its splits."""

from __future__ import annotations

import random
import re
from collections import defaultdict

from ladder.data.near import NOT_INSTALLED, duplicate_groups
from ladder.data.near import available as near_available
from ladder.data.read import Source

NEAR_DUPLICATE = (
    0.8  # Jaccard similarity of word pairs at or above which two inputs are one (data.near_duplicate_jaccard)
)

SPLIT_NAMES = {"train": ("train",), "dev": ("dev", "valid", "validation", "val"), "test": ("test", "eval")}


# -- splitting -----------------------------------------------------------------------------------------
def eval_size(n: int) -> int:
    """Examples for dev and for test each: 15%, at least min(100, n/5), at most 500."""
    return min(500, max(round(0.15 * n), min(100, n // 5)))


def split_rows(
    targets: list[str], inputs: list[str], labels: list[str] | None, seed: int
) -> tuple[dict[str, list[int]], list[str]]:
    """Row indexes per split: test and dev of `eval_size` rows each, stratified by label, duplicate groups whole."""
    rng = random.Random(seed)
    groups = duplicate_groups(inputs, NEAR_DUPLICATE, seed)
    notes = []
    merged = sum(len(g) - 1 for g in groups)
    if not near_available():
        notes.append(f"near-duplicate inputs were not grouped (equal ones were): {NOT_INSTALLED}")
    if merged:
        notes.append(
            f"{merged} rows repeat an earlier input (equal after normalization, or near-duplicates): each "
            "group stays in one split"
        )
    size = eval_size(len(targets))
    strata: dict[str, list[list[int]]] = defaultdict(list)
    for group in groups:
        strata[targets[group[0]] if labels else ""].append(group)
    quotas: dict[str, float] = {}
    for key, members in strata.items():
        count = sum(len(g) for g in members)
        if labels and count < 3:
            notes.append(
                f"label {key!r} has {count} example(s), too few to stratify: all go to train, so dev and test "
                "cannot measure it"
            )
            quotas[key] = 0.0
        else:
            quotas[key] = size * count / len(targets)
    out: dict[str, list[int]] = {"train": [], "dev": [], "test": []}
    for key in sorted(strata):
        members = strata[key]
        rng.shuffle(members)
        filled = {"test": 0, "dev": 0}
        for group in members:
            split = next((s for s in ("test", "dev") if filled[s] + len(group) / 2 <= quotas[key]), "train")
            if split != "train":
                filled[split] += len(group)
            out[split] += group
    for split in out:
        out[split].sort()
    return out, notes


def assign_files(sources: list[Source], seed: int) -> dict[str, Source]:
    """train/dev/test by file name (train, dev|valid|validation|val, test|eval), else in the order given;
    with two files, train and test (dev is then split from train)."""
    named: dict[str, Source] = {}
    for s in sources:
        words = set(re.split(r"[^a-z]+", s.path.stem.lower()))
        for split, names in SPLIT_NAMES.items():
            if words & set(names) and split not in named:
                named[split] = s
                break
    if len(named) == len(sources):
        ordered = named
    else:
        ordered = dict(zip(("train", "dev", "test") if len(sources) == 3 else ("train", "test"), sources))
    if len(sources) == 2:
        train = ordered["train"]
        rng = random.Random(seed)
        indexes = list(range(len(train.rows)))
        rng.shuffle(indexes)
        n_dev = min(eval_size(len(train.rows) + len(ordered["test"].rows)), len(train.rows) // 3)
        dev = sorted(indexes[:n_dev])
        keep = sorted(indexes[n_dev:])
        ordered = {
            "train": Source(train.path, [train.rows[i] for i in keep], train.sha256),
            "dev": Source(
                train.path.with_name(train.path.stem + "-dev" + train.path.suffix),
                [train.rows[i] for i in dev],
                train.sha256,
            ),
            "test": ordered["test"],
        }
    return ordered
