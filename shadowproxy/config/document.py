"""Configuration loading: one YAML file plus CLI flags, validated once into ``Settings``.

Every problem raises ``ConfigError`` whose message is one line naming the
file and the key (``config.yaml: shadow.timeout_s: must be > 0``); the CLI
prints it and exits 2. Unknown keys are errors, so a typo never silently
falls back to a default. Each section has its own module; this one puts the
document together.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import fields, is_dataclass, replace
from typing import TYPE_CHECKING, TypeGuard

import orjson

from shadowproxy.compare.rules import CompareRules
from shadowproxy.config.grpc import grpc_settings
from shadowproxy.config.overrides import Overrides
from shadowproxy.config.reader import (
    ConfigError,
    Reader,
    is_loopback,
    parse_address,
    parse_url,
    read_document,
    section,
    worker_count,
)
from shadowproxy.config.routes import FORCE_LEGACY_ENV, cutover_settings, route_specs
from shadowproxy.config.rules import compare_rules
from shadowproxy.settings import (
    AdminSettings,
    EvidenceSettings,
    LegacySettings,
    ListenTLS,
    RedactSettings,
    Settings,
    ShadowSettings,
    UpstreamSettings,
    UpstreamTLS,
)
from shadowproxy.sinks import Redactor
from shadowproxy.tls import TLSSetupError, client_context, server_context

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "ADMIN_TOKEN_ENV",
    "FORCE_LEGACY_ENV",
    "ConfigError",
    "Overrides",
    "is_loopback",
    "load_settings",
    "parse_address",
    "reloaded",
    "settings_from_document",
]

ADMIN_TOKEN_ENV = "SHADOWPROXY_ADMIN_TOKEN"


def hash_key(reader: Reader, env: Mapping[str, str]) -> bytes | None:
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
    document = read_document(path) if path else {}
    return settings_from_document(document, path or "<flags>", overrides, env)


def settings_from_document(
    document: object,
    source: str,
    overrides: Overrides = Overrides(),
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Validate an already parsed YAML document; ``source`` names it in messages."""
    env = os.environ if env is None else env
    top = Reader(source, document, "")

    def flag_or(flag: str | None, key: str, reader: Reader = top) -> str | None:
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
    tls_listener = listen_tls(top.child("listen_tls"))

    ups = top.child("upstreams")
    upstream_urls: dict[str, str | None] = {}
    for name in ("legacy", "candidate", "secondary"):
        flag = getattr(overrides, name)
        where = f"--{name}" if flag is not None else f"{source}: upstreams.{name}"
        upstream_urls[name] = parse_url(flag_or(flag, name, ups), where)
    host_header = ups.string("host_header", "client")
    if host_header not in {"client", "upstream"}:
        raise ups.error("must be 'client' or 'upstream'", "host_header")
    tls = upstream_tls(ups.child("tls"))
    ups.finish()
    legacy_url, candidate_url = upstream_urls["legacy"], upstream_urls["candidate"]
    if legacy_url is None:
        raise ConfigError(f"{source}: upstreams.legacy: is required (or pass --legacy URL)")
    if candidate_url is None:
        raise ConfigError(f"{source}: upstreams.candidate: is required (or pass --candidate URL)")

    shadow = section(top, "shadow", ShadowSettings())
    legacy = section(top, "legacy", LegacySettings())
    rules = compare_rules(top.child("compare"), CompareRules())
    routes = route_specs(top, top.raw("routes"), shadow, rules)

    evidence = section(top, "evidence", EvidenceSettings(), exclude=("log_dir",))
    log_dir = overrides.log_dir or top.string("log_dir", evidence.log_dir) or evidence.log_dir
    evidence = replace(evidence, log_dir=log_dir)

    redact_reader = top.child("redact")
    redact = RedactSettings(
        headers=tuple(h.lower() for h in redact_reader.strings("headers")),
        body_paths=redact_reader.strings("body_paths"),
        query_params=tuple(q.lower() for q in redact_reader.strings("query_params")),
        hash_key=hash_key(redact_reader, env),
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
    workers = worker_count(
        workers_raw, "--workers" if overrides.workers is not None else f"{source}: workers"
    )
    drain_s = top.number("drain_s", 10.0, exclusive_min=True)
    max_routes = top.integer("max_routes", 500, minimum=1)
    max_client_connections = top.integer("max_client_connections", 10_000, minimum=1)
    grpc = grpc_settings(top, overrides, shadow, rules)
    cutover = cutover_settings(top, env)
    if grpc is not None and grpc.listen.port != 0 and grpc.listen in (listen, admin):
        raise ConfigError(f"{source}: grpc.listen: must differ from listen and admin")
    top.finish()

    settings = Settings(
        upstreams=UpstreamSettings(
            legacy=legacy_url,
            candidate=candidate_url,
            secondary=upstream_urls["secondary"],
            host_header=host_header,  # type: ignore[arg-type]
            tls=tls,
        ),
        listen=listen,
        listen_tls=tls_listener,
        admin=AdminSettings(listen=admin, token=token),
        legacy=legacy,
        shadow=shadow,
        compare=rules,
        routes=routes,
        max_routes=max_routes,
        max_client_connections=max_client_connections,
        evidence=evidence,
        redact=redact,
        drain_s=drain_s,
        workers=workers,
        source=source,
        grpc=grpc,
        cutover=cutover,
    )
    return replace(settings, digest=digest(settings))


def listen_tls(reader: Reader) -> ListenTLS | None:
    """``listen_tls``, its files loaded once so that a bad one is reported here."""
    cert_file = reader.string("cert_file", None)
    key_file = reader.string("key_file", None)
    reader.finish()
    if cert_file is None:
        if key_file is not None:
            raise reader.error("needs cert_file, the certificate it belongs to", "key_file")
        return None
    tls = ListenTLS(cert_file, key_file)
    try:
        server_context(tls)
    except TLSSetupError as exc:
        raise reader.error(str(exc), exc.key) from None
    return tls


def upstream_tls(reader: Reader) -> UpstreamTLS:
    """``upstreams.tls``, its files loaded once so that a bad one is reported here."""
    tls = UpstreamTLS(
        ca_file=reader.string("ca_file", None),
        cert_file=reader.string("cert_file", None),
        key_file=reader.string("key_file", None),
    )
    reader.finish()
    if tls.key_file is not None and tls.cert_file is None:
        raise reader.error("needs cert_file, the certificate it belongs to", "key_file")
    if tls != UpstreamTLS():
        try:
            client_context(tls)
        except TLSSetupError as exc:
            raise reader.error(str(exc), exc.key) from None
    return tls


def reloaded(running: Settings, fresh: Settings) -> tuple[Settings, tuple[str, ...]]:
    """What a reload applies, and the keys it leaves for a restart.

    A reload swaps routes, sampling, comparison rules, cutover settings and
    gRPC methods. Everything else (listeners, upstreams and their TLS, pools
    and timeouts, shadow bounds, evidence, redaction, workers) was fixed when the
    process started, so it keeps its running value: every worker, including
    one restarted later, runs one configuration, and ``/status`` shows it.
    """
    grpc = running.grpc
    if grpc is not None and fresh.grpc is not None:
        grpc = replace(
            grpc,
            methods=fresh.grpc.methods,
            domain=fresh.grpc.domain,
            timeout_s=fresh.grpc.timeout_s,
        )
    applied = replace(
        running,
        shadow=replace(running.shadow, sample_percent=fresh.shadow.sample_percent),
        compare=fresh.compare,
        routes=fresh.routes,
        max_routes=fresh.max_routes,
        cutover=fresh.cutover,
        grpc=grpc,
        source=fresh.source,
        digest="",
    )
    # Equal to the file's digest exactly when the whole file is in effect.
    applied = replace(applied, digest=digest(applied))
    return applied, _changed(applied, fresh)


def _changed(old: DataclassInstance, new: DataclassInstance, prefix: str = "") -> tuple[str, ...]:
    """Dotted names of the fields that differ, one section deep (names only, never values)."""
    keys: list[str] = []
    for field in fields(old):
        if field.name == "digest":
            continue
        a, b = getattr(old, field.name), getattr(new, field.name)
        if a == b:
            continue
        name = prefix + field.name
        if not prefix and _section(a) and _section(b):
            keys.extend(_changed(a, b, f"{name}."))
        else:
            keys.append(name)
    return tuple(keys)


def _section(value: object) -> TypeGuard[DataclassInstance]:
    return is_dataclass(value) and not isinstance(value, type)


def digest(settings: Settings) -> str:
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
