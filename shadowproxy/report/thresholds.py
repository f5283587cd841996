"""The gates file: thresholds per domain, their built-in defaults and their validation.

Owns ``gates: {"*": {...}, <domain>: {...}}``: each domain's entry overrides
only the keys it names on top of ``*``, which overrides the built-in
defaults. Unknown keys and wrong types are bad input, named by key.
Imports the report's errors, durations and YAML loading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

from shadowproxy.report.errors import ReportInputError
from shadowproxy.report.timeparse import parse_duration
from shadowproxy.report.yamlfile import load_yaml

__all__ = ["GateSpec", "GatesConfig", "load_gates"]


@dataclass(frozen=True, slots=True)
class GateSpec:
    """Thresholds for one domain."""

    window_s: float = 14 * 86400.0
    max_structural: int = 0
    max_p99_ratio: float = 1.0
    max_error_rate: float = 0.001
    min_compared: int = 1000
    require_documented_semantic: bool = True
    max_gap_s: float = 15 * 60.0
    """Longest stretch of the window without rollups that still counts as covered."""


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

    @property
    def shortest_gap_s(self) -> float:
        """The smallest ``max_gap`` any domain uses."""
        return min([self.default.max_gap_s, *(s.max_gap_s for s in self.domains.values())])


_DURATIONS = {"window": "window_s", "max_gap": "max_gap_s"}
_KEYS: dict[str, type] = {
    "window": str,
    "max_gap": str,
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
        if key in _DURATIONS:
            try:
                changes[_DURATIONS[key]] = parse_duration(str(value))
            except ValueError as exc:
                raise ReportInputError(path, f"{where}.{key}: {exc}") from None
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
