"""Configuration loading: one YAML file plus CLI flags, validated once into ``Settings``.

Every problem raises ``ConfigError`` whose message is one line naming the
file and the key (``config.yaml: shadow.timeout_s: must be a number > 0``);
the CLI prints it and exits 2. Unknown keys are errors, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import orjson
import yaml

from shadowproxy.compare import validate_rules
from shadowproxy.compare.rules import (
    CompareRules,
    Equivalences,
    NoiseRules,
    TimingRules,
    Tolerance,
)
from shadowproxy.settings import (
    AdminSettings,
    CutoverSettings,
    EvidenceSettings,
    GrpcCardinality,
    GrpcMethodSpec,
    GrpcSettings,
    HostAddress,
    LegacySettings,
    RedactSettings,
    RollbackSettings,
    RouteSpec,
    Settings,
    ShadowSettings,
    UpstreamSettings,
)
from shadowproxy.sinks import Redactor

__all__ = [
    "ADMIN_TOKEN_ENV",
    "FORCE_LEGACY_ENV",
    "ConfigError",
    "Overrides",
    "is_loopback",
    "load_settings",
    "parse_address",
    "settings_from_document",
]

ADMIN_TOKEN_ENV = "SHADOWPROXY_ADMIN_TOKEN"
FORCE_LEGACY_ENV = "SHADOWPROXY_FORCE_LEGACY"
_ROUTE_MODES = ("shadow", "canary", "candidate", "legacy-only")
T = TypeVar("T")


class ConfigError(Exception):
    """A configuration problem a user can fix; the message is one line."""


@dataclass(frozen=True, slots=True)
class Overrides:
    """CLI flags; each one set replaces the file's value."""

    listen: str | None = None
    admin: str | None = None
    legacy: str | None = None
    candidate: str | None = None
    secondary: str | None = None
    log_dir: str | None = None
    workers: str | None = None
    grpc_listen: str | None = None
    grpc_descriptors: str | None = None
    grpc_legacy: str | None = None
    grpc_candidate: str | None = None
    grpc_secondary: str | None = None


class _Reader:
    """Typed access to one mapping of the YAML document, with key paths for messages."""

    def __init__(self, source: str, data: object, path: str) -> None:
        self.source = source
        self.path = path
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise self.error("must be a mapping")
        self.data: Mapping[str, object] = data
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, message: str, name: str | None = None) -> ConfigError:
        where = self.key(name) if name else (self.path or "(top level)")
        return ConfigError(f"{self.source}: {where}: {message}")

    def raw(self, name: str) -> object:
        self.used.add(name)
        return self.data.get(name)

    def has(self, name: str) -> bool:
        return name in self.data

    def child(self, name: str) -> _Reader:
        return _Reader(self.source, self.raw(name), self.key(name))

    def number(
        self,
        name: str,
        default: float,
        *,
        minimum: float = 0.0,
        maximum: float | None = None,
        exclusive_min: bool = False,
    ) -> float:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error("must be a number", name)
        too_low = value <= minimum if exclusive_min else value < minimum
        if too_low or (maximum is not None and value > maximum):
            bound = f"> {minimum}" if exclusive_min else f">= {minimum}"
            limit = f" and <= {maximum}" if maximum is not None else ""
            raise self.error(f"must be {bound}{limit}", name)
        return float(value)

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error("must be an integer", name)
        if value < minimum:
            raise self.error(f"must be >= {minimum}", name)
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error("must be true or false", name)
        return value

    def string(self, name: str, default: str | None) -> str | None:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, str) or not value:
            raise self.error("must be a non-empty string", name)
        return value

    def strings(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error("must be a list of non-empty strings", name)
        return tuple(value)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.error("unknown key", str(unknown[0]))


def parse_address(text: str, where: str) -> HostAddress:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) into an address; ``where`` prefixes errors."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{where}: must be HOST:PORT, got {text!r}")
    return HostAddress(host, int(port))


def is_loopback(host: str) -> bool:
    """True when ``host`` is only reachable from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(value: str | None, where: str) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(f"{where}: must be an http:// or https:// URL, got {value!r}")
    if parts.query or parts.fragment or (parts.path not in {"", "/"}):
        raise ConfigError(f"{where}: must be a base URL without path, query or fragment")
    try:
        parts.port  # noqa: B018 - property access validates the port
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return value.rstrip("/")


def _compare_rules(reader: _Reader, base: CompareRules) -> CompareRules:
    """Rules from ``reader`` where set, ``base`` elsewhere (routes inherit the global rules)."""
    tolerance = reader.child("tolerance")
    timing = reader.child("timing")
    equivalences = reader.child("equivalences")
    noise = reader.child("noise")
    rules = CompareRules(
        ignore=reader.strings("ignore", base.ignore),
        unordered=reader.strings("unordered", base.unordered),
        tolerance=Tolerance(
            absolute=tolerance.number("absolute", base.tolerance.absolute),
            relative=tolerance.number("relative", base.tolerance.relative, maximum=1.0),
        ),
        headers=tuple(h.lower() for h in reader.strings("headers", base.headers)),
        timing=TimingRules(
            ratio=timing.number("ratio", base.timing.ratio, minimum=1.0),
            min_delta_ms=timing.number("min_delta_ms", base.timing.min_delta_ms),
            absolute_ms=timing.number("absolute_ms", base.timing.absolute_ms, exclusive_min=True),
        ),
        equivalences=Equivalences(
            **{
                f.name: equivalences.boolean(f.name, getattr(base.equivalences, f.name))
                for f in fields(Equivalences)
            }
        ),
        noise=NoiseRules(
            learn=noise.boolean("learn", base.noise.learn),
            rate=noise.number("rate", base.noise.rate, maximum=1.0),
            min_samples=noise.integer("min_samples", base.noise.min_samples, minimum=1),
            max_paths=noise.integer("max_paths", base.noise.max_paths, minimum=1),
        ),
        max_decoded_bytes=reader.integer("max_decoded_bytes", base.max_decoded_bytes, minimum=1),
    )
    for part in (tolerance, timing, equivalences, noise, reader):
        part.finish()
    try:
        validate_rules(rules)
    except ValueError as exc:
        key, _, problem = str(exc).partition(": ")
        raise reader.error(problem, key) from None
    return rules


def _routes(
    reader: _Reader, value: object, shadow: ShadowSettings, rules: CompareRules
) -> tuple[RouteSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise reader.error("must be a list of routes", "routes")
    specs: list[RouteSpec] = []
    names: set[str] = set()
    for index, item in enumerate(value):
        route = _Reader(reader.source, item, f"routes[{index}]")
        match = route.string("match", None)
        if match is None:
            raise route.error("is required", "match")
        if not match.startswith("/"):
            raise route.error("must start with /", "match")
        for part in match.rstrip("*").split("/"):
            if ("{" in part or "}" in part) and not (part.startswith("{") and part.endswith("}")):
                raise route.error(f"a placeholder must be a whole segment, got {part!r}", "match")
        name = route.string("name", match) or match
        if name in names:
            raise route.error(f"duplicate route name {name!r}", "name")
        names.add(name)
        specs.append(
            RouteSpec(
                match=match,
                name=name,
                domain=route.string("domain", "default") or "default",
                sample_percent=route.number("sample_percent", shadow.sample_percent, maximum=100.0),
                mirror_writes=route.boolean("mirror_writes", False),
                rules=_compare_rules(route.child("compare"), rules),
                mode=_mode(route, "mode", None),  # type: ignore[arg-type]
                canary_percent=route.number("canary_percent", 0.0, maximum=100.0),
                sticky=_sticky(route),
            )
        )
        route.finish()
    return tuple(specs)


def _mode(reader: _Reader, key: str, default: str | None) -> str | None:
    value = reader.string(key, default)
    if value is not None and value not in _ROUTE_MODES:
        raise reader.error(f"must be one of {', '.join(_ROUTE_MODES)}", key)
    return value


def _sticky(reader: _Reader) -> str:
    value = reader.string("sticky", "client") or "client"
    kind, _, name = value.partition(":")
    if value != "client" and (kind not in {"header", "cookie"} or not name):
        raise reader.error("must be client, header:NAME or cookie:NAME", "sticky")
    return value


def _cutover(top: _Reader, env: Mapping[str, str]) -> CutoverSettings:
    """The ``cutover:`` section and the force-legacy environment variable."""
    reader = top.child("cutover")
    default_mode = _mode(reader, "default_mode", "shadow")
    rollback = _section(reader, "rollback", RollbackSettings())
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
    )


def _section(reader: _Reader, name: str, default: T, *, exclude: tuple[str, ...] = ()) -> T:
    """A flat section of numbers and booleans whose keys are ``default``'s field names."""
    section = reader.child(name)
    values: dict[str, Any] = {}
    for f in fields(default):  # type: ignore[arg-type]
        if f.name in exclude:
            continue
        current = getattr(default, f.name)
        if isinstance(current, bool):
            values[f.name] = section.boolean(f.name, current)
        elif isinstance(current, int):
            values[f.name] = section.integer(
                f.name, current, minimum=0 if "max_connections" in f.name else 1
            )
        elif isinstance(current, float):
            exclusive = f.name.endswith(("_s", "_ms"))
            maximum = 100.0 if f.name.endswith("percent") else None
            values[f.name] = section.number(
                f.name, current, exclusive_min=exclusive, maximum=maximum
            )
    section.finish()
    return replace(default, **values)  # type: ignore[type-var]


def _workers(text: object, where: str) -> int:
    if text is None:
        return 1
    if text == "auto":
        return os.cpu_count() or 1
    if isinstance(text, bool) or not (
        isinstance(text, int) or (isinstance(text, str) and text.isdigit())
    ):
        raise ConfigError(f"{where}: must be a positive integer or 'auto'")
    count = int(text)
    if count < 1:
        raise ConfigError(f"{where}: must be a positive integer or 'auto'")
    return count


def _read_file(path: str) -> object:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"{path}: cannot read: {reason}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(parse)"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: {where}: {problem}") from None


_GRPC_CARDINALITIES = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


def _grpc(
    top: _Reader, overrides: Overrides, shadow: ShadowSettings, rules: CompareRules
) -> GrpcSettings | None:
    """The ``grpc:`` section with the ``--grpc-*`` flags; None when neither asks for it."""
    given = top.has("grpc")
    reader = top.child("grpc")
    source = top.source
    flags = {
        "listen": overrides.grpc_listen,
        "descriptors": overrides.grpc_descriptors,
        "legacy": overrides.grpc_legacy,
        "candidate": overrides.grpc_candidate,
        "secondary": overrides.grpc_secondary,
    }
    if not given and all(flag is None for flag in flags.values()):
        return None
    values: dict[str, str | None] = {}
    for key, flag in flags.items():
        value = flag if flag is not None else reader.string(key, None)
        where = f"--grpc-{key}" if flag is not None else f"{source}: grpc.{key}"
        if value is None and key in {"listen", "legacy", "candidate"}:
            raise ConfigError(f"{source}: grpc.{key}: is required (or pass --grpc-{key} HOST:PORT)")
        if value is not None and key != "descriptors":
            parse_address(value, where)
        values[key] = value
    listen_text, legacy, candidate = values["listen"], values["legacy"], values["candidate"]
    assert listen_text is not None and legacy is not None and candidate is not None
    where = "--grpc-listen" if flags["listen"] is not None else f"{source}: grpc.listen"
    descriptors = values["descriptors"]
    known: frozenset[str] | None = None
    if descriptors is not None:
        from shadowproxy.grpcproxy.descriptors import DescriptorError, load_catalog

        try:
            known = frozenset(load_catalog(descriptors))
        except DescriptorError as exc:
            raise ConfigError(str(exc)) from None
    domain = reader.string("domain", "default") or "default"
    settings = GrpcSettings(
        listen=parse_address(listen_text, where),
        legacy=legacy,
        candidate=candidate,
        secondary=values["secondary"],
        descriptors=descriptors,
        methods=_grpc_methods(reader, shadow, rules, domain, known),
        domain=domain,
        timeout_s=reader.number("timeout_s", 30.0, exclusive_min=True),
    )
    reader.finish()
    return settings


def _grpc_methods(
    reader: _Reader,
    shadow: ShadowSettings,
    rules: CompareRules,
    domain: str,
    known: frozenset[str] | None,
) -> tuple[GrpcMethodSpec, ...]:
    value = reader.raw("methods")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise reader.error("must be a list of methods", "methods")
    specs: list[GrpcMethodSpec] = []
    for index, item in enumerate(value):
        entry = _Reader(reader.source, item, f"{reader.path}.methods[{index}]")
        name = entry.string("method", None)
        if name is None:
            raise entry.error("is required", "method")
        service, _, method = name[1:].partition("/") if name.startswith("/") else ("", "", "")
        if not service or not method or "/" in method:
            raise entry.error(f"must be /package.Service/Method, got {name!r}", "method")
        if any(spec.method == name for spec in specs):
            raise entry.error(f"duplicate method {name!r}", "method")
        cardinality = entry.string("cardinality", None)
        if cardinality is not None and cardinality not in _GRPC_CARDINALITIES:
            raise entry.error(f"must be one of {', '.join(_GRPC_CARDINALITIES)}", "cardinality")
        if known is not None and name not in known and cardinality is None:
            raise entry.error("is not in the descriptors (or set cardinality)", "method")
        mirror = entry.raw("mirror")
        if mirror is not None and not isinstance(mirror, bool):
            raise entry.error("must be true or false", "mirror")
        specs.append(
            GrpcMethodSpec(
                method=name,
                domain=entry.string("domain", domain) or domain,
                mirror=mirror,
                sample_percent=entry.number("sample_percent", shadow.sample_percent, maximum=100.0),
                rules=_compare_rules(entry.child("compare"), rules),
                cardinality=cast("GrpcCardinality | None", cardinality),
            )
        )
        entry.finish()
    return tuple(specs)


def _hash_key(reader: _Reader, env: Mapping[str, str]) -> bytes | None:
    name = reader.string("hash_key_env", None)
    if name is None:
        return None
    value = env.get(name)
    if not value:
        raise reader.error(f"environment variable {name} is not set", "hash_key_env")
    return value.encode()


def load_settings(
    path: str | None,
    overrides: Overrides = Overrides(),
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Validate the file (if any) and the flags into one ``Settings``; raises ``ConfigError``."""
    document = _read_file(path) if path else {}
    return settings_from_document(document, path or "<flags>", overrides, env)


def settings_from_document(
    document: object,
    source: str,
    overrides: Overrides = Overrides(),
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Validate an already parsed YAML document; ``source`` names it in messages."""
    env = os.environ if env is None else env
    top = _Reader(source, document, "")

    def flag_or(flag: str | None, key: str, reader: _Reader = top) -> str | None:
        return flag if flag is not None else reader.string(key, None)

    def flagged(key: str) -> str:
        return f"--{key.replace('_', '-')}"

    listen_text = flag_or(overrides.listen, "listen") or "127.0.0.1:8080"
    admin_text = flag_or(overrides.admin, "admin") or "127.0.0.1:9901"
    listen = parse_address(
        listen_text, f"{source}: listen" if overrides.listen is None else flagged("listen")
    )
    admin = parse_address(
        admin_text, f"{source}: admin" if overrides.admin is None else flagged("admin")
    )
    if (listen.host, listen.port) == (admin.host, admin.port) and listen.port != 0:
        raise ConfigError(f"{source}: admin: must differ from listen ({listen})")

    ups = top.child("upstreams")
    upstream_urls: dict[str, str | None] = {}
    for name in ("legacy", "candidate", "secondary"):
        flag = getattr(overrides, name)
        where = f"--{name}" if flag is not None else f"{source}: upstreams.{name}"
        upstream_urls[name] = _url(flag_or(flag, name, ups), where)
    host_header = ups.string("host_header", "client")
    if host_header not in {"client", "upstream"}:
        raise ups.error("must be 'client' or 'upstream'", "host_header")
    ups.finish()
    legacy_url, candidate_url = upstream_urls["legacy"], upstream_urls["candidate"]
    if legacy_url is None:
        raise ConfigError(f"{source}: upstreams.legacy: is required (or pass --legacy URL)")
    if candidate_url is None:
        raise ConfigError(f"{source}: upstreams.candidate: is required (or pass --candidate URL)")

    shadow = _section(top, "shadow", ShadowSettings())
    legacy = _section(top, "legacy", LegacySettings())
    rules = _compare_rules(top.child("compare"), CompareRules())
    routes = _routes(top, top.raw("routes"), shadow, rules)

    evidence = _section(top, "evidence", EvidenceSettings(), exclude=("log_dir",))
    log_dir = overrides.log_dir or top.string("log_dir", evidence.log_dir) or evidence.log_dir
    evidence = replace(evidence, log_dir=log_dir)

    redact_reader = top.child("redact")
    redact = RedactSettings(
        headers=tuple(h.lower() for h in redact_reader.strings("headers")),
        body_paths=redact_reader.strings("body_paths"),
        query_params=tuple(q.lower() for q in redact_reader.strings("query_params")),
        hash_key=_hash_key(redact_reader, env),
    )
    redact_reader.finish()
    try:
        Redactor(redact)
    except ValueError as exc:
        raise redact_reader.error(str(exc), "body_paths") from None

    token = env.get(ADMIN_TOKEN_ENV) or top.string("admin_token", None)
    if not is_loopback(admin.host) and not token:
        where = "--admin" if overrides.admin is not None else f"{source}: admin"
        raise ConfigError(
            f"{where}: binds beyond loopback ({admin.host}); set admin_token or {ADMIN_TOKEN_ENV}"
        )

    workers_raw = overrides.workers if overrides.workers is not None else top.raw("workers")
    workers = _workers(
        workers_raw, "--workers" if overrides.workers is not None else f"{source}: workers"
    )
    drain_s = top.number("drain_s", 10.0, exclusive_min=True)
    max_routes = top.integer("max_routes", 500, minimum=1)
    grpc = _grpc(top, overrides, shadow, rules)
    cutover = _cutover(top, env)
    if grpc is not None and grpc.listen.port != 0 and grpc.listen in (listen, admin):
        raise ConfigError(f"{source}: grpc.listen: must differ from listen and admin")
    top.finish()

    settings = Settings(
        upstreams=UpstreamSettings(
            legacy=legacy_url,
            candidate=candidate_url,
            secondary=upstream_urls["secondary"],
            host_header=host_header,  # type: ignore[arg-type]
        ),
        listen=listen,
        admin=AdminSettings(listen=admin, token=token),
        legacy=legacy,
        shadow=shadow,
        compare=rules,
        routes=routes,
        max_routes=max_routes,
        evidence=evidence,
        redact=redact,
        drain_s=drain_s,
        workers=workers,
        source=source,
        grpc=grpc,
        cutover=cutover,
    )
    return replace(settings, digest=_digest(settings))


def _digest(settings: Settings) -> str:
    """A stable fingerprint of the effective settings, secrets left out."""
    shown = replace(
        settings,
        admin=replace(settings.admin, token=None),
        redact=replace(settings.redact, hash_key=None),
        source="",
    )
    encoded = orjson.dumps(shown, default=_encode, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(encoded).hexdigest()[:16]


def _encode(value: object) -> object:
    if isinstance(value, frozenset | tuple):
        return list(value)
    raise TypeError


Loader = Callable[[], Settings]
"""Rebuilds the settings from the same file and flags (used by SIGHUP reload)."""
