"""The report's cutover tables: each route's stage, its phases, not shadowed, readiness, drills.

Owns what the table, markdown and HTML formats show of the phases and the
readiness (docs/report.md, Cutover readiness), rendered from the JSON
document like every other table. Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shadowproxy.report.section import Section, cell_value
from shadowproxy.report.timeparse import format_duration

__all__ = ["cutover_sections", "phase_name", "route_phase", "skipped_by"]

Document = Mapping[str, Any]
"""The JSON form of a report (``document.to_json``)."""

_STYLE = {"pass": "pass", "fail": "fail", "insufficient": "warn"}


def phase_name(item: Mapping[str, Any]) -> str:
    """A phase's name from its ``mode`` and ``canary_percent``: ``canary 25%``, ``shadow``."""
    percent = item["canary_percent"]
    return f"canary {percent:g}%" if percent is not None else str(item["mode"])


def route_phase(route: Mapping[str, Any]) -> str:
    """A route's current phase; ``not shadowed`` for a route never compared by design."""
    return "not shadowed" if route["status"] == "NOT_SHADOWED" else phase_name(route)


def skipped_by(entry: Mapping[str, Any]) -> str:
    """A not-shadowed route's skip reasons with their counts: ``method: 15, upgrade: 5``."""
    return ", ".join(f"{reason}: {count}" for reason, count in entry["reasons"].items())


def _drill(drill: Mapping[str, Any] | None) -> str:
    if drill is None:
        return "-"
    return f"{'passed' if drill['passed'] else 'FAILED'} {drill['ts']}"


def _stages(doc: Document) -> Section:
    routes = doc["routes"]
    return Section(
        "Cutover stages",
        (
            "Route",
            "Domain",
            "Phase",
            "Since",
            "Next step",
            "Gates",
            "Waiting for",
            "Ready",
            "Drill",
        ),
        tuple(
            (
                r["route"],
                r["domain"],
                route_phase(r),
                r["mode_since"] or "-",
                r["next_step"] or "-",
                r["gate_status"].upper(),
                ", ".join(r["waiting_for"]) or "-",
                "yes" if r["ready_for_cutover"] else "no",
                _drill(r["drill"]),
            )
            for r in routes
        ),
        tuple(_STYLE[r["gate_status"]] for r in routes),
    )


def _phases(doc: Document) -> Section:
    rows = []
    for route in doc["routes"]:
        for p in route["phases"]:
            episode = p["episode"]
            rows.append(
                (
                    route["route"],
                    phase_name(p),
                    f"{p['compared']} ({p['first']} .. {p['last']})",
                    episode["since"] or "unknown",
                    format_duration(episode["seconds"]),
                    str(episode["compared"]),
                    f"{episode['structural']} ({episode['structural_documented']} documented)",
                    f"{episode['semantic']} ({episode['semantic_undocumented']} undocumented)",
                    str(episode["errors"]),
                    cell_value(episode["p99_ratio"]),
                )
            )
    return Section(
        "Phases (episode: since the route last entered the phase)",
        (
            "Route",
            "Phase",
            "Compared in window",
            "Episode since",
            "For",
            "Compared",
            "Structural",
            "Semantic",
            "Errors",
            "p99 ratio",
        ),
        tuple(rows),
        tuple("" for _ in rows),
    )


def _not_shadowed(doc: Document) -> Section:
    rows = [
        (
            d["domain"],
            n["route"],
            skipped_by(n),
            str(n["requests"]),
        )
        for d in doc["domains"]
        for n in d["not_shadowed"]
    ]
    return Section(
        "Not shadowed (never compared by design; the evidence does not cover them)",
        ("Domain", "Route", "Skipped by", "Requests"),
        tuple(rows),
        tuple("warn" for _ in rows),
    )


def _readiness(doc: Document) -> Section:
    gates = doc["readiness"]
    return Section(
        "Cutover readiness (not part of the verdict)",
        ("Domain", "Route", "Gate", "Phase", "Result", "Value", "Threshold", "Reason"),
        tuple(
            (
                g["domain"],
                g["route"] or "-",
                g["name"],
                g["phase"] or "-",
                g["status"].upper(),
                cell_value(g["value"]),
                cell_value(g["threshold"]),
                g["reason"],
            )
            for g in gates
        ),
        tuple(_STYLE[g["status"]] for g in gates),
    )


def _drills(doc: Document) -> Section:
    drills = doc["drills"]
    return Section(
        "Drills",
        ("Time", "Route", "Result", "Replicas", "Id"),
        tuple(
            (
                d["ts"],
                d["route"],
                "passed" if d["passed"] else "FAILED",
                str(d["replicas"]),
                d["id"] or "-",
            )
            for d in drills
        ),
        tuple("pass" if d["passed"] else "fail" for d in drills),
    )


def cutover_sections(doc: Document) -> list[Section]:
    """Stages and readiness always; phases, not shadowed and drills when there are any."""
    out = [_stages(doc), _readiness(doc)]
    for section in (_phases(doc), _not_shadowed(doc), _drills(doc)):
        if section.rows:
            out.append(section)
    return out
