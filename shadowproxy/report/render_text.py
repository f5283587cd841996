"""Terminal table (rich) and Markdown renderings of a report.

Owns the two text formats. Colour only when the output is a terminal (rich
decides; ``NO_COLOR`` is honoured). Imports rich and the shared sections.
"""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from shadowproxy.report.tabular import Document, headline, sections

__all__ = ["render_markdown", "render_table"]

_STYLES = {"pass": "green", "fail": "bold red", "warn": "yellow", "": ""}


def render_table(doc: Document, out: TextIO) -> None:
    """Write the report as rich tables to ``out``."""
    terminal = out.isatty()
    console = Console(
        file=out,
        width=None if terminal else 400,
        soft_wrap=False,
        force_terminal=terminal,
        highlight=False,
    )
    console.print(headline(doc), style="bold green" if doc["passed"] else "bold red", markup=False)
    for section in sections(doc):
        table = Table(title=section.title, title_justify="left", show_lines=False)
        for column in section.columns:
            table.add_column(column, overflow="fold")
        for row, style in zip(section.rows, section.styles, strict=True):
            # Text() keeps brackets in paths and examples from being read as markup.
            table.add_row(*(Text(cell) for cell in row), style=_STYLES[style])
        console.print(table)
    for note in doc["notes"]:
        console.print(f"note: {note}", markup=False)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


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
