"""HTML report: one self-contained file (inline CSS, plots as inline SVG, no script, no font or image
fetched: its Content-Security-Policy forbids any request), laid out from ``rows.build_report``'s document."""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

from ladder.report.document import Document, Figure, Items, Notice, Paragraph, Table

if TYPE_CHECKING:
    from ladder.memo import Store

CSS = """
:root { color-scheme: light; --ink: #1d1d1f; --muted: #5f6368; --line: #d7dbe0; --chosen: #e8f3ea; --warn: #fdecea; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); background: #fff; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 32px 0 8px; padding-top: 8px; border-top: 1px solid var(--line); }
nav { font-size: 0.85rem; color: var(--muted); margin-bottom: 16px; }
nav a { color: inherit; margin-right: 12px; }
p, li { max-width: 80ch; }
code { font: 0.85em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f3f4f6; padding: 0 3px;
       border-radius: 3px; word-break: break-all; }
.notice { background: var(--warn); border-left: 4px solid #b3261e; padding: 8px 12px; }
.table-wrap { overflow-x: auto; margin: 8px 0 12px; }
table { border-collapse: collapse; font-size: 0.85rem; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f7f9; }
tr.chosen td { background: var(--chosen); font-weight: 600; }
figure { margin: 12px 0; }
figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.85rem; color: var(--muted); max-width: 80ch; }
footer { margin-top: 40px; font-size: 0.8rem; color: var(--muted); }
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def inline(text: str) -> str:
    """Escape, then the two inline marks a report's text may carry: **bold** and `code`."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)


def _table(table: Table) -> str:
    head = "".join(f"<th>{inline(h)}</th>" for h in table.header)
    body = []
    for i, row in enumerate(table.rows):
        marked = ' class="chosen"' if i in table.highlight else ""
        body.append(f"<tr{marked}>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>")
    return (
        f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>\n'
        + "\n".join(body)
        + "\n</tbody></table></div>"
    )


FIGURE_MISSING = "Figure not drawn: matplotlib is not installed; the numbers are in the tables."


def _figure(figure: Figure, salt: str, store: Store | None = None) -> str:
    from ladder.extras import pip_line
    from ladder.report.plots import drawn

    svg = drawn(figure.kind, figure.data, salt, store)
    if svg is None:  # a core install: the report is whole but for its drawings, and says how to have them
        svg = f'<p class="notice">{FIGURE_MISSING} ({html.escape(pip_line(["report"]))})</p>\n'
    return (
        f'<figure class="plot" data-plot="{figure.kind}">\n{svg}'
        f"<figcaption>{inline(figure.caption)}</figcaption></figure>"
    )


def render_html(doc: Document, figures: Store | None = None) -> str:
    """The document as one self-contained HTML page; ``figures``: drawn figures kept for re-use (``plots.drawn``)."""
    parts = []
    nav = []
    for section in doc.sections:
        body = []
        for k, block in enumerate(section.blocks):
            if isinstance(block, Paragraph):
                body.append(f"<p>{inline(block.text)}</p>")
            elif isinstance(block, Notice):
                body.append(f'<p class="notice" role="alert">{inline(block.text)}</p>')
            elif isinstance(block, Items):
                tag = "ol" if block.numbered else "ul"
                body.append(f"<{tag}>" + "".join(f"<li>{inline(i)}</li>" for i in block.items) + f"</{tag}>")
            elif isinstance(block, Table):
                body.append(_table(block))
            elif isinstance(block, Figure):
                body.append(_figure(block, f"{section.id}-{k}", figures))
        heading = f"<h2>{inline(section.title)}</h2>\n" if section.title else ""
        if section.title:
            nav.append(f'<a href="#{section.id}">{inline(section.title)}</a>')
        parts.append(f'<section id="{section.id}">\n{heading}' + "\n".join(body) + "\n</section>")
    footer = f"<footer>{inline(doc.footer)}</footer>\n" if doc.footer else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{inline(doc.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{inline(doc.title)}</h1>\n<nav>{''.join(nav)}</nav>\n"
        + "\n".join(parts)
        + f"\n{footer}</main>\n</body>\n</html>\n"
    )
