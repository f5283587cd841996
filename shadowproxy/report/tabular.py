"""The report's tables as plain rows of text, shared by table, markdown and HTML.

Owns what each section shows and how numbers read (counts with rate and 95%
upper bound, milliseconds, durations). Renders from the JSON document so
every format shows exactly what the contract says. Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shadowproxy.report.cutover_tables import cutover_sections
from shadowproxy.report.section import (
    Section,
    cell_ms,
    cell_quantiles,
    cell_rate,
    cell_ratio,
    cell_value,
)
from shadowproxy.report.timeparse import format_duration

__all__ = [
    "Section",
    "format_percent",
    "headline",
    "printable",
    "problems_section",
    "sections",
    "window_line",
]

Document = Mapping[str, Any]
"""The JSON form of a report (``document.to_json``)."""


def format_percent(rate: float) -> str:
    """A share as a percentage to three significant digits: ``100%``, ``1.92%``, ``0.01%``."""
    return f"{rate * 100:.3g}%"


def printable(text: str) -> str:
    """``text`` with every non-printable character spelled as an escape (``\\x1b``, ``\\u202e``).

    Routes, paths, examples and notes come from clients: a terminal must not
    run their escape sequences, and bidirectional overrides or zero-width
    characters must not disguise them on a screen or a page.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


def window_line(doc: Document) -> str:
    """The window and what was read: ``2026-... .. 2026-... (14d 0h), 134 records from 1 files``."""
    inputs = doc["inputs"]
    window = doc["window"]
    read = (
        f"{inputs['records']} records from {inputs['files']} "
        f"{'file' if inputs['files'] == 1 else 'files'}"
        if doc["source"] == "files"
        else "Prometheus"
    )
    malformed = (
        f", {inputs['malformed_lines']} malformed lines" if inputs["malformed_lines"] else ""
    )
    return (
        f"{window['since']} .. {window['until']} "
        f"({format_duration(window['seconds'])}), {read}{malformed}"
    )


def headline(doc: Document) -> str:
    """One line: the verdict, the window and what was read."""
    verdict = "PASSED" if doc["passed"] else "NOT PASSED"
    return f"shadow report {verdict}: {window_line(doc)}"


def _first_problem(problem: Mapping[str, Any]) -> str:
    gzip = "; the gzip stream stops short" if problem["truncated"] else ""
    gzip += "; the gzip stream was cut at 256x its size" if problem["cut"] else ""
    where = f"line {problem['first_line']}: " if problem["first_line"] is not None else ""
    return f"{where}{problem['first_problem']}{gzip}"


def problems_section(doc: Document) -> Section:
    """Per file, what could not be read (``inputs.problems``); no rows when everything was."""
    problems = doc["inputs"]["problems"]
    return Section(
        "Evidence that could not be read",
        ("File", "Malformed", "Oversized", "Uncounted", "First problem"),
        tuple(
            (
                p["file"],
                str(p["malformed"]),
                str(p["oversized"]),
                str(p["uncounted"]),
                _first_problem(p),
            )
            for p in problems
        ),
        tuple("warn" for _ in problems),
    )


def sections(doc: Document) -> list[Section]:
    """Gates, unreadable evidence, domains, routes, cutover stages and readiness, phases,
    not shadowed, drills, fingerprints, modes and ownership history."""
    problems = problems_section(doc)
    duplicates = doc["inputs"]["duplicate_files"]
    out = [
        Section(
            "Gates",
            ("Domain", "Gate", "Result", "Value", "Threshold", "Reason"),
            tuple(
                (
                    g["domain"],
                    g["name"],
                    g["status"].upper(),
                    cell_value(g["value"]),
                    cell_value(g["threshold"]),
                    g["reason"],
                )
                for g in doc["gates"]
            ),
            tuple(
                "pass" if g["passed"] else ("fail" if g["status"] == "fail" else "warn")
                for g in doc["gates"]
            ),
        ),
        *([problems] if problems.rows else []),
        *(
            [
                Section(
                    "Files read once (same content as another)",
                    ("File", "Same content as"),
                    tuple((d["file"], d["same_as"]) for d in duplicates),
                    tuple("" for _ in duplicates),
                )
            ]
            if duplicates
            else []
        ),
        Section(
            "Domains",
            (
                "Domain",
                "Compared",
                "Structural",
                "Semantic",
                "Timing",
                "Noise",
                "Errors",
                "Skipped",
                "Legacy p50/p95/p99 ms",
                "Candidate p50/p95/p99 ms",
                "p99 ratio",
                "Clean for",
            ),
            tuple(
                (
                    d["domain"],
                    str(d["compared"]),
                    cell_rate(d, "structural"),
                    cell_rate(d, "semantic"),
                    cell_rate(d, "timing"),
                    cell_rate(d, "noise"),
                    cell_rate(d, "errors"),
                    str(d["skipped"]),
                    cell_quantiles(d["latency"]["legacy"]),
                    cell_quantiles(d["latency"]["candidate"]),
                    cell_ratio(d["latency"]),
                    format_duration(d["clean_for_s"]),
                )
                for d in doc["domains"]
            ),
            tuple("pass" if d["passed"] else "fail" for d in doc["domains"]),
        ),
        Section(
            "Routes",
            (
                "Route",
                "Domain",
                "Status",
                "Compared",
                "Structural",
                "Semantic",
                "Timing",
                "Noise",
                "Errors",
                "Skipped",
                "Streams",
                "p99 legacy/candidate ms",
                "p99 ratio",
            ),
            tuple(
                (
                    r["route"],
                    r["domain"],
                    r["status"],
                    str(r["compared"]),
                    cell_rate(r, "structural"),
                    cell_rate(r, "semantic"),
                    cell_rate(r, "timing"),
                    cell_rate(r, "noise"),
                    cell_rate(r, "errors"),
                    str(r["skipped"]),
                    str(r["streams"]),
                    f"{cell_ms(r['latency']['legacy']['p99'])}/{cell_ms(r['latency']['candidate']['p99'])}",
                    cell_ratio(r["latency"]),
                )
                for r in doc["routes"]
            ),
            tuple(
                "pass"
                if r["status"] == "PARITY_OK"
                else ("warn" if r["status"] == "INSUFFICIENT_EVIDENCE" else "fail")
                for r in doc["routes"]
            ),
        ),
    ]
    out.extend(cutover_sections(doc))
    if doc["source"] == "files":
        out.append(
            Section(
                f"Top divergence fingerprints ({len(doc['fingerprints'])} of "
                f"{doc['fingerprints_total']})",
                (
                    "Count",
                    "Route",
                    "Class",
                    "Kind",
                    "Path",
                    "First seen",
                    "Last seen",
                    "Documented",
                    "Example",
                ),
                tuple(
                    (
                        str(f["count"]),
                        f["route"],
                        f["class"],
                        f["kind"],
                        f["path"],
                        f["first_seen"],
                        f["last_seen"],
                        f"{f['reason']} ({f['owner']})" if f["documented"] else "no",
                        f["example"],
                    )
                    for f in doc["fingerprints"]
                ),
                tuple(
                    "" if f["documented"] or f["class"] != "semantic" else "warn"
                    for f in doc["fingerprints"]
                ),
            )
        )
    if doc.get("modes"):
        out.append(
            Section(
                "Route modes",
                ("Route", "Mode", "Percent", "Since", "Source"),
                tuple(
                    (m["route"], m["mode"], cell_value(m["percent"]), m["since"], m["source"])
                    for m in doc["modes"]
                ),
                tuple("" for _ in doc["modes"]),
            )
        )
    if doc["ownership"]:
        out.append(
            Section(
                "Ownership history",
                ("Time", "Route", "From", "To", "Percent", "Reason", "Source", "Evidence"),
                tuple(
                    (
                        c["ts"],
                        c["route"],
                        c["from"],
                        c["to"],
                        cell_value(c["percent"]),
                        c["reason"],
                        c["source"],
                        " ".join(f"{k}={v:g}" for k, v in (c.get("numbers") or {}).items()),
                    )
                    for c in doc["ownership"]
                ),
                tuple("warn" if c["source"] == "rollback" else "" for c in doc["ownership"]),
            )
        )
    return out
