"""The HTML report as a person sees it: headless Chromium (Debian's `chromium`, installed by `make browser`
and by .ci/run) opens it with no console error and no request beyond the file itself, the plots are drawn
(non-empty SVG with a size on the page), and one screenshot is kept as a test artifact
(test-artifacts/report.png). Skips only where no browser is installed, except under CI, which installs
one (LADDER_REQUIRE_BROWSER=1 turns the skip into a failure)."""

from __future__ import annotations

import os
import shutil

import pytest
from conftest import ROOT

from ladder.record import load_run
from ladder.report import render

ARTIFACTS = ROOT / "test-artifacts"


def _browser() -> tuple[str, object]:
    executable = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    try:
        import playwright.sync_api as api
    except ImportError:
        api = None
    if executable is None or api is None:
        missing = "chromium (`make browser`)" if executable is None else "playwright (`make setup`)"
        if os.environ.get("LADDER_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{missing} is not installed but LADDER_REQUIRE_BROWSER=1")
        pytest.skip(f"{missing} is not installed")
    return executable, api


def _record():
    """The richest committed record: a label task with a trained rung (every plot kind but the comparison)."""
    shipped = ROOT / "reports" / "records" / "snips-intent.json"
    return load_run(shipped if shipped.is_file() else ROOT / "tests" / "golden" / "report" / "run.json")


def test_report_opens_in_chromium_without_errors_or_requests(tmp_path):
    executable, api = _browser()
    run = load_run(ROOT / "tests" / "golden" / "report" / "run.json")
    page_file = tmp_path / "report.html"
    page_file.write_text(render([_record()], "html"), encoding="utf-8")
    comparison = tmp_path / "comparison.html"
    later = run.model_copy(update={"run_id": "20260201-000000-later", "created": "2026-02-01T00:00:00+00:00"})
    comparison.write_text(render([run, later], "html"), encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    with api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            for path, shot in ((page_file, "report.png"), (comparison, "comparison.png")):
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                problems, requests = [], []
                page.on(
                    "console",
                    lambda m: (
                        problems.append(f"console {m.type}: {m.text}")  # noqa: B023 (called while this page loads)
                        if m.type in ("error", "warning")
                        else None
                    ),
                )
                page.on("pageerror", lambda e: problems.append(f"page error: {e}"))  # noqa: B023 (called while this page loads)
                page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))  # noqa: B023 (called while this page loads)
                page.on("request", lambda r: requests.append(r.url))  # noqa: B023 (called while this page loads)
                page.goto(path.as_uri())
                page.wait_for_load_state("networkidle")
                assert problems == [] and requests == [path.as_uri()], (problems, requests)
                plots = page.evaluate("""() => [...document.querySelectorAll('figure.plot')].map(f => {
                    const svg = f.querySelector('svg'); const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
                    return {kind: f.dataset.plot, width: box.width, height: box.height,
                            marks: svg ? svg.querySelectorAll('path, text, use').length : 0,
                            caption: (f.querySelector('figcaption') || {}).textContent || ''};
                })""")
                assert plots, "no plot on the page"
                for plot in plots:
                    assert plot["width"] > 200 and plot["height"] > 100 and plot["marks"] > 10, plot
                    assert plot["caption"].strip(), plot
                title = page.evaluate("() => document.querySelector('h1').textContent")
                assert title.startswith(("ladder report:", "ladder comparison:"))
                page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
                page.close()
        finally:
            browser.close()
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
