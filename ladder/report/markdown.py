"""Markdown report (pull-request comments, the run folder's report.md): lays out ``rows.build_report``'s
document; figures are the HTML report's, their numbers are in the tables here too."""

from __future__ import annotations

from ladder.record import AssessmentRun
from ladder.report.document import Document, Figure, Items, Notice, Paragraph, Table


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render_document(doc: Document) -> str:
    lines = [f"# {doc.title}", ""]
    for section in doc.sections:
        if not section.in_markdown:
            continue
        if section.title:
            lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Figure):
                continue
            if isinstance(block, Paragraph):
                lines.append(block.text)
            elif isinstance(block, Notice):
                lines.append(f"> {block.text}")
            elif isinstance(block, Items):
                lines += [f"{i}. {item}" if block.numbered else f"- {item}" for i, item in enumerate(block.items, 1)]
            elif isinstance(block, Table):
                lines.append("| " + " | ".join(_cell(h) for h in block.header) + " |")
                lines.append("|---" * len(block.header) + "|")
                lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in block.rows]
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def render_markdown(run: AssessmentRun) -> str:
    from ladder.report.build import build_report

    return render_document(build_report(run))
