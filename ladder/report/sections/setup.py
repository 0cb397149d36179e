"""How the run was set up: retrieval, data checks, settings, the manifest."""

from __future__ import annotations

from ladder.record import AssessmentRun
from ladder.report.document import (
    Items,
    Paragraph,
    Section,
    Table,
)
from ladder.report.sections.cells import ci, cut, seconds


def retrieval(run: AssessmentRun) -> Section:
    section = Section("retrieval", "Retrieval (against the data's gold document)")
    retrieval_rungs = [r for r in run.rungs if r.splits["test"].retrieval]
    if not retrieval_rungs:
        return section
    names = list(retrieval_rungs[0].splits["test"].retrieval)
    rows = []
    for r in retrieval_rungs:
        for split, result in r.splits.items():
            rows.append(
                [
                    r.name,
                    split,
                    *(ci(m) for m in result.retrieval.values()),
                    seconds(result.selection_s / max(1, result.n)),
                ]
            )
    settings = ", ".join(f"{k}={v}" for k, v in retrieval_rungs[0].settings.items())
    section.blocks += [
        Table(["rung", "split", *names, "retrieval time/example"], rows),
        Paragraph(f"Settings of {retrieval_rungs[0].name}: {settings}."),
    ]
    return section


def data(run: AssessmentRun) -> Section:
    section = Section("data", "Data checks")
    report = run.data_checks
    if report is None:
        return section
    marks = {"ok": "ok", "info": "note", "warning": "warning", "error": "failed"}
    section.blocks.append(
        Table(
            ["check", "result", "found", "what it says"],
            [
                [
                    c.title,
                    marks[c.severity] + (f" (allowed by {c.allowed_by})" if c.allowed_by else ""),
                    str(c.count),
                    c.summary,
                ]
                for c in report.checks
            ],
        )
    )
    for check in report.checks:
        if check.severity in ("warning", "error") and check.findings:
            shown = check.findings[:5]
            more = (
                f" (the first {len(shown)} of {check.count}; `ladder check-data` lists them)" if check.count > 5 else ""
            )
            section.blocks += [
                Paragraph(f"{check.title}{more}:"),
                Items([cut(f"{f.where}: {f.detail}" if f.where else f.detail, 200) for f in shown]),
            ]
    return section


def setup(run: AssessmentRun) -> Section:
    model = run.model
    items = [
        f"model: `{model.name}` (weights sha256 `{model.weights_sha256[:12]}`, "
        f"tokenizer sha256 `{model.tokenizer_sha256[:12]}`), backend {model.backend}, "
        f"{model.dtype or 'server-side dtype'} on {model.device or model.base_url or '?'}",
        "data: "
        + ", ".join(f"{s} {n} (sha256 `{run.data_hashes.get(s, '?')[:12]}`)" for s, n in run.data_sizes.items())
        + (f"; evaluated on the first {run.limit} of dev and test (--limit)" if run.limit else ""),
        f"run `{run.run_id}`, {run.created}, ladder {run.ladder_version}, seed {run.seed}",
        "packages: " + ", ".join(f"{k} {v}" for k, v in sorted(run.packages.items())),
    ]
    if run.command:
        items.append(f"command: `{run.command}`")
    for r in run.rungs:
        if r.demo_ids:
            items.append(f"{r.name} demonstrations: " + ", ".join(f"`{d}`" for d in r.demo_ids))
    return Section("setup", "Setup", [Items(items)])


def manifest(run: AssessmentRun) -> Section:
    """Everything needed to reproduce the run, in full (the Markdown's Setup abbreviates it)."""
    rows = [
        ["run", run.run_id],
        ["created", run.created],
        ["status", run.status],
        ["command", f"`{run.command}`" if run.command else "(not recorded)"],
        ["task file", f"`{run.task_path}`"],
        ["ladder", run.ladder_version],
        ["seed", str(run.seed)],
    ]
    if run.limit:
        rows.append(["--limit", str(run.limit)])
    for split, digest in run.data_hashes.items():
        rows.append([f"data: {split}", f"{run.data_sizes.get(split, '?')} examples, sha256 `{digest}`"])
    for name, value in run.model.model_dump(exclude_none=True).items():
        rows.append([f"model: {name}", f"`{value}`" if "sha256" in name or name == "path" else str(value)])
    rows += [[f"package: {k}", v] for k, v in sorted(run.packages.items())]
    for r in run.rungs:
        settings = ", ".join(f"{k}={v}" for k, v in r.settings.items()) or "defaults"
        rows.append([f"rung: {r.name} ({r.type})", settings])
        if r.training is not None:
            rows.append(
                [
                    f"rung: {r.name} artifact",
                    f"`{r.training.artifact_sha256}` ({r.training.artifact_bytes:,} bytes"
                    + (", reused from an earlier identical training" if r.training.reused else "")
                    + ")",
                ]
            )
    return Section("manifest", "Reproducibility manifest", [Table(["what", "value"], rows)], in_markdown=False)
