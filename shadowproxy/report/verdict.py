"""What a report says first: the verdict, and each route's standing in a few words.

Owns the reading that the terminal summary and the HTML banner open with:
the overall verdict (``pass``, ``fail`` or ``insufficient``), one
``Standing`` per route (a status word, why in a few words, its counts and
streams),
most serious first, and a line for each domain whose gates do not pass for a
reason no route shows (no evidence at all, a domain-wide gate). Routes never
compared by design (``NOT_SHADOWED``) stand nowhere: they neither block nor
are at parity. Reads only the JSON document, so it says what the contract
says. Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Standing", "gates_verdict", "standings", "verdict", "verdict_sentence"]

Document = Mapping[str, Any]
"""The JSON form of a report (``document.to_json``)."""

_FAILING = {
    "BLOCKED_STRUCTURAL": 0,
    "BLOCKED_ERRORS": 1,
    "SEMANTIC_UNDOCUMENTED": 2,
    "TIMING_REGRESSION": 3,
}
_ORDER = {"fail": 0, "insufficient": 1, "pass": 2}


@dataclass(frozen=True, slots=True)
class Standing:
    """One route (or, with ``route`` empty, a whole domain): how it stands and why."""

    status: str
    """``fail``, ``insufficient`` or ``pass``."""
    route: str
    domain: str
    why: str
    compared: int
    structural: int
    semantic: int
    timing: int
    streams: int
    """Compared exchanges that were streams (SSE windows, WebSocket sessions, gRPC streams)."""


def gates_verdict(gates: Sequence[Mapping[str, Any]]) -> str:
    """``pass`` when all ``gates`` passed, ``fail`` when one failed, else ``insufficient``."""
    if gates and all(g["passed"] for g in gates):
        return "pass"
    return "fail" if any(g["status"] == "fail" for g in gates) else "insufficient"


def verdict(doc: Document) -> str:
    """The report's verdict: ``gates_verdict`` of every gate."""
    return gates_verdict(doc["gates"])


def _thresholds(doc: Document) -> dict[tuple[str, str], Any]:
    return {(g["domain"], g["name"]): g["threshold"] for g in doc["gates"]}


def _why(route: Mapping[str, Any], doc: Document, limits: Mapping[tuple[str, str], Any]) -> str:
    status, domain = route["status"], route["domain"]
    if status == "BLOCKED_STRUCTURAL":
        return f"structural: {route['structural']} > {limits.get((domain, 'structural'), 0)}"
    if status == "BLOCKED_ERRORS":
        rate = route["rates"]["errors"]["rate"] or 0.0
        limit = limits.get((domain, "error_rate")) or 0.0
        return f"errors: {rate:.2%} > {limit:.2%}"
    if status == "SEMANTIC_UNDOCUMENTED":
        paths = [
            f["path"]
            for f in doc["fingerprints"]
            if f["route"] == route["route"]
            and f["domain"] == domain
            and f["class"] == "semantic"
            and not f["documented"]
        ]
        if not paths:
            return f"{route['semantic']} semantic, undocumented"
        more = f" +{len(paths) - 1}" if len(paths) > 1 else ""
        return f"undocumented: {paths[0]}{more}"
    if status == "TIMING_REGRESSION":
        ratio = route["latency"]["p99_ratio"] or 0.0
        limit = limits.get((domain, "p99_ratio")) or 0.0
        return f"p99: {ratio:.3g}x legacy > {limit:g}x"
    if status == "INSUFFICIENT_EVIDENCE":
        least = limits.get((domain, "min_compared"))
        unread = sum(
            u["count"] for u in doc["inputs"]["unreadable"] if u["domain"] in (domain, "*")
        )
        if least is not None and route["compared"] < least:
            return f"{route['compared']} of {least} compared"
        if route["latency"]["p99_ratio"] is None:
            return "no latency observations"
        if unread:
            return _plural(unread, "unreadable line", "unreadable lines")
        return _domain_insufficiency(doc, domain)
    return "at parity"


def _domain_insufficiency(doc: Document, domain: str) -> str:
    """Why a route with enough evidence of its own is insufficient: its domain's window
    is not covered, or another of its gates is insufficient."""
    held = sorted(
        (g for g in doc["gates"] if g["domain"] == domain and g["status"] == "insufficient"),
        key=lambda g: g["name"] != "coverage",
    )
    if not held:
        return "insufficient evidence"
    return f"{held[0]['name']}: {_reason(held[0])}"


def _reason(gate: Mapping[str, Any]) -> str:
    """A gate's reason without ``insufficient evidence:``, which the status word says."""
    reason: str = gate["reason"]
    return reason.removeprefix("insufficient evidence: ")


def _route_standing(route: Mapping[str, Any], why: str) -> Standing:
    status = route["status"]
    word = (
        "fail"
        if status in _FAILING
        else ("insufficient" if status == "INSUFFICIENT_EVIDENCE" else "pass")
    )
    return Standing(
        word,
        route["route"],
        route["domain"],
        why,
        route["compared"],
        route["structural"],
        route["semantic"],
        route["timing"],
        route["streams"],
    )


def standings(doc: Document) -> list[Standing]:
    """Every route's standing and the domains' unexplained ones, most serious first."""
    limits = _thresholds(doc)
    ranked = [
        (_FAILING.get(r["status"], len(_FAILING)), _route_standing(r, _why(r, doc, limits)))
        for r in doc["routes"]
        if r["status"] != "NOT_SHADOWED"
    ]
    explained = {s.domain for _, s in ranked if s.status != "pass"}
    summaries = {d["domain"]: d for d in doc["domains"]}
    for gate in sorted(doc["gates"], key=lambda g: (g["domain"], _ORDER[g["status"]])):
        domain = gate["domain"]
        if gate["passed"] or domain in explained:
            continue
        explained.add(domain)
        summary = summaries.get(domain, {})
        line = Standing(
            gate["status"],
            "",
            domain,
            f"{gate['name']}: {_reason(gate)}",
            summary.get("compared", 0),
            summary.get("structural", 0),
            summary.get("semantic", 0),
            summary.get("timing", 0),
            summary.get("streams", 0),
        )
        ranked.append((len(_FAILING), line))
    ranked.sort(key=lambda rs: (_ORDER[rs[1].status], rs[0], rs[1].domain, rs[1].route))
    return [line for _, line in ranked]


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _subject(lines: Sequence[Standing]) -> str:
    routes = sum(1 for line in lines if line.route)
    names = [_plural(routes, "route", "routes")] if routes else []
    if len(lines) > routes:
        names.append(_plural(len(lines) - routes, "domain", "domains"))
    return " and ".join(names)


def verdict_sentence(doc: Document, lines: Sequence[Standing]) -> str:
    """``FAIL: 3 routes block cutover, 3 routes need more evidence, 0 routes at parity``."""
    failing = [line for line in lines if line.status == "fail"]
    thin = [line for line in lines if line.status == "insufficient"]
    parity = sum(1 for line in lines if line.status == "pass")
    parts = []
    if failing:
        parts.append(f"{_subject(failing)} {'blocks' if len(failing) == 1 else 'block'} cutover")
    if thin:
        parts.append(f"{_subject(thin)} {'needs' if len(thin) == 1 else 'need'} more evidence")
    parts.append(f"{_plural(parity, 'route', 'routes')} at parity")
    return f"{verdict(doc).upper()}: " + ", ".join(parts)
