"""Terminal (rich) and Markdown renderings of a report.

Owns the two text formats. The terminal gets the summary that fits 100
columns (``render_summary``), and with ``detail`` the full tables after it.
Colour only when the output is a terminal (rich decides; ``NO_COLOR`` is
honoured). Paths, examples and reasons come from clients and backends: in
Markdown every character that could start a link, an image, HTML, emphasis,
code or an autolink is backslash-escaped. Imports rich, the summary and the
shared sections.
"""

from __future__ import annotations

import re
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from shadowproxy.report.cutover_view import Cutovers
from shadowproxy.report.render_summary import SUMMARY_WIDTH, summary_lines
from shadowproxy.report.tabular import Document, headline, printable, sections

__all__ = ["render_markdown", "render_table"]

_STYLES = {"pass": "green", "fail": "bold red", "warn": "yellow", "": ""}
# Characters that start Markdown constructs (an underscore only at a word's
# edge: inside a word it cannot emphasise), and the starts of GFM autolinks.
_MARKDOWN = re.compile(
    r"[\\`*\[\]<>|~&@]|(?<![^\W_])_|_(?![^\W_])|:(?=//)|(?<=www)\.", re.IGNORECASE
)


def render_table(doc: Document, out: TextIO, cutovers: Cutovers, detail: bool = False) -> None:
    """Write the summary to ``out`` (``cutovers``: each route's cutover); with ``detail``,
    every table after it."""
    terminal = out.isatty()
    console = Console(
        file=out,
        width=None if terminal else 400,
        soft_wrap=False,
        force_terminal=terminal,
        highlight=False,
    )
    width = min(SUMMARY_WIDTH, console.width)
    for line in summary_lines(doc, cutovers, width):
        console.print(line, no_wrap=True, overflow="ellipsis", crop=True, width=width)
    if not detail:
        return
    for section in sections(doc):
        table = Table(title=section.title, title_justify="left", show_lines=False)
        for column in section.columns:
            table.add_column(column, overflow="fold")
        for row, style in zip(section.rows, section.styles, strict=True):
            # Text() keeps brackets in paths and examples from being read as markup.
            table.add_row(*(Text(printable(cell)) for cell in row), style=_STYLES[style])
        console.print(table)


def _cell(text: str) -> str:
    """``text`` as literal Markdown inline text on one line."""
    return _MARKDOWN.sub(lambda m: "\\" + m.group(), printable(text))


def render_markdown(doc: Document, out: TextIO) -> None:
    """Write the report as GitHub-flavoured Markdown to ``out``."""
    out.write(f"# {_cell(headline(doc))}\n")
    for section in sections(doc):
        out.write(f"\n## {section.title}\n\n")
        if not section.rows:
            out.write("_none_\n")
            continue
        out.write("| " + " | ".join(section.columns) + " |\n")
        out.write("|" + "---|" * len(section.columns) + "\n")
        for row in section.rows:
            out.write("| " + " | ".join(_cell(cell) for cell in row) + " |\n")
    for note in doc["notes"]:
        out.write(f"\n> note: {_cell(note)}\n")
