"""Derive the review-reply task from the VADER sdist (PyPI vaderSentiment==3.3.2, MIT).

    python tasks/review-reply/derive.py [--sdist vaderSentiment-3.3.2.tar.gz]

Without --sdist it runs `pip download --no-deps --no-binary :all: vaderSentiment==3.3.2` into a temporary folder
(2.4 MB). Reads additional_resources/hutto_ICWSM_2014.tar.gz inside it without extracting anything to disk, and its
amazonReviewSnippets_GroundTruth.txt: 3,708 Amazon review snippets, each with the mean sentiment rating of 20
people (-4 extremely negative .. +4 extremely positive; Hutto & Gilbert, ICWSM 2014).

- The task's inputs: the clearly negative snippets (mean <= -1.5; one of any with the same words), split by review (a review's snippets stay in
  one split: its id is `<review>_<snippet>`), seed 7: test 80, dev 50, train 60 inputs.
- The calibration set (data/human_grades.jsonl): 25 snippets per rounded rating (-4..4, all of a rating that has
  fewer), from reviews no split uses; `output` is the snippet, `grade` its people's mean mapped to 1..5
  (1 + (mean + 4) / 2), `input` one fixed line (the people rated the snippets alone).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import re
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path

INNER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
MEMBER = "hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt"
SIZES = {"test": 80, "dev": 50, "train": 60}
PER_RATING = 25
SEED = 7
CALIBRATION_INPUT = "A customer's review of a product."
HERE = Path(__file__).resolve().parent


def read_snippets(sdist: Path) -> list[tuple[str, float, str]]:
    inner = tarfile.open(sdist).extractfile(INNER).read()
    raw = tarfile.open(fileobj=io.BytesIO(inner)).extractfile(MEMBER).read()
    print(f"{MEMBER} sha256 {hashlib.sha256(raw).hexdigest()}")
    rows = []
    for line in raw.decode("utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[2].strip():
            rows.append((parts[0].lstrip("\ufeff"), float(parts[1]), " ".join(parts[2].split())))
    return rows


def words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sdist", type=Path)
    args = parser.parse_args()
    sdist = args.sdist
    if sdist is None:
        tmp = Path(tempfile.mkdtemp())
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "vaderSentiment==3.3.2"]
        subprocess.run([*cmd, "-d", str(tmp)], check=True)
        sdist = tmp / "vaderSentiment-3.3.2.tar.gz"
    rows = read_snippets(sdist)
    rng = random.Random(SEED)
    by_review: dict[str, list[tuple[str, float, str]]] = defaultdict(list)
    for row in rows:
        by_review[row[0].split("_")[0]].append(row)
    reviews = sorted(by_review, key=int)
    rng.shuffle(reviews)
    splits: dict[str, list[dict]] = {s: [] for s in SIZES}
    used: set[str] = set()
    seen: set[str] = set()  # the same words twice ("buyer beware." in two reviews) would leak across splits
    for review in reviews:
        negative = []
        for row in by_review[review]:
            if row[1] <= -1.5 and words(row[2]) not in seen:
                negative.append(row)
                seen.add(words(row[2]))
        todo = [s for s in SIZES if len(splits[s]) < SIZES[s]]
        if not negative or not todo:
            continue
        split = todo[0]
        for snippet_id, _mean, text in negative[: SIZES[split] - len(splits[split])]:
            splits[split].append({"id": f"amazon-{snippet_id}", "review": text})
        used.add(review)
    buckets: dict[int, list[tuple[str, float, str]]] = defaultdict(list)
    for review in sorted(by_review, key=int):
        if review not in used:
            for row in by_review[review]:
                buckets[round(row[1])].append(row)
    grades = []
    for rating in sorted(buckets):
        pool = buckets[rating]
        rng.shuffle(pool)
        for snippet_id, mean, text in pool[:PER_RATING]:
            grades.append(
                {
                    "id": f"amazon-{snippet_id}",
                    "review": CALIBRATION_INPUT,
                    "output": text,
                    "grade": round(1 + (mean + 4) / 2, 4),
                    "people_mean": mean,
                }
            )
    rng.shuffle(grades)
    (HERE / "data").mkdir(exist_ok=True)
    for name, items in [*splits.items(), ("human_grades", grades)]:
        with open(HERE / "data" / f"{name}.jsonl", "w", encoding="utf-8") as handle:
            for item in items:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        print(f"{name}: {len(items)}")


if __name__ == "__main__":
    main()
