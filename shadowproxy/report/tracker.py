"""The migration tracker CSV: one row per route with its status, numbers and cutover stage.

Owns writing and updating the file. Columns and rows a team added by hand
(notes, routes not in this report) are kept as they were; only the
report's own columns of the routes it covers are rewritten, except three
that keep what the team or an earlier report wrote: ``owner`` when the
gates file names none for the domain, ``last_passed_at`` while the route's
next-step gates do not pass, and ``evidence`` when no link is given. The
file is replaced atomically and is private (mode 0600). Standard library
only.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from shadowproxy.report.errors import ReportInputError
from shadowproxy.report.outfile import replace_private

__all__ = ["TRACKER_COLUMNS", "update_tracker"]

TRACKER_COLUMNS = (
    "route",
    "domain",
    "status",
    "compared",
    "structural",
    "semantic",
    "timing",
    "noise",
    "errors",
    "error_rate",
    "legacy_p99_ms",
    "candidate_p99_ms",
    "p99_ratio",
    "last_updated",
    "mode",
    "canary_step",
    "owner",
    "gate_status",
    "last_passed_at",
    "evidence",
)
"""The columns the report owns, in the order a new file gets them."""


def _stage_cells(
    route: Mapping[str, Any], doc: Mapping[str, Any], link: str | None
) -> dict[str, str]:
    """The cutover columns; ``owner``, ``last_passed_at`` and ``evidence`` only when known."""
    percent = route["canary_percent"]
    cells = {
        "mode": "not shadowed" if route["status"] == "NOT_SHADOWED" else route["mode"],
        "canary_step": "" if percent is None else f"{percent:g}",
        "gate_status": route["gate_status"],
    }
    owner = next((d["owner"] for d in doc["domains"] if d["domain"] == route["domain"]), None)
    if owner:
        cells["owner"] = owner
    if route["gate_status"] == "pass":
        cells["last_passed_at"] = doc["generated_at"]
    if link:
        cells["evidence"] = link.replace("{domain}", quote(route["domain"], safe="")).replace(
            "{route}", quote(route["route"], safe="")
        )
    return cells


def _cells(route: Mapping[str, Any], updated: str) -> dict[str, str]:
    latency = route["latency"]
    error_rate = route["rates"]["errors"]["rate"]

    def text(value: object) -> str:
        return "" if value is None else str(value)

    return {
        "route": route["route"],
        "domain": route["domain"],
        "status": route["status"],
        **{
            name: str(route[name])
            for name in ("compared", "structural", "semantic", "timing", "noise", "errors")
        },
        "error_rate": text(error_rate),
        "legacy_p99_ms": text(latency["legacy"]["p99"]),
        "candidate_p99_ms": text(latency["candidate"]["p99"]),
        "p99_ratio": text(latency["p99_ratio"]),
        "last_updated": updated,
    }


def update_tracker(path: str, doc: Mapping[str, Any], link: str | None = None) -> None:
    """Write or update the tracker at ``path`` from the report document ``doc``.

    ``link`` is the evidence link of every row (``{domain}`` and ``{route}``
    replaced, URL-quoted).
    """
    target = Path(path)
    columns: list[str] = list(TRACKER_COLUMNS)
    rows: list[dict[str, str]] = []
    if target.exists():
        try:
            with target.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                header = list(reader.fieldnames or [])
                rows = [{k: v or "" for k, v in row.items() if k is not None} for row in reader]
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ReportInputError(path, f"cannot read tracker ({exc})") from None
        if "route" not in header:
            raise ReportInputError(path, "route: column missing from the tracker header")
        columns = header + [c for c in TRACKER_COLUMNS if c not in header]
    index = {(row.get("route", ""), row.get("domain", "")): row for row in rows}
    # A hand-made row without a domain still belongs to its route.
    by_route = {row.get("route", ""): row for row in rows if not row.get("domain")}
    for route in doc["routes"]:
        cells = {**_cells(route, doc["generated_at"]), **_stage_cells(route, doc, link)}
        row = index.get((cells["route"], cells["domain"])) or by_route.get(cells["route"])
        if row is None:
            row = index[(cells["route"], cells["domain"])] = {c: "" for c in columns}
            rows.append(row)
        row.update(cells)
    with replace_private(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
