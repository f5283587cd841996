"""The terminal summary: what blocks cutover and why, in lines that fit a width.

Owns the default ``table`` output: the verdict, one line per route (status
word, why in a few words, compared / structural / semantic / timing counts;
a route with streams has its count marked, and a line under the table says
how many were streams), the routes not shadowed last with their traffic and
skip reasons, then each route's cutover (phase, ready or what is missing),
the top fingerprints one line each, the notes and where the full tables
are. Every line fits ``width`` terminal cells (100 by default): columns
shrink to fit and long text is elided with ``…`` (routes and paths in the
middle, examples at the end), measured in cells so wide characters count
twice. Client-controlled text passes through ``printable`` first. Imports
rich's cell measurement and ``Text``, and the report's readings.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len, get_character_cell_size
from rich.text import Text

from shadowproxy.report.cutover_view import Cutovers, not_shadowed_why
from shadowproxy.report.tabular import Document, printable, problems_section, window_line
from shadowproxy.report.timeparse import format_duration
from shadowproxy.report.verdict import Standing, standings, verdict, verdict_sentence

__all__ = ["SUMMARY_WIDTH", "TOP_LINES", "elide", "summary_lines"]

SUMMARY_WIDTH = 100
"""The widest line of the default summary, in terminal cells."""
TOP_LINES = 10
"""Fingerprints the summary shows at most; ``--detail`` shows ``--top``."""
_GAP = "  "
_FLEET_READINESS = (
    "Fleet mode has no phases or drills: run the report on the evidence files to see each "
    "route's phase and whether it is ready for cutover."
)
_STATUS_STYLE = {"fail": "bold red", "insufficient": "bold yellow", "pass": "bold green"}
_NOT_SHADOWED = "NOT SHADOWED"
_STREAM_MARK = "*"
"""Marks the compared count of a route with streams among its compared exchanges."""
_CLASS_STYLE = {"structural": "red", "semantic": "yellow", "timing": "magenta"}


@dataclass(frozen=True, slots=True)
class _Column:
    """``shrink_to`` None: never shrinks; ``middle``: elide in the middle (paths);
    ``first``: shrinks before the others (words a reader can do without, unlike names).

    Right-aligned columns are counts: one space before them is enough.
    """

    header: str
    right: bool = False
    shrink_to: int | None = None
    middle: bool = False
    first: bool = False


def _head(text: str, width: int) -> str:
    used = 0
    for i, char in enumerate(text):
        used += get_character_cell_size(char)
        if used > width:
            return text[:i]
    return text


def _tail(text: str, width: int) -> str:
    used = 0
    for i in range(len(text) - 1, -1, -1):
        used += get_character_cell_size(text[i])
        if used > width:
            return text[i + 1 :]
    return text


def elide(text: str, width: int, middle: bool = False) -> str:
    """``text`` cut to ``width`` cells with ``…``: at the end, or in the middle."""
    if cell_len(text) <= width:
        return text
    if width < 2:
        return "…"[:width]
    if not middle:
        return _head(text, width - 1) + "…"
    front = (width - 1) // 2
    return _head(text, front) + "…" + _tail(text, width - 1 - front)


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - cell_len(text))
    return fill + text if right else text + fill


def _gap(column: _Column) -> str:
    return " " if column.right else _GAP


def _widths(columns: Sequence[_Column], rows: Sequence[Sequence[str]], width: int) -> list[int]:
    """Natural column widths, narrowed until the row fits: ``first`` columns, then the one
    with the most to spare."""
    sizes = [
        min(width, max([cell_len(c.header), *(cell_len(row[i]) for row in rows)]))
        for i, c in enumerate(columns)
    ]
    excess = sum(sizes) + sum(len(_gap(c)) for c in columns[1:]) - width
    while excess > 0:
        _, spare, widest = max(
            (c.first and size > (c.shrink_to or size), size - (c.shrink_to or size), i)
            for i, (c, size) in enumerate(zip(columns, sizes, strict=True))
        )
        if spare <= 0:
            break
        sizes[widest] -= 1
        excess -= 1
    return sizes


def _table(
    columns: Sequence[_Column],
    rows: Sequence[Sequence[str]],
    styles: Sequence[Sequence[str]],
    width: int,
) -> list[Text]:
    sizes = _widths(columns, rows, width)
    header = "".join(
        (_gap(c) if i else "") + _pad(c.header, s, c.right)
        for i, (c, s) in enumerate(zip(columns, sizes, strict=True))
    )
    out = [Text(header.rstrip(), style="bold")]
    for row, style in zip(rows, styles, strict=True):
        line = Text()
        for i, (column, size) in enumerate(zip(columns, sizes, strict=True)):
            if i:
                line.append(_gap(column))
            line.append(_pad(elide(row[i], size, column.middle), size, column.right), style[i])
        line.rstrip()
        out.append(line)
    return out


def _not_shadowed(doc: Document) -> list[tuple[str, str, str]]:
    """(domain, route, traffic and reasons) of every route not shadowed, by domain."""
    return [
        (d["domain"], n["route"], not_shadowed_why(n))
        for d in doc["domains"]
        for n in d["not_shadowed"]
    ]


def _routes(doc: Document, lines: Sequence[Standing], width: int) -> list[Text]:
    """What blocks first, routes at parity next, and last the routes never compared.

    A route some of whose compared exchanges were streams has its compared
    count marked, and a line under the table says how many.
    """
    streams = [s for s in lines if s.route and s.streams]
    # Counts beside a marked one keep a blank in the marker's place, so digits line up.
    unmarked = " " if streams else ""

    def compared(s: Standing) -> str:
        return f"{s.compared}{_STREAM_MARK if s.route and s.streams else unmarked}"

    columns = (
        _Column("status"),
        _Column("route", shrink_to=12, middle=True),
        _Column("domain", shrink_to=6),
        _Column("why", shrink_to=22, first=True),
        _Column("compared", right=True),
        _Column("structural", right=True),
        _Column("semantic", right=True),
        _Column("timing", right=True),
    )
    rows = [
        (
            s.status.upper(),
            printable(s.route) if s.route else "(domain)",
            printable(s.domain),
            printable(s.why),
            compared(s),
            str(s.structural),
            str(s.semantic),
            str(s.timing),
        )
        for s in lines
    ]
    styles = [(_STATUS_STYLE[s.status], *[""] * 7) for s in lines]
    for domain, route, why in _not_shadowed(doc):
        # Never compared: every count is zero.
        row = (_NOT_SHADOWED, printable(route), printable(domain), printable(why))
        rows.append((*row, f"0{unmarked}", "0", "0", "0"))
        styles.append(("bold cyan", *[""] * 7))
    table = _table(columns, rows, styles, width)
    if not streams:
        return table
    shown = ", ".join(
        f"{printable(s.route)} {s.streams} of {s.compared}" for s in streams[:TOP_LINES]
    )
    more = (
        f", and {len(streams) - TOP_LINES} more routes (--detail)"
        if len(streams) > TOP_LINES
        else ""
    )
    legend = f"{_STREAM_MARK} compared as streams (SSE, WebSocket, gRPC): {shown}{more}"
    return [*table, *_wrapped(legend, width, "dim")]


def _cutover(
    doc: Document, lines: Sequence[Standing], cutovers: Cutovers, width: int
) -> list[Text]:
    """Each route's phase, whether it is ready for cutover, and what readiness misses."""
    title = "Cutover readiness (not part of the verdict)"
    if doc["source"] != "files":
        return [Text(), Text(title, style="bold"), *_wrapped(_FLEET_READINESS, width)]
    order = [(s.domain, s.route) for s in lines if s.route]
    order += [(domain, route) for domain, route, _ in _not_shadowed(doc)]
    shown = [cutovers[key] for key in order]
    ready = sum(1 for c in shown if c.ready)
    columns = (
        # What is missing matters more than the whole of a long route name.
        _Column("route", shrink_to=16, middle=True, first=True),
        _Column("domain", shrink_to=6),
        _Column("phase"),
        _Column("ready"),
        _Column("missing", shrink_to=12),
    )
    rows = [
        (
            printable(c.route),
            printable(c.domain),
            c.phase,
            "yes" if c.ready else "no",
            c.missing_text,
        )
        for c in shown
    ]
    styles = [
        (
            "",
            "",
            "",
            "green" if c.ready else "yellow",
            "red" if c.failed else "",
        )
        for c in shown
    ]
    heading = f"{title}: {ready} of {len(shown)} {'route' if len(shown) == 1 else 'routes'} ready"
    return [Text(), Text(heading, style="bold"), *_table(columns, rows, styles, width)]


def _fingerprints(doc: Document, width: int) -> list[Text]:
    shown = doc["fingerprints"][:TOP_LINES]
    title = Text(f"Top fingerprints ({len(shown)} of {doc['fingerprints_total']})", style="bold")
    if not shown:
        return [title, Text("none")]
    columns = (
        _Column("count", right=True),
        _Column("class"),
        _Column("kind", shrink_to=4),
        _Column("route", shrink_to=10, middle=True),
        _Column("path", shrink_to=10, middle=True),
        _Column("doc"),
        _Column("example", shrink_to=10),
    )
    rows = [
        (
            str(f["count"]),
            printable(f["class"]),
            printable(f["kind"]),
            printable(f["route"]),
            printable(f["path"]),
            "yes" if f["documented"] else "no",
            printable(f["example"]),
        )
        for f in shown
    ]
    styles = [
        (
            "",
            _CLASS_STYLE.get(f["class"], ""),
            "",
            "",
            "",
            "" if f["documented"] or f["class"] != "semantic" else "yellow",
            "",
        )
        for f in shown
    ]
    return [title, *_table(columns, rows, styles, width)]


def _problems(doc: Document, width: int) -> list[Text]:
    """Per file, what could not be read: these lines hold gates back."""
    section = problems_section(doc)
    if not section.rows:
        return []
    shown = section.rows[:TOP_LINES]
    more = len(section.rows) - len(shown)
    columns = (
        _Column("file", shrink_to=16, middle=True),
        _Column("malformed", right=True),
        _Column("oversized", right=True),
        _Column("uncounted", right=True),
        _Column("first problem", shrink_to=16),
    )
    rows = [(printable(r[0]), r[1], r[2], r[3], printable(r[4])) for r in shown]
    lines = [
        Text(),
        Text(f"{section.title} (it keeps gates from passing)", style="bold yellow"),
        *_table(columns, rows, [("",) * 5] * len(rows), width),
    ]
    if more:
        lines.append(Text(f"and {more} more files (--detail)"))
    return lines


def _uncovered(doc: Document, width: int) -> list[Text]:
    """Domains whose window the rollups do not cover: the coverage gate and its gaps."""
    domains = {d["domain"]: d for d in doc["domains"]}
    held = [g for g in doc["gates"] if g["name"] == "coverage" and not g["passed"]]
    if not held:
        return []
    columns = (
        _Column("domain", shrink_to=8),
        _Column("covered", right=True),
        _Column("gaps", right=True),
        _Column("why", shrink_to=16),
    )
    # Domains with the same coverage and reason (evidence that all starts at once) share a line.
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for gate in held:
        coverage = domains.get(gate["domain"], {}).get("coverage") or {}
        key = (
            format_duration(coverage.get("covered_s")),
            str(coverage.get("gaps_total", "-")),
            printable(gate["reason"]),
        )
        grouped.setdefault(key, []).append(printable(gate["domain"]))
    rows = [
        (", ".join(names[:2]) + (f" +{len(names) - 2}" if len(names) > 2 else ""), *key)
        for key, names in grouped.items()
    ]
    return [
        Text(),
        Text("Windows the evidence does not cover (their gates cannot pass)", style="bold yellow"),
        *_table(columns, rows, [("",) * 4] * len(rows), width),
    ]


def _wrapped(text: str, width: int, style: str = "") -> list[Text]:
    return [
        Text(line, style=style)
        for line in textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False)
    ]


def summary_lines(doc: Document, cutovers: Cutovers, width: int = SUMMARY_WIDTH) -> list[Text]:
    """The summary, each line at most ``width`` cells; ``cutovers`` says each route's cutover."""
    word = verdict(doc)
    standing = standings(doc)
    lines = [
        *_wrapped(f"shadow report {verdict_sentence(doc, standing)}", width, _STATUS_STYLE[word]),
        *_wrapped(printable(window_line(doc)), width, "dim"),
        Text(),
        *_routes(doc, standing, width),
        *_problems(doc, width),
        *_uncovered(doc, width),
        *_cutover(doc, standing, cutovers, width),
    ]
    if doc["source"] == "files":
        lines += [Text(), *_fingerprints(doc, width)]
    lines.append(Text())
    for note in doc["notes"]:
        lines += _wrapped(f"note: {printable(note)}", width)
    lines += _wrapped(
        "Full tables: add --detail, or --format markdown, json or html (--out FILE).",
        width,
        "dim",
    )
    return lines
