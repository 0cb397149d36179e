"""Progress of long work: plain lines where there is no terminal (CI logs), rich bars on one; work code
reports through ladder.progress and never prints."""

from __future__ import annotations

import io

from ladder import progress
from ladder.cli import console as display
from ladder.cli.main import main


def test_assess_without_a_terminal_prints_plain_progress_lines(make_task, tmp_path, capsys):
    assert main(["assess", str(make_task()), "--backend", "scripted", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert "[prompt] dev: 0/6 ex" in err and "[fewshot] test: 0/9 ex" in err
    done = [line for line in err if line.startswith("[prompt] test: 9/9 ex, ") and line.endswith("(done)")]
    assert len(done) == 1 and " ex/s" in done[0]


def test_plain_lines_show_rate_time_left_and_the_work_s_numbers(capsys):
    with progress.reporting(display.PlainReporter(every=0.0)):
        with progress.track("[lora] training", total=4, unit="step") as bar:
            bar.advance(1, loss=0.9, tokens_per_s=100.0)
            bar.advance(1, loss=0.5, tokens_per_s=110.0)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "[lora] training: 0/4 step"
    assert (
        lines[2].startswith("[lora] training: 2/4 step, ")
        and "step/s, ~" in lines[2]
        and "left, loss 0.5, tokens per s 110" in lines[2]
    )
    assert lines[-1].endswith("(done)")


def test_rich_bars_on_a_terminal():
    from rich.console import Console

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=140, color_system=None)
    with progress.reporting(display.RichReporter(console)):
        with progress.track("[lora] training", total=3, unit="step") as bar:
            for loss in (0.9, 0.7, 0.4):
                bar.advance(1, loss=loss)
    shown = screen.getvalue()
    assert "[lora] training" in shown and "3/3 step" in shown and "loss 0.4" in shown


def test_library_use_is_silent(capsys):
    assert list(progress.iterate([1, 2, 3], "quiet")) == [1, 2, 3]
    assert capsys.readouterr() == ("", "")
