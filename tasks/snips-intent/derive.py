"""Derive the SNIPS intent splits from the BIG-bench sdist (PyPI bigbench==1.0.0).

    python tasks/snips-intent/derive.py [--sdist bigbench-1.0.0.tar.gz]

Without --sdist it runs `pip download --no-deps bigbench==1.0.0` into a temporary folder (358 MB).
Reads bigbench/benchmark_tasks/intent_recognition/task.json from the tarball without extracting it,
strips the "Utterance: " prefix, takes the label with target score 1, and writes a stratified split
(same label proportions in every split; largest-remainder allocation) with a fixed seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path

MEMBER = "bigbench-1.0.0/bigbench/benchmark_tasks/intent_recognition/task.json"
SIZES = {"test": 250, "dev": 100}  # the rest is train
SEED = 13
HERE = Path(__file__).resolve().parent


def allocate(counts: dict[str, int], total: int, size: int) -> dict[str, int]:
    """Split `size` over labels in proportion to counts (largest remainder, ties by label name)."""
    exact = {k: c * size / total for k, c in counts.items()}
    alloc = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: (-(exact[k] - alloc[k]), k))[: size - sum(alloc.values())]:
        alloc[k] += 1
    return alloc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sdist", type=Path)
    args = parser.parse_args()
    sdist = args.sdist
    if sdist is None:
        tmp = Path(tempfile.mkdtemp())
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "bigbench==1.0.0", "-d", str(tmp)], check=True
        )
        sdist = tmp / "bigbench-1.0.0.tar.gz"
    raw = tarfile.open(sdist).extractfile(MEMBER).read()
    print(f"task.json sha256 {hashlib.sha256(raw).hexdigest()}")
    task = json.loads(raw)
    rows = []
    for index, example in enumerate(task["examples"]):
        text = example["input"]
        assert text.startswith("Utterance: "), text
        labels = [k for k, v in example["target_scores"].items() if v == 1]
        assert len(labels) == 1, example
        rows.append({"id": f"snips-{index:03d}", "text": text[len("Utterance: ") :].strip(), "label": labels[0]})

    rng = random.Random(SEED)
    by_label: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    for pool in by_label.values():
        rng.shuffle(pool)
    counts = {k: len(v) for k, v in by_label.items()}
    splits: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    taken = dict.fromkeys(counts, 0)
    for split, size in SIZES.items():
        for label, n in allocate(counts, len(rows), size).items():
            splits[split] += by_label[label][taken[label] : taken[label] + n]
            taken[label] += n
    for label, pool in by_label.items():
        splits["train"] += pool[taken[label] :]
    (HERE / "data").mkdir(exist_ok=True)
    for split, items in splits.items():
        rng.shuffle(items)
        with open(HERE / "data" / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            for item in items:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        print(split, len(items))


if __name__ == "__main__":
    main()
