"""Cutover gates: their configuration, their evaluation, and per-route status.

Owns the gates file (``gates: {"*": {...}, <domain>: {...}}``), the built-in
defaults, evaluating every gate per domain against a ``Findings``, and the
migration status of each route. A gate that would pass on too little
evidence reports ``insufficient`` and does not pass; a conclusive failure
stays a failure whatever the evidence size. Imports the report's values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum

from shadowproxy.report.errors import ReportInputError
from shadowproxy.report.known import KnownSet
from shadowproxy.report.summary import Counts, Findings, LatencySummary
from shadowproxy.report.timeparse import parse_duration
from shadowproxy.report.yamlfile import load_yaml

__all__ = [
    "GateResult",
    "GateSpec",
    "GateStatus",
    "GatesConfig",
    "RouteStatus",
    "evaluate_gates",
    "load_gates",
    "route_status",
    "undocumented_semantic",
]

Number = int | float
"""A gate's measured value or threshold."""


@dataclass(frozen=True, slots=True)
class GateSpec:
    """Thresholds for one domain."""

    window_s: float = 14 * 86400.0
    max_structural: int = 0
    max_p99_ratio: float = 1.0
    max_error_rate: float = 0.001
    min_compared: int = 1000
    require_documented_semantic: bool = True


@dataclass(frozen=True, slots=True)
class GatesConfig:
    """The ``*`` defaults and per-domain overrides (already merged onto ``*``)."""

    default: GateSpec = GateSpec()
    domains: Mapping[str, GateSpec] = field(default_factory=dict)
    source: str = "<defaults>"

    def spec_for(self, domain: str) -> GateSpec:
        """The thresholds that apply to ``domain``."""
        return self.domains.get(domain, self.default)

    @property
    def longest_window_s(self) -> float:
        """The widest window any domain uses."""
        return max([self.default.window_s, *(s.window_s for s in self.domains.values())])


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


_KEYS: dict[str, type] = {
    "window": str,
    "max_structural": int,
    "max_p99_ratio": float,
    "max_error_rate": float,
    "min_compared": int,
    "require_documented_semantic": bool,
}


def load_gates(path: str | None) -> GatesConfig:
    """The gates in ``path`` (built-in defaults when None); ReportInputError names the key."""
    if path is None:
        return GatesConfig()
    document = load_yaml(path)
    if not isinstance(document, dict) or not isinstance(document.get("gates"), dict):
        raise ReportInputError(path, "gates: missing (expected a mapping of domain to thresholds)")
    extra = set(document) - {"gates"}
    if extra:
        raise ReportInputError(path, f"{sorted(extra, key=str)[0]}: unknown key")
    gates = document["gates"]
    default = _spec(path, "*", gates.get("*") or {}, GateSpec())
    domains = {
        str(domain): _spec(path, str(domain), body or {}, default)
        for domain, body in gates.items()
        if domain != "*"
    }
    return GatesConfig(default, domains, path)


def _spec(path: str, domain: str, body: object, base: GateSpec) -> GateSpec:
    where = f"gates.{domain}"
    if not isinstance(body, dict):
        raise ReportInputError(path, f"{where}: must be a mapping of thresholds")
    changes: dict[str, object] = {}
    for key, value in body.items():
        expected = _KEYS.get(key)
        if expected is None:
            raise ReportInputError(path, f"{where}.{key}: unknown key (one of {', '.join(_KEYS)})")
        if key == "window":
            try:
                changes["window_s"] = parse_duration(str(value))
            except ValueError as exc:
                raise ReportInputError(path, f"{where}.window: {exc}") from None
            continue
        ok = (
            isinstance(value, bool)
            if expected is bool
            else isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
        )
        if expected is int and ok and value != int(value):
            ok = False
        if not ok:
            raise ReportInputError(
                path, f"{where}.{key}: must be a non-negative {expected.__name__}"
            )
        changes[key] = expected(value)
    names = {f.name for f in fields(GateSpec)}
    assert set(changes) <= names
    return replace(base, **changes)  # type: ignore[arg-type]


def evaluate_gates(
    evidence: Findings, config: GatesConfig, known: KnownSet
) -> tuple[GateResult, ...]:
    """Every gate for every domain seen in the evidence or named in the gates file."""
    summaries = {d.domain: d for d in evidence.domains}
    names = sorted(set(summaries) | set(config.domains))
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
        gates = [
            evidence_gate,
            _structural_gate(domain, counts, spec),
            _semantic_gate(evidence, domain, counts, spec, known),
            _p99_gate(domain, latency, spec, conclusive=_p99_conclusive(counts, enough)),
            _error_gate(domain, counts, spec),
        ]
        if not enough:
            gates[1:] = [_insufficient(g) for g in gates[1:]]
        results.extend(gates)
    return tuple(results)


def _insufficient(gate: GateResult) -> GateResult:
    if gate.status is not GateStatus.PASS:
        return gate
    return replace(
        gate, status=GateStatus.INSUFFICIENT, reason=f"insufficient evidence ({gate.reason})"
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
        elif counts.compared < spec.min_compared or ratio is None:
            status = RouteStatus.INSUFFICIENT_EVIDENCE
        else:
            status = RouteStatus.PARITY_OK
        statuses[(route.domain, route.route)] = status
    return statuses
