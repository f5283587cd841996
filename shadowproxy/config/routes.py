"""The ``routes:`` list and the ``cutover:`` section: which requests form a route, who answers."""

from __future__ import annotations

from collections.abc import Mapping

from shadowproxy.compare.paths import parse_pattern
from shadowproxy.compare.rules import CompareRules
from shadowproxy.config.reader import ConfigError, Reader, is_token, section
from shadowproxy.config.rules import compare_rules
from shadowproxy.config.streams import route_stream
from shadowproxy.settings import (
    CaptureSettings,
    CutoverSettings,
    RollbackSettings,
    RouteCapture,
    RouteIdentity,
    RouteSpec,
    ShadowSettings,
    StreamSettings,
)

__all__ = ["FORCE_LEGACY_ENV", "ROUTE_MODES", "cutover_settings", "route_specs", "shadow_section"]

FORCE_LEGACY_ENV = "SHADOWPROXY_FORCE_LEGACY"
ROUTE_MODES = ("shadow", "canary", "candidate", "legacy-only")
_MAX_ALLOW = 1000
_MAX_KEY = 256


def route_specs(
    reader: Reader,
    value: object,
    shadow: ShadowSettings,
    rules: CompareRules,
    cutover: CutoverSettings,
    streams: StreamSettings,
    capture: CaptureSettings,
) -> tuple[RouteSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise reader.error("must be a list of routes", "routes")
    specs: list[RouteSpec] = []
    names: set[str] = set()
    for index, item in enumerate(value):
        route = Reader(reader.source, item, f"routes[{index}]")
        match = route.string("match", None)
        if match is None:
            raise route.error("is required", "match")
        if not match.startswith("/"):
            raise route.error("must start with /", "match")
        for part in match.rstrip("*").split("/"):
            if ("{" in part or "}" in part) and not (part.startswith("{") and part.endswith("}")):
                raise route.error(f"a placeholder must be a whole segment, got {part!r}", "match")
        chosen = methods(route)
        writes = mirror_writes(route)
        shown = match if chosen is None else f"{','.join(chosen)} {match}"
        name = route.string("name", shown) or shown
        if name in names:
            raise route.error(f"duplicate route name {name!r}", "name")
        names.add(name)
        spec = RouteSpec(
            match=match,
            name=name,
            domain=route.string("domain", "default") or "default",
            sample_percent=route.number("sample_percent", shadow.sample_percent, maximum=100.0),
            mirror_writes=writes is not False,
            rules=compare_rules(route.child("compare"), rules),
            mode=mode(route, "mode", None),  # type: ignore[arg-type]
            canary_percent=route.number("canary_percent", 0.0, maximum=100.0),
            sticky=sticky(route),
            canary_allow=allowlist(route),
            methods=None if chosen is None else frozenset(chosen),
            mirror=route.boolean("mirror", True),
            fallback=route.boolean("fallback", cutover.fallback),
            stream=route_stream(route.child("stream"), streams),
            dry_run=writes == "dry_run",
            identity=identity(route, match),
            capture=route_capture(route.child("capture"), capture),
        )
        if not spec.mirror and spec.mirror_writes:
            raise route.error("mirror: false never mirrors; drop mirror_writes", "mirror_writes")
        if spec.mode == "canary" and spec.canary_percent == 0 and not spec.canary_allow:
            raise route.error("a canary needs canary_percent > 0 or canary_allow", "canary_percent")
        specs.append(spec)
        route.finish()
    return tuple(specs)


def shadow_section(top: Reader) -> ShadowSettings:
    """The ``shadow:`` section; the dry-run header must be a header a write's copy can carry."""
    shadow = section(top, "shadow", ShadowSettings())
    if not is_token(shadow.dry_run_header):
        raise top.child("shadow").error("must be a header name", "dry_run_header")
    value = shadow.dry_run_value
    if not value.isprintable() or value != value.strip():
        raise top.child("shadow").error(
            "must be printable, without leading or trailing spaces", "dry_run_value"
        )
    return shadow


def route_capture(reader: Reader, base: CaptureSettings) -> RouteCapture:
    """A route's ``capture:`` share and rate, the ``capture:`` section's where unset."""
    capture = RouteCapture(
        percent=reader.number("percent", base.percent, maximum=100.0),
        per_second=reader.number("per_second", base.per_second),
    )
    reader.finish()
    return capture


def identity(route: Reader, match: str) -> RouteIdentity | None:
    """A route's ``identity:`` (docs/writes.md); ``path`` names placeholders of ``match``."""
    if not route.has("identity"):
        return None
    reader = route.child("identity")
    domain = route.data.get("domain")
    family = reader.string("family", domain if isinstance(domain, str) else None) or "default"
    patterns = {key: reader.strings(key) for key in ("create", "body")}
    for key, texts in patterns.items():
        for text in texts:
            try:
                parse_pattern(text)
            except ValueError as exc:
                raise reader.error(str(exc), key) from None
    placeholders = {
        part[1:-1]: index
        for index, part in enumerate(match.split("/"))
        if part.startswith("{") and part.endswith("}") and not match.endswith("*")
    }
    indices = []
    for name in reader.strings("path"):
        index = placeholders.get(name.strip("{}"))
        if index is None:
            raise reader.error(f"{name!r} is not a placeholder of {match!r}", "path")
        indices.append(index)
    spec = RouteIdentity(
        family=family,
        create=patterns["create"],
        path=tuple(indices),
        query=reader.strings("query"),
        body=patterns["body"],
    )
    reader.finish()
    if not (spec.create or spec.path or spec.query or spec.body):
        raise reader.error("names no create, path, query or body")
    return spec


def mirror_writes(reader: Reader) -> bool | str:
    """``mirror_writes``: false, true (the candidate has its own store) or dry_run."""
    value = reader.raw("mirror_writes")
    if value is None:
        return False
    if not isinstance(value, bool) and value != "dry_run":
        raise reader.error("must be true, false or dry_run", "mirror_writes")
    return value


def methods(reader: Reader) -> tuple[str, ...] | None:
    """The ``methods`` a route matches (upper-cased, in the given order), None for all."""
    given = reader.strings("methods", ())
    if not reader.has("methods"):
        return None
    chosen = tuple(dict.fromkeys(m.upper() for m in given))
    if not chosen or not all(is_token(m) for m in chosen):
        raise reader.error("must be a list of HTTP methods (GET, POST, ...)", "methods")
    return chosen


def allowlist(reader: Reader) -> tuple[str, ...]:
    """``canary_allow``: at most 1000 keys of at most 256 characters."""
    keys = reader.strings("canary_allow", ())
    if len(keys) > _MAX_ALLOW or any(len(k) > _MAX_KEY or not k.isprintable() for k in keys):
        raise reader.error(
            f"must be at most {_MAX_ALLOW} printable keys of at most {_MAX_KEY} characters",
            "canary_allow",
        )
    return tuple(dict.fromkeys(keys))


def mode(reader: Reader, key: str, default: str | None) -> str | None:
    value = reader.string(key, default)
    if value is not None and value not in ROUTE_MODES:
        raise reader.error(f"must be one of {', '.join(ROUTE_MODES)}", key)
    return value


def sticky(reader: Reader) -> str:
    value = reader.string("sticky", "client") or "client"
    kind, _, name = value.partition(":")
    if value != "client" and (kind not in {"header", "cookie"} or not name):
        raise reader.error("must be client, header:NAME or cookie:NAME", "sticky")
    return value


def cutover_settings(top: Reader, env: Mapping[str, str], log_dir: str) -> CutoverSettings:
    """The ``cutover:`` section and the force-legacy environment variable."""
    reader = top.child("cutover")
    default_mode = mode(reader, "default_mode", "shadow")
    rollback = section(reader, "rollback", RollbackSettings())
    state_dir = reader.string("state_dir", None) or log_dir
    fallback = reader.boolean("fallback", True)
    reader.finish()
    if rollback.max_structural_rate > 1 or rollback.max_error_rate > 1:
        rate = "max_structural_rate" if rollback.max_structural_rate > 1 else "max_error_rate"
        raise reader.child("rollback").error("must be <= 1", rate)
    flag = env.get(FORCE_LEGACY_ENV, "").strip().lower()
    if flag not in {"", "0", "1", "true", "false", "yes", "no", "on", "off"}:
        raise ConfigError(f"{FORCE_LEGACY_ENV}: must be 1 or 0, got {flag!r}")
    return CutoverSettings(
        default_mode=default_mode,  # type: ignore[arg-type]
        force_legacy=flag in {"1", "true", "yes", "on"},
        rollback=rollback,
        state_dir=state_dir,
        fallback=fallback,
    )
