"""Cutover gates: evaluating each gate per domain, and each route's status.

Owns evaluating every gate per domain against a ``Findings`` (thresholds
from ``thresholds``), and the migration status of each route. A gate that
would pass on too little evidence, or with evidence in its window that could
not be read, reports ``insufficient`` and does not pass; a conclusive
failure stays a failure whatever the evidence. Imports the report's values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from shadowproxy.report.coverage import explain
from shadowproxy.report.known import KnownSet
from shadowproxy.report.summary import (
    ALL_GATES,
    ANY_DOMAIN,
    Counts,
    DomainSummary,
    Findings,
    LatencySummary,
    Unreadable,
)
from shadowproxy.report.thresholds import GatesConfig, GateSpec

__all__ = [
    "GateResult",
    "GateStatus",
    "RouteStatus",
    "evaluate_gates",
    "route_status",
    "undocumented_semantic",
]

Number = int | float
"""A gate's measured value or threshold."""


class GateStatus(StrEnum):
    """How a gate came out."""

    PASS = "pass"
    FAIL = "fail"
    INSUFFICIENT = "insufficient"


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate for one domain; ``passed`` is True only for ``status == pass``."""

    name: str
    domain: str
    status: GateStatus
    reason: str
    value: Number | None
    threshold: Number | bool | None

    @property
    def passed(self) -> bool:
        """True when the gate passed on sufficient evidence."""
        return self.status is GateStatus.PASS


class RouteStatus(StrEnum):
    """A route's migration status, as the tracker records it."""

    PARITY_OK = "PARITY_OK"
    BLOCKED_STRUCTURAL = "BLOCKED_STRUCTURAL"
    BLOCKED_ERRORS = "BLOCKED_ERRORS"
    SEMANTIC_UNDOCUMENTED = "SEMANTIC_UNDOCUMENTED"
    TIMING_REGRESSION = "TIMING_REGRESSION"
    INSUFFICIENT_EVIDENCE = "INSUFFICIENT_EVIDENCE"


def evaluate_gates(
    evidence: Findings, config: GatesConfig, known: KnownSet
) -> tuple[GateResult, ...]:
    """Every gate for every domain seen in the evidence or named in the gates file."""
    summaries = {d.domain: d for d in evidence.domains}
    damaged = {u.domain for u in evidence.unreadable} - {ANY_DOMAIN}
    names = sorted(set(summaries) | set(config.domains) | damaged)
    if not names:
        return (
            GateResult(
                "evidence",
                "*",
                GateStatus.INSUFFICIENT,
                "no records in the window",
                0,
                config.default.min_compared,
            ),
        )
    results: list[GateResult] = []
    for domain in names:
        spec = config.spec_for(domain)
        summary = summaries.get(domain)
        counts = summary.counts if summary else Counts()
        latency = summary.latency if summary else LatencySummary()
        evidence_gate = _evidence_gate(evidence, domain, spec)
        enough = evidence_gate.status is GateStatus.PASS
        coverage = _coverage_gate(domain, summary, spec)
        gates = [
            evidence_gate,
            _structural_gate(domain, counts, spec),
            _semantic_gate(evidence, domain, counts, spec, known),
            _p99_gate(domain, latency, spec, conclusive=_p99_conclusive(counts, enough)),
            _error_gate(domain, counts, spec),
            coverage,
        ]
        if not enough:
            gates[1:] = [_insufficient(g) for g in gates[1:]]
        if coverage.status is not GateStatus.PASS:
            why = f"insufficient evidence: the window is not covered: {coverage.reason}"
            gates[:-1] = [_insufficient(g, why) for g in gates[:-1]]
        held = _held(evidence, domain)
        results.extend(_unread(g, held) for g in gates)
    return tuple(results)


def _coverage_gate(domain: str, summary: DomainSummary | None, spec: GateSpec) -> GateResult:
    """Whether rollups cover the domain's whole window, with no gap over ``max_gap``."""
    coverage = summary.coverage if summary else None
    if coverage is None:
        reason = "no rollups in the window" if summary is None else "coverage was not measured"
        return GateResult("coverage", domain, GateStatus.INSUFFICIENT, reason, None, spec.max_gap_s)
    longest = max((g.end - g.start for g in coverage.gaps), default=0.0)
    return GateResult(
        "coverage",
        domain,
        GateStatus.PASS if coverage.covered else GateStatus.INSUFFICIENT,
        explain(coverage),
        round(longest, 3),
        spec.max_gap_s,
    )


def _insufficient(gate: GateResult, why: str = "insufficient evidence") -> GateResult:
    if gate.status is not GateStatus.PASS:
        return gate
    return replace(gate, status=GateStatus.INSUFFICIENT, reason=f"{why} ({gate.reason})")


def _held(evidence: Findings, domain: str) -> list[Unreadable]:
    """Unreadable evidence in the window that concerns ``domain``."""
    return [u for u in evidence.unreadable if u.domain in (domain, ANY_DOMAIN)]


def _unread(gate: GateResult, held: Sequence[Unreadable]) -> GateResult:
    """``gate``, insufficient when lines it would read could not be read."""
    mine = [u for u in held if u.gates in (ALL_GATES, gate.name)]
    if not mine:
        return gate
    by_file: dict[str, int] = {}
    for u in mine:
        by_file[u.file] = by_file.get(u.file, 0) + u.count
    files = sorted(by_file.items(), key=lambda fc: (-fc[1], fc[0]))
    shown = ", ".join(f"{file}: {n}" for file, n in files[:3])
    more = f" and {len(files) - 3} more files" if len(files) > 3 else ""
    total = sum(by_file.values())
    return _insufficient(
        gate, f"insufficient evidence: {total} unreadable lines in the window ({shown}{more})"
    )


def _p99_conclusive(counts: Counts, enough: bool) -> bool:
    """Whether a p99 ratio over the maximum is a failure rather than thin evidence.

    With fewer than ``min_compared`` exchanges the p99 ratio alone proves
    nothing (a p99 of a few dozen samples is about their maximum, and one slow
    sample moves it a bucket); exchanges that broke ``compare.timing`` do.
    """
    return enough or counts.timing > 0


def _evidence_gate(evidence: Findings, domain: str, spec: GateSpec) -> GateResult:
    routes = [r for r in evidence.routes if r.domain == domain]
    if not routes:
        return GateResult(
            "min_compared",
            domain,
            GateStatus.INSUFFICIENT,
            "insufficient evidence: no rollup records in the window",
            0,
            spec.min_compared,
        )
    low = sorted(
        (r for r in routes if r.counts.compared < spec.min_compared),
        key=lambda r: r.counts.compared,
    )
    least = min(r.counts.compared for r in routes)
    if not low:
        return GateResult(
            "min_compared",
            domain,
            GateStatus.PASS,
            f"every route has at least {spec.min_compared} compared",
            least,
            spec.min_compared,
        )
    shown = ", ".join(f"{r.route}: {r.counts.compared}" for r in low[:3])
    more = f" and {len(low) - 3} more" if len(low) > 3 else ""
    return GateResult(
        "min_compared",
        domain,
        GateStatus.INSUFFICIENT,
        f"insufficient evidence: {len(low)} of {len(routes)} routes below "
        f"{spec.min_compared} compared ({shown}{more})",
        least,
        spec.min_compared,
    )


def _structural_gate(domain: str, counts: Counts, spec: GateSpec) -> GateResult:
    ok = counts.structural <= spec.max_structural
    reason = (
        f"{counts.structural} structural of {counts.compared} compared"
        f" (95% upper bound {counts.rate('structural').upper95:.2%})"
    )
    return GateResult(
        "structural",
        domain,
        GateStatus.PASS if ok else GateStatus.FAIL,
        reason,
        counts.structural,
        spec.max_structural,
    )


def undocumented_semantic(evidence: Findings, known: KnownSet, domain: str) -> list[str]:
    """Keys of the domain's semantic fingerprints no known difference explains."""
    return [
        fp.key
        for fp in evidence.fingerprints
        if fp.domain == domain and fp.cls == "semantic" and known.explain(fp) is None
    ]


def _semantic_gate(
    evidence: Findings, domain: str, counts: Counts, spec: GateSpec, known: KnownSet
) -> GateResult:
    name = "semantic_documented"
    if not spec.require_documented_semantic:
        return GateResult(name, domain, GateStatus.PASS, "not required", None, False)
    if evidence.source == "prometheus":
        ok = counts.semantic == 0
        reason = (
            "no semantic divergences"
            if ok
            else f"{counts.semantic} semantic divergences; fleet mode has no fingerprints, "
            "run the report on the JSONL files to check them against --known"
        )
        return GateResult(
            name, domain, GateStatus.PASS if ok else GateStatus.FAIL, reason, counts.semantic, 0
        )
    missing = undocumented_semantic(evidence, known, domain)
    overflow = evidence.semantic_overflow.get(domain, 0)
    seen = any(fp.domain == domain and fp.cls == "semantic" for fp in evidence.fingerprints)
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        reason = (
            f"{len(missing)} undocumented semantic fingerprints: {'; '.join(missing[:3])}{more}"
        )
        return GateResult(name, domain, GateStatus.FAIL, reason, len(missing), 0)
    if overflow:
        return GateResult(
            name,
            domain,
            GateStatus.FAIL,
            f"{overflow} semantic differences beyond the fingerprint cap were not checked",
            overflow,
            0,
        )
    if counts.semantic and not seen:
        return GateResult(
            name,
            domain,
            GateStatus.FAIL,
            f"{counts.semantic} semantic divergences in rollups but no exchange "
            "record describes them",
            counts.semantic,
            0,
        )
    return GateResult(
        name, domain, GateStatus.PASS, "every semantic fingerprint is documented", 0, 0
    )


def _p99_gate(
    domain: str, latency: LatencySummary, spec: GateSpec, *, conclusive: bool
) -> GateResult:
    ratio = latency.p99_ratio
    if ratio is None:
        return GateResult(
            "p99_ratio",
            domain,
            GateStatus.INSUFFICIENT,
            "insufficient evidence: no latency observations",
            None,
            spec.max_p99_ratio,
        )
    ok = ratio <= spec.max_p99_ratio + 1e-9
    reason = (
        f"candidate p99 {latency.candidate.p99:.3f} ms vs legacy p99 {latency.legacy.p99:.3f} ms"
    )
    status = GateStatus.PASS if ok else GateStatus.FAIL
    if not ok and not conclusive:
        status, reason = GateStatus.INSUFFICIENT, f"insufficient evidence ({reason})"
    return GateResult(
        "p99_ratio",
        domain,
        status,
        reason,
        round(ratio, 4),
        spec.max_p99_ratio,
    )


def _error_gate(domain: str, counts: Counts, spec: GateSpec) -> GateResult:
    rate = counts.rate("errors")
    if rate.value is None:
        return GateResult(
            "error_rate",
            domain,
            GateStatus.INSUFFICIENT,
            "insufficient evidence: nothing compared",
            None,
            spec.max_error_rate,
        )
    ok = rate.value <= spec.max_error_rate
    reason = (
        f"{counts.errors} errors of {counts.compared} compared (95% upper bound {rate.upper95:.3%})"
    )
    return GateResult(
        "error_rate",
        domain,
        GateStatus.PASS if ok else GateStatus.FAIL,
        reason,
        round(rate.value, 6),
        spec.max_error_rate,
    )


def route_status(
    evidence: Findings, config: GatesConfig, known: KnownSet
) -> dict[tuple[str, str], RouteStatus]:
    """Each (domain, route)'s migration status; conclusive problems outrank thin evidence."""
    undocumented_routes = {
        fp.route
        for fp in evidence.fingerprints
        if fp.cls == "semantic" and known.explain(fp) is None
    }
    described = {fp.route for fp in evidence.fingerprints if fp.cls == "semantic"}
    covered = {d.domain for d in evidence.domains if d.coverage and d.coverage.covered}
    statuses: dict[tuple[str, str], RouteStatus] = {}
    for route in evidence.routes:
        spec = config.spec_for(route.domain)
        counts = route.counts
        errors = counts.rate("errors").value
        ratio = route.latency.p99_ratio
        semantic_unknown = (
            spec.require_documented_semantic
            and counts.semantic > 0
            and (
                evidence.source == "prometheus"
                or route.route in undocumented_routes
                or route.route not in described
                or evidence.semantic_overflow.get(route.domain, 0) > 0
            )
        )
        if counts.structural > spec.max_structural:
            status = RouteStatus.BLOCKED_STRUCTURAL
        elif errors is not None and errors > spec.max_error_rate:
            status = RouteStatus.BLOCKED_ERRORS
        elif semantic_unknown or (
            spec.require_documented_semantic and route.route in undocumented_routes
        ):
            status = RouteStatus.SEMANTIC_UNDOCUMENTED
        elif (
            ratio is not None
            and ratio > spec.max_p99_ratio + 1e-9
            and _p99_conclusive(counts, counts.compared >= spec.min_compared)
        ):
            status = RouteStatus.TIMING_REGRESSION
        elif (
            counts.compared < spec.min_compared
            or ratio is None
            or _held(evidence, route.domain)
            or route.domain not in covered
        ):
            status = RouteStatus.INSUFFICIENT_EVIDENCE
        else:
            status = RouteStatus.PARITY_OK
        statuses[(route.domain, route.route)] = status
    return statuses
