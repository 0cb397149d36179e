"""Derive the quiz-facts task from the Debian package bsdgames (its `quiz` tables, BSD license).

    python tasks/quiz-facts/derive.py [--quiz-dir /usr/share/games/bsdgames/quiz]

Without --quiz-dir it runs `apt-get download bsdgames` and `dpkg-deb -x` into a temporary folder.
Each fact row of five less famous tables becomes one short corpus document and one question; answers
keep the tables' own alternatives (`a|b`, `{optional}`). Rows are split by entity (one question per
entity), stratified by table, with a fixed seed, so no held-out entity's question is in train or dev.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 7
FRACTIONS = {"test": 0.35, "dev": 0.15}  # the rest is train


def expand(pattern: str) -> list[str]:
    """All forms of a quiz answer pattern, the canonical one first.

    `a|b`: alternatives; `{x}`: optional x (the form with it comes first); `[x]`: grouping.
    """
    pos = 0

    def alts() -> list[str]:
        nonlocal pos
        out = seq()
        while pos < len(pattern) and pattern[pos] == "|":
            pos += 1
            out += seq()
        return out

    def seq() -> list[str]:
        nonlocal pos
        forms = [""]
        while pos < len(pattern) and pattern[pos] not in "|}]":
            ch = pattern[pos]
            if ch in "{[":
                pos += 1
                inner = alts()
                pos += 1  # the closing bracket
                options = inner + [""] if ch == "{" else inner
            else:
                start = pos
                while pos < len(pattern) and pattern[pos] not in "|{}[]":
                    pos += 1
                options = [pattern[start:pos]]
            forms = [f + o for f in forms for o in options]
        return forms

    seen, result = set(), []
    for form in alts():
        form = re.sub(r"\s+", " ", form).strip()
        if form and form not in seen:
            seen.add(form)
            result.append(form)
    return result


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def rows(quiz: Path, name: str, columns: int) -> list[list[str]]:
    """Rows of a table; the last column keeps any further colons (UCC 3-201 "transfer: right to ...")."""
    return [
        line.split(":", columns - 1)
        for line in (quiz / name).read_text(encoding="latin-1").splitlines()
        if line.strip()
    ]


def build(quiz: Path) -> tuple[list[dict], list[dict]]:
    docs: list[dict] = []
    questions: list[dict] = []

    def add(table: str, key: str, doc_text: str, question: str, answer_pattern: str) -> None:
        answers = expand(answer_pattern)
        doc_id = f"{table}-{slug(key)}"
        known = next((q for q in questions if q["doc_id"] == doc_id), None)
        if known is not None:  # the same entity on two rows (collectives: "bees" and "bees|locusts"): merge
            forms = [known["answer"], *known["alternatives"]]
            known["alternatives"] += [a for a in answers if a not in forms]
            doc = next(d for d in docs if d["id"] == doc_id)
            if doc_text not in doc["text"]:
                doc["text"] += " " + doc_text
            return
        docs.append({"id": doc_id, "text": doc_text})
        questions.append(
            {
                "id": f"q-{doc_id}",
                "question": question,
                "answer": answers[0],
                "alternatives": answers[1:],
                "doc_id": doc_id,
                "table": table,
            }
        )

    for state, capital, abbr, flower in rows(quiz, "state", 4):
        name, flowers = expand(state)[0], expand(flower)
        if flowers[0] == "gok":  # "God only knows": the table has no flower for this state
            continue
        add(
            "state",
            name,
            f"{name} (postal abbreviation {expand(abbr)[0]}): capital {expand(capital)[0]}; "
            f"state flower: {flowers[0]}.",
            f"What is the state flower of {name}?",
            flower,
        )
    for section, title in rows(quiz, "ucc", 2):
        add(
            "ucc",
            section,
            f"Uniform Commercial Code section {section}: {expand(title)[0]}.",
            f"What does section {section} of the Uniform Commercial Code cover?",
            title,
        )
    for individuals, collective in rows(quiz, "collectives", 2):
        who = expand(individuals)
        add(
            "collectives",
            who[0],
            f"A group of {' or '.join(who)} is called a {' or a '.join(expand(collective))}.",
            f"What is a group of {who[0]} called?",
            collective,
        )
    for symbol, number, weight, element in rows(quiz, "elements", 4):
        name = expand(element)[0]
        add(
            "elements",
            name,
            f"{name} (chemical symbol {symbol}) has atomic number {number} and atomic weight {weight}.",
            f"What is the atomic number of {name}?",
            number,
        )
    for flower, meaning in rows(quiz, "flowers", 2):
        name = expand(flower)[0]
        add(
            "flowers",
            name,
            f'In the language of flowers, {name} means "{expand(meaning)[0]}".',
            f"In the language of flowers, what does {name} mean?",
            meaning,
        )
    ids = [d["id"] for d in docs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    assert not dupes, f"document ids must be unique: {dupes}"
    return docs, questions


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quiz-dir", type=Path)
    args = parser.parse_args()
    quiz = args.quiz_dir
    if quiz is None:
        tmp = Path(tempfile.mkdtemp())
        subprocess.run(["apt-get", "download", "bsdgames"], cwd=tmp, check=True)
        deb = next(tmp.glob("bsdgames_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "x")], check=True)
        quiz = tmp / "x" / "usr" / "share" / "games" / "bsdgames" / "quiz"
    docs, questions = build(quiz)
    rng = random.Random(SEED)
    splits: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    for table in sorted({q["table"] for q in questions}):
        pool = [q for q in questions if q["table"] == table]
        rng.shuffle(pool)
        n_test, n_dev = round(len(pool) * FRACTIONS["test"]), round(len(pool) * FRACTIONS["dev"])
        splits["test"] += pool[:n_test]
        splits["dev"] += pool[n_test : n_test + n_dev]
        splits["train"] += pool[n_test + n_dev :]
    (HERE / "data").mkdir(exist_ok=True)
    with open(HERE / "data" / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for doc in docs:
            handle.write(json.dumps(doc, ensure_ascii=False) + "\n")
    for split, items in splits.items():
        rng.shuffle(items)
        with open(HERE / "data" / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            for item in items:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        print(split, len(items))
    print("corpus", len(docs))


if __name__ == "__main__":
    main()
