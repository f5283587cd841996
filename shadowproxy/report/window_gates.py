"""The gates on the window itself: its coverage by rollups, and how long they cover it.

Owns ``coverage`` (the rollups cover the domain's whole gate window with no
gap over ``max_gap``, as ``coverage`` measures) and ``min_duration`` (they
cover at least that much of it: a floor where the window is shorter, or its
gaps add up; a window shorter than ``min_duration`` fails, since no evidence
inside it can pass). Imports the report's values and the coverage measure.
"""

from __future__ import annotations

from shadowproxy.report.coverage import explain
from shadowproxy.report.gate_result import GateResult, GateStatus
from shadowproxy.report.summary import DomainSummary
from shadowproxy.report.thresholds import GateSpec
from shadowproxy.report.timeparse import format_duration

__all__ = ["coverage_gate", "min_duration_gate"]


def coverage_gate(domain: str, summary: DomainSummary | None, spec: GateSpec) -> GateResult:
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


def min_duration_gate(domain: str, summary: DomainSummary | None, spec: GateSpec) -> GateResult:
    """Whether the rollups cover at least ``min_duration`` of the window (coverage's measure).

    Evaluated only where ``min_duration`` is set. A window shorter than it
    fails: no evidence inside it can pass.
    """
    name, want = "min_duration", spec.min_duration_s
    coverage = summary.coverage if summary else None
    if coverage is None:
        reason = "insufficient evidence: no rollups in the window"
        return GateResult(name, domain, GateStatus.INSUFFICIENT, reason, None, want)
    window = coverage.until - coverage.since
    covered = round(coverage.covered_s, 3)
    if window < want:
        return GateResult(
            name,
            domain,
            GateStatus.FAIL,
            f"the window ({format_duration(window)}) is shorter than min_duration "
            f"({format_duration(want)}): widen the gate window or --since",
            covered,
            want,
        )
    ok = coverage.covered_s >= want
    reason = f"rollups cover {format_duration(coverage.covered_s)} of {format_duration(want)}"
    status = GateStatus.PASS if ok else GateStatus.INSUFFICIENT
    return GateResult(
        name, domain, status, reason if ok else f"insufficient evidence: {reason}", covered, want
    )
