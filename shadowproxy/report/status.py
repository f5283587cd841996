"""Each route's migration status, as the tracker and the summary show it.

Owns ranking what a route's evidence says, most serious first: structural
divergences no known entry documents, errors, undocumented semantic
differences, a conclusive p99 regression, thin or uncovered evidence, and
parity. A route never compared by design (every request skipped for a
reason such as ``method`` or ``mirror_off``) is ``NOT_SHADOWED``: it has no
evidence to give, and is listed so a team sees what the evidence does not
cover. Imports the report's values and the parity gates' rules.
"""

from __future__ import annotations

from shadowproxy.report.gates import RouteStatus, held, p99_conclusive
from shadowproxy.report.known import KnownSet
from shadowproxy.report.summary import Findings
from shadowproxy.report.thresholds import GatesConfig

__all__ = ["route_status"]


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
        if counts.not_shadowed:
            status = RouteStatus.NOT_SHADOWED
        elif counts.structural - route.structural_documented > spec.max_structural:
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
            and p99_conclusive(counts, counts.compared >= spec.min_compared)
        ):
            status = RouteStatus.TIMING_REGRESSION
        elif (
            counts.compared < spec.min_compared
            or ratio is None
            or held(evidence, route.domain)
            or route.domain not in covered
        ):
            status = RouteStatus.INSUFFICIENT_EVIDENCE
        else:
            status = RouteStatus.PARITY_OK
        statuses[(route.domain, route.route)] = status
    return statuses
