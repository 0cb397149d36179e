"""The commands a CI pipeline and a stakeholder use: baseline, gate, gate-suite, report."""

from __future__ import annotations

from pathlib import Path

from ladder.errors import LadderError


def run_path(path: Path) -> Path:
    return path.parent if path.name == "run.json" else path


def cmd_baseline(args) -> int:
    from ladder.cli import console as display
    from ladder.gate import make_baseline, save_baseline
    from ladder.record import load_run

    run = load_run(args.run)
    baseline = make_baseline(run, args.rung, args.split, source=str(args.run))
    save_baseline(baseline, args.to)
    display.out(
        f"{args.to}: baseline of {args.rung!r} on {args.split} ({len(baseline.examples)} examples, "
        f"{baseline.metric} {sum(e.scores[baseline.metric] for e in baseline.examples) / len(baseline.examples):.3f})"
    )
    return 0


def _write_gate_outputs(results, args) -> None:
    from ladder.fileio import atomic_write_text
    from ladder.gate import render_gate, render_junit

    if args.junit:
        atomic_write_text(args.junit, render_junit(results))
    if args.md:
        atomic_write_text(args.md, render_gate(results, "md"))
    if args.html:
        atomic_write_text(args.html, render_gate(results, "html"))
    if args.github:
        _github_outputs(results)


def _github_outputs(results) -> None:
    """GitHub Actions: the annotations on stdout, the Markdown summary appended to the job's step summary."""
    import os

    from ladder.cli import console as display
    from ladder.gate import render_gate, render_github_annotations

    display.out(render_github_annotations(results).rstrip("\n"))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if not summary:
        display.info("--github: $GITHUB_STEP_SUMMARY is not set (not inside GitHub Actions): no step summary written")
        return
    try:
        with open(summary, "a", encoding="utf-8") as handle:  # appended: other steps write there too
            handle.write(render_gate(results, "md") + "\n")
    except OSError as exc:
        raise LadderError(f"--github: cannot append to $GITHUB_STEP_SUMMARY ({summary}): {exc.strerror}") from None


def _gate_exit(results) -> int:
    """A regression anywhere fails (1); else an inconclusive gate's own code (3, or 1/0 by --on-inconclusive)."""
    codes = {r.exit_code for r in results}
    return 1 if 1 in codes else max(codes)


def cmd_gate(args) -> int:
    from ladder.cli import console as display
    from ladder.gate import check_line, gate, load_baseline
    from ladder.record import load_run

    run = load_run(args.run)
    baseline = load_baseline(args.baseline)
    result = gate(
        run,
        baseline,
        args.rung,
        args.metric,
        args.margin,
        args.alpha,
        source=str(args.run),
        baseline_source=str(args.baseline),
        on_inconclusive=args.on_inconclusive,
    )
    for check in result.checks:
        display.out(check_line(result, check))
    for note in result.notes:
        display.info(f"note: {note}")
    _write_gate_outputs([result], args)
    return _gate_exit([result])


def cmd_gate_suite(args) -> int:
    from ladder.cli import console as display
    from ladder.gate import check_line
    from ladder.run.suite import run_suite

    pairs = run_suite(
        args.suite, args.out, progress=display.info, on_inconclusive=args.on_inconclusive, model=args.model
    )
    for spec, result in pairs:
        for check in result.checks:
            display.out(f"[{spec.name}] {check_line(result, check)}")
        for note in result.notes:
            display.info(f"[{spec.name}] note: {note}")
    results = [r for _, r in pairs]
    _write_gate_outputs(results, args)
    return _gate_exit(results)


def cmd_report(args) -> int:
    from ladder.cli import console as display
    from ladder.fileio import atomic_write_text
    from ladder.record import load_run
    from ladder.report import render

    if len(args.runs) == 1 and _is_migration(args.runs[0]):
        from ladder.gate.migration import load_migration
        from ladder.gate.migration_report import render_migration

        path = args.runs[0] if args.runs[0].name == "migration.json" else args.runs[0] / "migration.json"
        outcome = load_migration(path)  # a migration's report, from its record alone
        targets = _targets(args, path.parent, "migration")
        contents = lambda f: render_migration(outcome, f)  # noqa: E731
    else:
        folders = [run_path(p) for p in args.runs]
        runs = [load_run(f) for f in folders]
        stem = "report" if len(runs) == 1 else "comparison"
        home = folders[0] if len(runs) == 1 else folders[max(range(len(runs)), key=lambda i: runs[i].created)]
        targets = _targets(args, home, stem)
        contents = lambda f: render(runs, f, [str(p) for p in args.runs])  # noqa: E731
    for f, path in targets:
        atomic_write_text(path, contents(f))
        display.out(str(path))
    from ladder.extras import installed, pip_line

    if any(f == "html" for f, _ in targets) and not installed("report"):
        display.info(f"the HTML report's figures are not drawn: matplotlib is not installed (`{pip_line(['report'])}`)")
    return 0


def _targets(args, home: Path, stem: str) -> list[tuple[str, Path]]:
    """(format, file) to write: --out (its format from --format or its suffix), else ``home/stem.{md,html}``."""
    from ladder.report import FORMATS

    fmt = args.format
    if args.out is not None and fmt is None:
        fmt = args.out.suffix.lstrip(".").replace("markdown", "md")
        if fmt not in FORMATS:
            raise LadderError(f"--out: {args.out} ends in neither .md nor .html; give --format")
    if args.out is not None:
        return [(fmt, args.out)]
    return [(f, home / f"{stem}.{f}") for f in ((fmt,) if fmt else FORMATS)]


def _is_migration(path: Path) -> bool:
    return path.name == "migration.json" or (
        path.is_dir() and (path / "migration.json").is_file() and not (path / "run.json").is_file()
    )


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n < 1e9 else f"{n / 1e9:,.2f} GB"


def cmd_cache(args) -> int:
    from ladder.cli import console as display
    from ladder.run.caches import find_records, prune, survey

    if args.action == "prune":
        removed, n = prune(args.runs or [Path("runs")], dry_run=args.dry_run)
        verb = "would remove" if args.dry_run else "removed"
        for entry in removed:
            display.out(f"{verb} {entry.path} ({entry.what}, {_mb(entry.bytes)})")
        freed = sum(e.bytes for e in removed)
        display.out(
            f"{verb} {len(removed)} entries, {_mb(freed)}: nothing else is unreferred by the {n} run records read"
        )
        return 0
    records = find_records([f for f in (args.runs or [Path("runs")]) if f.exists()])
    for area in survey([r for _, r in records] if records else None):
        display.out(f"{area.name}: {area.path} ({len(area.entries)} entries, {_mb(area.bytes)}) - {area.note}")
        shown = area.entries[: args.show] if area.listed else []
        for entry in shown:
            mark = {True: "  referred", False: "  unreferred", None: ""}[entry.referred]
            display.out(f"  {entry.path.name}  {_mb(entry.bytes)}  {entry.what}{mark}")
        if shown and len(area.entries) > len(shown):
            display.out(f"  ... and {len(area.entries) - len(shown)} more")
    said = f"{len(records)} run records read" if records else "no run records found (--runs)"
    display.out(f"{said}; `ladder cache prune` removes the models and trainings they do not refer to")
    return 0
