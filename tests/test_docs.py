"""The docs say what the code does: the task file's field reference is generated from the model, the README stays
one screen and links only to files that exist."""

from __future__ import annotations

import re
from pathlib import Path

from ladder.spec.reference import BEGIN, END, reference

ROOT = Path(__file__).resolve().parent.parent


def test_the_task_file_reference_is_current():
    text = (ROOT / "docs" / "task-file.md").read_text()
    shown = text[text.index(BEGIN) : text.index(END) + len(END) + 1]
    assert shown == reference(), "docs/task-file.md is stale: run `python -m ladder.spec.reference --write`"
    assert "| `max_seq_len` |" in shown and "| `top_k` |" in shown  # rung settings are in it
    assert not [
        line for line in shown.splitlines() if line.startswith("| `") and line.endswith("|  |")
    ]  # all described


def test_the_readme_is_one_screen_and_its_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    links = re.findall(r"\]\(([^)#]+)", readme)
    assert len(links) >= 9
    assert [link for link in links if not link.startswith("http") and not (ROOT / link).exists()] == []


def test_every_doc_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    assert [p.name for p in sorted((ROOT / "docs").glob("*.md")) if f"docs/{p.name}" not in readme] == []
