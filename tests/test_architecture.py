"""The walls, enforced: the import-linter contracts in pyproject.toml (the layers of the data path, pure packages
free of model code, no rung holding a backend, HF internals in backends/hf), no import circle, and modules a
reader can hold in mind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
LONGEST = 400  # lines: past this a module is asking to be split (docs/architecture.md)


def test_the_import_contracts_are_kept():
    linter = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert done.stdout.count(" KEPT") >= 4 and "BROKEN" not in done.stdout


def _circles(graph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), over ladder's own imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if not w.startswith("ladder"):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_circle():
    graph = grimp.build_graph("ladder", exclude_type_checking_imports=True)
    assert len(graph.modules) > 60  # the whole package was read
    assert _circles(graph) == []


def test_the_circle_finder_finds_a_circle():
    class Graph:  # a -> b -> c -> a, and d alone
        modules = {"ladder.a", "ladder.b", "ladder.c", "ladder.d"}
        edges = {"ladder.a": {"ladder.b"}, "ladder.b": {"ladder.c"}, "ladder.c": {"ladder.a"}, "ladder.d": {"ladder.a"}}

        def find_modules_directly_imported_by(self, module):
            return self.edges.get(module, set())

    assert _circles(Graph()) == [["ladder.a", "ladder.b", "ladder.c"]]


def test_no_module_is_too_long_to_read():
    lengths = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in (ROOT / "ladder").rglob("*.py")}
    assert len(lengths) > 60
    assert {path: n for path, n in lengths.items() if n > LONGEST} == {}


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / name), *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_lint_and_format_are_clean():
    lint = _tool("ruff", "check", "ladder", "tests", "bench")
    assert lint.returncode == 0, lint.stdout[-3000:]
    formatted = _tool("ruff", "format", "--check", "ladder", "tests", "bench")
    assert formatted.returncode == 0, formatted.stdout[-3000:]


def test_the_type_checker_is_clean_on_the_pure_packages():
    """mypy --strict over spec, data, metrics, record, scoring, decide, gate and report (pyproject.toml)."""
    checked = _tool("mypy")
    assert checked.returncode == 0 and "Success: no issues found" in checked.stdout, checked.stdout[-3000:]
