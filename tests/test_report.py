"""The report, built once and rendered twice: the HTML holds every section, is self-contained (no
script, no request), draws non-empty SVG plots, and shows the same numbers as the Markdown; several runs
of one task compare over time, paired where their examples match; the committed example reports under
reports/ regenerate byte for byte from their committed run records."""

from __future__ import annotations

import html
import json
from html.parser import HTMLParser

import pytest
from conftest import ROOT

from ladder.cli.main import main
from ladder.record import load_run, save_run
from ladder.report import render, write_report
from ladder.report.build import build_report

GOLDEN = ROOT / "tests" / "golden" / "report" / "run.json"
SHIPPED = sorted((ROOT / "reports" / "records").glob("*.json"))


class _Page(HTMLParser):
    """What a reader's browser would fetch or run, and what is on the page."""

    def __init__(self):
        super().__init__()
        self.sections, self.figures, self.tags, self.fetches, self.text = [], 0, [], [], []
        self.svg_paths = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self.sections.append(attrs["id"])
        if tag == "figure":
            self.figures += 1
        if tag in ("path", "use", "text"):
            self.svg_paths += 1
        for name in ("src", "href", "xlink:href", "srcset", "data"):
            value = attrs.get(name)
            if value and not value.startswith(("#", "data:")):  # an inline data: URI is no request
                self.fetches.append(value)
        if tag == "link" or (tag == "meta" and attrs.get("http-equiv") == "refresh"):
            self.fetches.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def _page(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    return page


def _md_cells(markdown: str) -> list[str]:
    cells = []
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells += [c.strip().replace("\\|", "|") for c in line.strip("|").split(" | ")]
    return [c for c in cells if c]


@pytest.mark.parametrize("record", [GOLDEN, *SHIPPED], ids=lambda p: p.stem)
def test_html_holds_every_section_and_is_self_contained(record):
    run = load_run(record)
    doc = build_report(run)
    text = render([run], "html")
    page = _page(text)
    assert page.sections == [s.id for s in doc.sections]
    expected = {"summary", "paired", "cost", "tokens", "decisions", "setup", "manifest"}
    if run.spec.output.kind == "label":
        expected |= {"labels", "confusion", "examples"}
    if any(r.training for r in run.rungs):
        expected |= {"training", "curves"}
    if any(r.splits["test"].retrieval for r in run.rungs):
        expected.add("retrieval")
    assert expected <= set(page.sections), expected - set(page.sections)
    assert "script" not in page.tags and page.fetches == [], page.fetches
    assert "default-src 'none'" in text  # the page may not fetch anything, even if a later edit tried
    figures = [b for s in doc.sections for b in s.blocks if type(b).__name__ == "Figure"]
    assert page.figures == len(figures) >= 2 and text.count("<svg") == len(figures) and page.svg_paths > 20


@pytest.mark.parametrize("record", [GOLDEN, *SHIPPED], ids=lambda p: p.stem)
def test_markdown_and_html_show_the_same_numbers(record):
    run = load_run(record)
    markdown, page = render([run], "md"), _page(render([run], "html"))
    shown = html.unescape(" ".join(page.text))
    cells = _md_cells(markdown)
    assert len(cells) > 30
    for cell in cells:
        plain = cell.replace("`", "").replace("**", "")
        assert plain in shown, plain
    assert "<svg" not in markdown and "## Confusion matrix" not in markdown  # the PR comment stays compact


def test_examples_won_and_lost_show_input_both_outputs_and_target(make_task, tmp_path):
    from ladder.backends.scripted import ScriptedBackend
    from ladder.run.assess import assess
    from ladder.spec import load_task

    # the prompt rung answers "weather" to everything; fewshot prompts (with demonstrations) get "music" right
    def answer(prompt: str) -> str:
        with_demos = prompt.count("Text: ") > 1
        return "music" if with_demos and "song" in prompt.rsplit("Text: ", 1)[-1] else "weather"

    run, out = assess(
        load_task(make_task()), backend=ScriptedBackend(responder=answer), out_dir=tmp_path / "run", exhaustive=True
    )
    text = render([run], "html")
    page = html.unescape("".join(_page(text).text))
    assert (
        "fewshot vs prompt: 3 won, 0 lost, 6 unchanged of 9 (accuracy; the 3 biggest changes each way shown" in page
    ), page[page.find("won") :][:200]
    row = next(line for line in text.splitlines() if "<td>won</td>" in line)
    cells = [html.unescape(c.split("</td>")[0]) for c in row.split("<td>")[2:]]
    assert cells == ["test-2", "play a song by place test 2", "weather", "music", "music"]


def test_assess_writes_both_reports_and_the_cli_renders_either(make_task, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["assess", str(make_task()), "--backend", "scripted", "--out", str(out)]) == 0
    assert (out / "report.md").read_text().startswith("# ladder report: tiny")
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert load_run(out).command == f"ladder assess {make_task()} --backend scripted --out {out}"
    assert main(["report", str(out / "run.json"), "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text() == (out / "report.html").read_text()
    assert main(["report", str(out), "--format", "md", "--out", str(tmp_path / "r.txt")]) == 0
    assert (tmp_path / "r.txt").read_text() == (out / "report.md").read_text()
    capsys.readouterr()
    assert main(["report", str(out), "--out", str(tmp_path / "r.txt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out:") and "give --format" in err and err.count("\n") == 1


def _rescored(run, flip: set[str], run_id: str, created: str):
    """The same run with the test answers of ``flip`` made wrong (another week's model, say)."""
    again = run.model_copy(deep=True)
    again.run_id, again.created = run_id, created
    for rung in again.rungs:
        for e in rung.examples:
            if e.split == "test" and e.id in flip:
                e.scores = {k: 0.0 for k in e.scores}
    return again


def test_runs_of_one_task_compare_over_time_paired_where_examples_match(tmp_path, capsys):
    run = load_run(GOLDEN)
    right = [e.id for e in run.rungs[0].examples if e.split == "test" and e.scores["accuracy"] == 1.0]
    later = _rescored(run, set(right[:3]), "20260201-000000-later", "2026-02-01T00:00:00+00:00")
    fewer = later.model_copy(deep=True)
    fewer.run_id, fewer.created = "20260301-000000-fewer", "2026-03-01T00:00:00+00:00"
    for rung in fewer.rungs:
        rung.examples = [e for e in rung.examples if e.id != right[0]]
    folders = []
    for r in (later, run, fewer):  # given out of order: the comparison sorts by creation time
        folder = tmp_path / r.run_id
        save_run(r, folder / "run.json")
        folders.append(str(folder))
    assert main(["report", *folders, "--format", "md"]) == 0
    text = (tmp_path / "20260301-000000-fewer" / "comparison.md").read_text()
    assert text.startswith("# ladder comparison: tiny")
    assert text.index("2026-01-01 golden") < text.index("2026-02-01 -later")
    # golden -> later: 3 test answers turned wrong on each rung, paired on the same 9 examples
    assert "| prompt | 2026-01-01 golden → 2026-02-01 -later | test | -0.333 [" in text
    assert "| 0 / 3 |" in text and "mcnemar, n=9" in text
    assert (
        "| prompt | 2026-02-01 -later → 2026-03-01 -fewer | test | — | — | — | not paired: different examples (9 vs 8) |"
        in text
    )
    html_text = render([run, later], "html")
    assert 'data-plot="over_time"' in html_text and "<script" not in html_text


def test_a_comparison_of_different_tasks_is_refused_in_one_line(tmp_path, capsys):
    run = load_run(GOLDEN)
    other = run.model_copy(deep=True)
    other.task_name = "other"
    for r, name in ((run, "a"), (other, "b")):
        save_run(r, tmp_path / name / "run.json")
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a comparison is of one task's runs" in err


def test_write_report_reads_only_the_record(tmp_path):
    run = load_run(GOLDEN)
    save_run(run, tmp_path / "run.json")
    path = write_report(tmp_path)
    assert path.name == "report.md" and (tmp_path / "report.html").is_file()


@pytest.mark.parametrize("record", SHIPPED, ids=lambda p: p.stem)
def test_committed_example_reports_regenerate_byte_for_byte(record):
    """`make reports` renders reports/<task>.{md,html} from reports/records/<task>.json; they are committed
    as rendered, so a change to the report shows up here and in the diff of the examples."""
    run = load_run(record)
    for fmt in ("md", "html"):
        committed = (ROOT / "reports" / f"{record.stem}.{fmt}").read_text(encoding="utf-8")
        assert render([run], fmt) == committed, f"reports/{record.stem}.{fmt} is stale: run `make reports`"


def test_every_shipped_task_has_a_committed_record():
    from ladder.spec import load_task

    tasks = sorted(load_task(p).spec.name for p in (ROOT / "tasks").glob("*/*.yaml"))  # task.yaml, distill.yaml
    assert sorted(p.stem for p in SHIPPED) == tasks
    for record in SHIPPED:
        raw = json.loads(record.read_text())
        assert raw["status"] == "complete" and raw["task_name"] == record.stem


def test_no_report_step_raises_on_edge_values(tmp_path):
    """A rung that scored 0/150 in an older record has a Wilson low bound 1.7e-18 above its mean 0.0 (the plot's
    error bars went negative and report.html was never written); a perfect rung sits on 1.0. Both render."""
    run = load_run(GOLDEN)
    first, last = run.rungs[0], run.rungs[-1]
    for split in first.splits.values():
        for name, m in split.metrics.items():
            split.metrics[name] = m.model_copy(update={"mean": 0.0, "low": 1.7e-18, "high": 0.025})
    for split in last.splits.values():
        for name, m in split.metrics.items():
            split.metrics[name] = m.model_copy(update={"mean": 1.0, "low": 0.976, "high": 1.0})
    text = render([run], "html")
    assert _page(text).figures >= 2
    assert "0.000" in render([run], "md")


def test_a_figure_drawn_before_from_the_same_numbers_is_not_drawn_again(tmp_path, monkeypatch):
    from ladder.report import plots
    from ladder.run.cache import ResultCache

    store = ResultCache(tmp_path / "figures")
    data = {"labels": ["a", "b"], "columns": ["a", "b"], "counts": [[3, 1], [0, 4]]}
    first = plots.drawn("confusion", data, "s-1", store)
    assert first == plots.render("confusion", data, "s-1") and first.startswith("<svg")

    def no_drawing(*args):
        raise AssertionError("drawn again")

    monkeypatch.setattr(plots, "render", no_drawing)
    assert plots.drawn("confusion", data, "s-1", store) == first  # kept: matplotlib not even imported
    with pytest.raises(AssertionError, match="drawn again"):  # other numbers are a miss, never a stale hit
        plots.drawn("confusion", {**data, "counts": [[3, 1], [1, 4]]}, "s-1", store)
    with pytest.raises(AssertionError, match="drawn again"):
        plots.drawn("confusion", data, "s-2", store)  # another salt: other element ids
    monkeypatch.setattr(plots, "__file__", str(tmp_path / "edited.py"))
    (tmp_path / "edited.py").write_text("# the plotting code changed\n")
    with pytest.raises(AssertionError, match="drawn again"):
        plots.drawn("confusion", data, "s-1", store)  # the code that draws is part of the key
