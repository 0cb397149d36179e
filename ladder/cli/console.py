"""All console output of the CLI goes through here."""

from __future__ import annotations

import sys
import time

from ladder.record import AssessmentRun


def info(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def out(message: str = "") -> None:
    print(message, flush=True)


def data_report(report, task: str, show: int = 10) -> None:
    """The data checks: one line per check, then the first findings of each that found something."""
    marks = {"ok": "ok", "info": "info", "warning": "WARN", "error": "FAIL"}
    out(f"data checks of {task}")
    for check in report.checks:
        out(
            f"  {marks[check.severity]:<5}{check.title}: {check.summary}"
            + (f" (allowed by {check.allowed_by})" if check.allowed_by else "")
        )
    if report.label_balance:
        splits = list(report.label_balance)
        labels = list(report.label_balance[splits[0]])
        width = max(len(label) for label in labels)
        out("  label balance: " + "  ".join(f"{s:>6}" for s in splits))
        for label in labels:
            out(f"    {label:<{width}} " + "  ".join(f"{report.label_balance[s][label]:>6}" for s in splits))
    for check in report.checks:
        if not check.findings or show <= 0:
            continue
        out(f"{check.title} ({check.count}):")
        for finding in check.findings[:show]:
            where = f"{finding.where}: " if finding.where else ""
            out(f"  {where}{finding.detail}")
        if check.count > show:
            out(f"  ... {check.count - show} more (--json keeps {len(check.findings)})")
    failed = [c.title.lower() for c in report.errors]
    out(f"{len(failed)} check(s) failed: {', '.join(failed)}" if failed else "no check failed")


def _cell(m) -> str:
    return f"{m.mean:.3f} [{m.low:.3f},{m.high:.3f}]"


def rung_table(run: AssessmentRun) -> str:
    from ladder.decide.cost import money

    metric = run.target.metric
    header = (
        "rung",
        f"dev {metric}",
        f"test {metric}",
        "n dev/test",
        "invalid",
        "ms/ex",
        "tok in/out",
        "cost/1k calls",
        "dev status",
        "decision",
    )
    rows = [header]
    for r in run.rungs:
        d, t = r.splits["dev"], r.splits["test"]
        rows.append(
            (
                r.name,
                _cell(d.deciding(metric)),
                _cell(t.deciding(metric)),
                f"{d.n}/{t.n}",
                f"{t.invalid_share:.0%}",
                f"{t.latency_s_per_example * 1000:.0f}" + (" (cached)" if t.cached else ""),
                f"{t.prompt_tokens_per_call:.0f}/{t.completion_tokens_per_call:.1f}",
                money(r.cost.cost_per_1k_calls, r.cost.unit) if r.cost else "-",
                r.decision.status,
                r.decision.action,
            )
        )
    for s in run.skipped:
        rows.append((s.name, "-", "-", "-", "-", "-", "-", "-", "-", "skipped"))
    notes = []
    for r in run.rungs:
        retrieval = r.splits["test"].retrieval
        if retrieval:
            notes.append(f"{r.name} retrieval (test): " + ", ".join(f"{k} {_cell(m)}" for k, m in retrieval.items()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + notes)


def summary(run: AssessmentRun, out_dir) -> None:
    out(rung_table(run))
    out()
    if run.recommendation is not None:
        out(f"recommendation: {run.recommendation.summary}")
        for reason in run.recommendation.reasons:
            out(f"  - {reason}")
    out(f"record: {out_dir}/run.json   report: {out_dir}/report.html (and report.md)")


# -- progress (ladder.progress reports here) ------------------------------------------------------------
def _fields(fields: dict) -> str:
    return ", ".join(
        f"{k.replace('_', ' ')} {v:.4g}" if isinstance(v, float) else f"{k.replace('_', ' ')} {v}"
        for k, v in fields.items()
    )


def _left(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


class _PlainBar:
    """One line when the work starts, one at most every ``every`` seconds, one when it ends: CI logs."""

    def __init__(self, description: str, total: int | None, unit: str, completed: int, every: float):
        self.description, self.total, self.unit, self.every = description, total, unit, every
        self.done = self.first = completed
        self.started = self.last = time.monotonic()
        self.fields: dict = {}
        info(f"{description}: {self._count()}")

    def _count(self) -> str:
        return f"{self.done}/{self.total} {self.unit}" if self.total else f"{self.done} {self.unit}"

    def line(self, time_left: bool = True) -> str:
        elapsed = time.monotonic() - self.started
        rate = (self.done - self.first) / elapsed if elapsed > 0 else 0.0
        parts = [self._count(), f"{rate:.2f} {self.unit}/s"]
        if time_left and self.total and rate > 0 and self.done < self.total:
            parts.append(f"~{_left((self.total - self.done) / rate)} left")
        if self.fields:
            parts.append(_fields(self.fields))
        return f"{self.description}: " + ", ".join(parts)

    def advance(self, n: int = 1, **fields) -> None:
        self.done += n
        self.fields.update(fields)
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            info(self.line())


class PlainReporter:
    def __init__(self, every: float = 30.0):
        self.every = every

    def start(self, description, total, unit, completed=0):
        return _PlainBar(description, total, unit, completed, self.every)

    def finish(self, bar) -> None:
        if bar.done != bar.first:
            info(bar.line(time_left=False) + " (done)")


class _RichBar:
    def __init__(self, progress, task_id):
        self.progress, self.task_id = progress, task_id
        self.fields: dict = {}

    def advance(self, n: int = 1, **fields) -> None:
        self.fields.update(fields)
        self.progress.update(self.task_id, advance=n, extra=_fields(self.fields))


class RichReporter:
    """rich bars on the terminal (stderr): count, rate, time left and the work's own numbers (loss, tokens/s)."""

    def __init__(self, console=None):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        class Rate(TextColumn):
            def __init__(self):
                super().__init__("")

            def render(self, task):
                from rich.text import Text

                speed = task.finished_speed or task.speed
                return Text(f"{speed:.2f} {task.fields['unit']}/s" if speed else "", style="progress.data.speed")

        self.progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} {task.fields[unit]}", markup=False),
            Rate(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[extra]}", markup=False),
            console=console or Console(stderr=True),
            transient=False,
        )
        self.live = 0

    def start(self, description, total, unit, completed=0):
        if self.live == 0:
            self.progress.start()
        self.live += 1
        task_id = self.progress.add_task(description, total=total, completed=completed, unit=unit, extra="")
        return _RichBar(self.progress, task_id)

    def finish(self, bar) -> None:
        self.progress.stop_task(bar.task_id)
        self.live -= 1
        if self.live == 0:
            self.progress.stop()
            for task_id in list(self.progress.task_ids):
                self.progress.remove_task(task_id)


def progress_reporter():
    """rich on a terminal, plain lines otherwise (CI logs, pipes)."""
    return RichReporter() if sys.stderr.isatty() else PlainReporter()
