"""Derive the us-address task from the usaddress sdist (PyPI usaddress==0.5.16, MIT).

    python tasks/us-address/derive.py [--sdist usaddress-0.5.16.tar.gz]

Without --sdist it runs `pip download --no-deps --no-binary :all: --no-build-isolation
usaddress==0.5.16` into a temporary folder. Reads training/labeled.xml from the tarball (1,513
hand-labelled US addresses, each token tagged with a USPS/FGDC tag) and turns each address into
(input: the address as written, target: canonical JSON of its tagged parts). See SOURCE.md for the rules.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tarfile
import tempfile
import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # ladder's checks, from this repository

MEMBER = "usaddress-0.5.16/training/labeled.xml"
HERE = Path(__file__).resolve().parent
SEED = 11
SIZES = {"test": 300, "dev": 150}  # the rest is train
TRAILING = ",;"
NEAR_DUPLICATE = 0.8  # ladder's data.near_duplicate_jaccard default


def parse(element: ET.Element) -> tuple[str, dict]:
    text = "".join(element.itertext()).strip()
    runs: list[tuple[str, list[str]]] = []  # contiguous runs of one tag
    for token in element:
        word = (token.text or "").strip().rstrip(TRAILING).strip()
        if not word:
            continue
        if runs and runs[-1][0] == token.tag:
            runs[-1][1].append(word)
        else:
            runs.append((token.tag, [word]))
    parts: dict[str, list[str]] = {}
    for tag, words in runs:
        parts.setdefault(tag, []).append(" ".join(words))
    fields = {tag: values[0] if len(values) == 1 else values for tag, values in parts.items()}
    return text, fields


def canonical(fields: dict) -> str:
    return json.dumps(fields, sort_keys=True, ensure_ascii=False)


def normalized(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sdist", type=Path)
    args = parser.parse_args()
    sdist = args.sdist
    if sdist is None:
        tmp = Path(tempfile.mkdtemp())
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--no-build-isolation",
                "usaddress==0.5.16",
                "-d",
                str(tmp),
            ],
            check=True,
        )
        sdist = tmp / "usaddress-0.5.16.tar.gz"
    root = ET.fromstring(tarfile.open(sdist).extractfile(MEMBER).read())
    rows, seen, duplicates = [], set(), 0
    for index, element in enumerate(root):
        text, fields = parse(element)
        if not text or not fields:
            continue
        key = normalized(text)
        if key in seen:  # the same address twice: keep the first, so no input sits in two splits
            duplicates += 1
            continue
        seen.add(key)
        rows.append({"id": f"addr-{index:04d}", "address": text, "parsed": canonical(fields)})
    random.Random(SEED).shuffle(rows)
    splits = {
        "test": rows[: SIZES["test"]],
        "dev": rows[SIZES["test"] : SIZES["test"] + SIZES["dev"]],
        "train": rows[SIZES["test"] + SIZES["dev"] :],
    }
    # `ladder check-data` found test addresses equal to a train/dev address but for punctuation and case
    # ("10 S. Dearborn, Chicago" / "10 S Dearborn, Chicago"): near-duplicate leakage, dropped from test.
    from ladder.data.near import near_pairs

    seen_rows = splits["train"] + splits["dev"]
    texts = [r["address"] for r in seen_rows] + [r["address"] for r in splits["test"]]
    leaked = {
        b - len(seen_rows)
        for _a, b, _s in near_pairs(texts, NEAR_DUPLICATE, 0, pairs_of=lambda a, b: a < len(seen_rows) <= b)
    }
    splits["test"] = [r for i, r in enumerate(splits["test"]) if i not in leaked]
    print("near-duplicates of train/dev dropped from test", len(leaked))
    (HERE / "data").mkdir(exist_ok=True)
    for split, items in splits.items():
        with open(HERE / "data" / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            for item in items:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        print(split, len(items))
    print("duplicates dropped", duplicates)


if __name__ == "__main__":
    main()
