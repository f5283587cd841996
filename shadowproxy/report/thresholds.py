"""The gates file: thresholds per domain, their built-in defaults and their validation.

Owns ``gates: {"*": {...}, <domain>: {...}}``: each domain's entry overrides
only the keys it names on top of ``*``, which overrides the built-in
defaults. ``canary`` holds the canary steps' thresholds (``bake``,
``min_compared``, and per step under ``steps``), merged the same way.
Unknown keys and wrong types are bad input, named by key. Imports the
report's errors, durations and YAML loading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

from shadowproxy.report.errors import ReportInputError
from shadowproxy.report.timeparse import parse_duration
from shadowproxy.report.yamlfile import load_yaml

__all__ = ["CanarySpec", "GateSpec", "GatesConfig", "StepSpec", "load_gates"]


@dataclass(frozen=True, slots=True)
class StepSpec:
    """What the evidence of one canary step needs before the route moves on."""

    bake_s: float = 86400.0
    """How long the route must have been at the step (its evidence's span)."""
    min_compared: int = 1000
    """Exchanges compared at the step."""


@dataclass(frozen=True, slots=True)
class CanarySpec:
    """Every step's defaults, and the steps that differ (by canary percent)."""

    default: StepSpec = StepSpec()
    steps: tuple[tuple[float, StepSpec], ...] = ()

    def step(self, percent: float) -> StepSpec:
        """The thresholds of the step at ``percent``."""
        return dict(self.steps).get(percent, self.default)


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
    min_duration_s: float = 0.0
    """Seconds of the window the rollups must cover (0: the coverage gate alone)."""
    drill_within_s: float = 14 * 86400.0
    """A passed ``shadow drill`` of each route must be this recent for cutover."""
    owner: str = ""
    """Who owns the domain's migration (the tracker's ``owner`` column)."""
    canary: CanarySpec = CanarySpec()


@dataclass(frozen=True, slots=True)
class GatesConfig:
    """The ``*`` defaults and per-domain overrides (already merged onto ``*``)."""

    default: GateSpec = GateSpec()
    domains: Mapping[str, GateSpec] = field(default_factory=dict)
    source: str = "<defaults>"

    def spec_for(self, domain: str) -> GateSpec:
        """The thresholds that apply to ``domain``."""
        return self.domains.get(domain, self.default)


_DURATIONS = {
    "window": "window_s",
    "max_gap": "max_gap_s",
    "min_duration": "min_duration_s",
    "drill_within": "drill_within_s",
}
_KEYS: dict[str, type] = {
    "window": str,
    "max_gap": str,
    "min_duration": str,
    "drill_within": str,
    "max_structural": int,
    "max_p99_ratio": float,
    "max_error_rate": float,
    "min_compared": int,
    "require_documented_semantic": bool,
    "owner": str,
    "canary": dict,
}
_STEP_KEYS = ("bake", "min_compared")
_MAX_OWNER = 200


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
            changes[_DURATIONS[key]] = _duration(path, f"{where}.{key}", value)
            continue
        if key == "owner":
            if not isinstance(value, str) or not value.strip() or len(value) > _MAX_OWNER:
                raise ReportInputError(path, f"{where}.owner: must be a name (1-200 characters)")
            changes["owner"] = value.strip()
            continue
        if key == "canary":
            changes["canary"] = _canary(path, f"{where}.canary", value, base.canary)
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


def _duration(path: str, where: str, value: object) -> float:
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        raise ReportInputError(path, f"{where}: {exc}") from None


def _step(path: str, where: str, body: object, base: StepSpec) -> StepSpec:
    if not isinstance(body, dict):
        raise ReportInputError(path, f"{where}: must be a mapping of bake and min_compared")
    step = base
    for key, value in body.items():
        if key == "bake":
            step = replace(step, bake_s=_duration(path, f"{where}.bake", value))
        elif key == "min_compared":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ReportInputError(path, f"{where}.min_compared: must be a non-negative int")
            step = replace(step, min_compared=value)
        elif key != "steps":
            raise ReportInputError(
                path, f"{where}.{key}: unknown key (one of {', '.join(_STEP_KEYS)})"
            )
    return step


def _canary(path: str, where: str, body: object, base: CanarySpec) -> CanarySpec:
    """``canary: {bake, min_compared, steps: {PERCENT: {bake, min_compared}}}`` onto ``base``."""
    default = _step(path, where, body, base.default)
    assert isinstance(body, dict)
    steps = dict(base.steps)
    given = body.get("steps") or {}
    if not isinstance(given, dict):
        raise ReportInputError(path, f"{where}.steps: must map canary percents to thresholds")
    for percent, step_body in given.items():
        try:
            number = float(percent)
        except (TypeError, ValueError):
            number = -1.0
        if isinstance(percent, bool) or not 0 <= number <= 100:
            raise ReportInputError(path, f"{where}.steps.{percent}: must be a percent (0-100)")
        steps[number] = _step(path, f"{where}.steps.{percent}", step_body, default)
    return CanarySpec(default, tuple(sorted(steps.items())))
