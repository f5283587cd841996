"""What the summary and the page say of each route's cutover: its phase, ready or what is missing.

Owns the short reading of cutover readiness (docs/report.md, Cutover
readiness) that the terminal summary and the HTML cards show beside the
parity verdict: each route's current phase (``canary 25%``, ``shadow``,
``not shadowed``), whether it is ready for cutover, and what its readiness
still misses, in a few words, in the order a route meets them:

- ``parity``: a parity gate of its domain other than ``min_duration``;
- ``duration 6d 0h of 7d 0h``: the ``min_duration`` gate (how long the
  rollups cover of how long they must);
- ``canary 100%``: its canary gates at 100 % (routes not shadowed have none);
- ``drill``: a passed ``shadow drill`` within ``drill_within``;

each followed by ``(failed)`` when it failed rather than lacks evidence. The
phase, readiness and parity gates are read from the JSON document; which of
a route's own readiness gates do not pass (canary at 100 %, drill) comes
from its stage (``readiness.RouteStage``), which the document sums up as
``ready_for_cutover`` and ``ready_reason``. Also how a route not shadowed
reads: its traffic and skip reasons. Imports the report's readiness values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shadowproxy.report.cutover_tables import route_phase, skipped_by
from shadowproxy.report.gate_result import GateResult, GateStatus
from shadowproxy.report.readiness import RouteStage
from shadowproxy.report.timeparse import format_duration

__all__ = ["Cutovers", "RouteCutover", "not_shadowed_why", "route_cutovers"]

Document = Mapping[str, Any]
"""The JSON form of a report (``document.to_json``)."""


@dataclass(frozen=True, slots=True)
class RouteCutover:
    """One route's place in its cutover, as the summary and the page say it."""

    route: str
    domain: str
    phase: str
    """``canary 25%``, ``shadow``, ``candidate``, ``unknown``, ``not shadowed``, ..."""
    ready: bool
    """Ready for cutover (the route's ``ready_for_cutover`` in the JSON)."""
    missing: tuple[str, ...]
    """What readiness waits for (``parity``, ``drill (failed)``, ...); empty when ready."""
    failed: bool
    """One of ``missing`` failed: more evidence alone cannot make the route ready."""

    @property
    def missing_text(self) -> str:
        """``parity, canary 100%, drill``, or ``-`` when nothing is missing."""
        return ", ".join(self.missing) or "-"


Cutovers = Mapping[tuple[str, str], RouteCutover]
"""Each route's ``RouteCutover`` by (domain, route)."""


def _part(name: str, failed: bool) -> tuple[str, bool]:
    return (f"{name} (failed)" if failed else name), failed


def _duration(gate: Mapping[str, Any]) -> tuple[str, bool]:
    if gate["status"] == "fail":
        return f"duration (failed: the window is under {format_duration(gate['threshold'])})", True
    return (
        f"duration {format_duration(gate['value'])} of {format_duration(gate['threshold'])}",
        False,
    )


def _missing(parity: Sequence[Mapping[str, Any]], stage: RouteStage) -> list[tuple[str, bool]]:
    """What the route's readiness misses, each with whether it failed."""
    held = [g for g in parity if not g["passed"]]
    others = [g for g in held if g["name"] != "min_duration"]
    parts = [_part("parity", any(g["status"] == "fail" for g in others))] if others else []
    parts.extend(_duration(g) for g in held if g["name"] == "min_duration")
    own: list[tuple[str, GateResult]] = [("drill", stage.drill)]
    if not stage.not_shadowed:
        own.insert(0, ("canary 100%", stage.canary_100))
    parts.extend(
        _part(name, gate.status is GateStatus.FAIL) for name, gate in own if not gate.passed
    )
    return parts


def route_cutovers(doc: Document, stages: Mapping[tuple[str, str], RouteStage]) -> Cutovers:
    """Every route's phase, readiness and what readiness still misses."""
    parity: dict[str, list[Mapping[str, Any]]] = {}
    for gate in doc["gates"]:
        parity.setdefault(gate["domain"], []).append(gate)
    out: dict[tuple[str, str], RouteCutover] = {}
    for route in doc["routes"]:
        key = (route["domain"], route["route"])
        ready = route["ready_for_cutover"]
        parts = [] if ready else _missing(parity.get(route["domain"], []), stages[key])
        out[key] = RouteCutover(
            route["route"],
            route["domain"],
            route_phase(route),
            ready,
            tuple(text for text, _ in parts),
            any(failed for _, failed in parts),
        )
    return out


def not_shadowed_why(entry: Mapping[str, Any]) -> str:
    """A not-shadowed route's traffic and why: ``20 requests (method)``.

    Several reasons carry their counts: ``20 requests (method: 15, upgrade: 5)``.
    """
    requests = entry["requests"]
    reasons = next(iter(entry["reasons"])) if len(entry["reasons"]) == 1 else skipped_by(entry)
    return f"{requests} {'request' if requests == 1 else 'requests'} ({reasons})"
