"""The whole configuration document: one YAML file plus CLI flags, validated once into ``Settings``.

Reads the top-level keys (listeners, upstreams, admin, evidence, redaction,
workers, bounds) and puts together what the section modules (``routes``,
``rules``, ``grpc``, ``tls``) validate. Flags override the file; the admin
token and the redaction hash key come from the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from shadowproxy.compare.rules import CompareRules
from shadowproxy.config.digest import digest
from shadowproxy.config.grpc import grpc_settings
from shadowproxy.config.nats import nats_settings
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
from shadowproxy.config.routes import cutover_settings, route_specs, shadow_section
from shadowproxy.config.rules import compare_rules
from shadowproxy.config.streams import streams_section
from shadowproxy.config.tls import listen_tls, upstream_tls
from shadowproxy.settings import (
    AdminSettings,
    CaptureSettings,
    ClientSettings,
    EvidenceSettings,
    IdentitySettings,
    LegacySettings,
    RedactSettings,
    Settings,
    UpstreamSettings,
)
from shadowproxy.sinks.redact import Redactor, RedactSettingsError

__all__ = ["ADMIN_TOKEN_ENV", "load_settings", "settings_from_document"]

ADMIN_TOKEN_ENV = "SHADOWPROXY_ADMIN_TOKEN"
"""The environment variable that holds the admin token (it wins over ``admin_token``)."""


def _hash_key(reader: Reader, env: Mapping[str, str]) -> bytes | None:
    name = reader.string("hash_key_env", None)
    if name is None:
        return None
    value = env.get(name)
    if not value:
        raise reader.error(f"environment variable {name} is not set", "hash_key_env")
    return value.encode()


def _http_upstreams(
    source: str, urls: Mapping[str, str | None], host_header: str, *, others: bool
) -> UpstreamSettings | None:
    """The HTTP upstreams; None (no HTTP listener) when none is given and ``others`` are shadowed.

    Legacy and candidate are required together: HTTP needs both, or neither when
    only gRPC or NATS is shadowed (a gRPC-only sidecar, a NATS shadow).
    """
    legacy, candidate, secondary = urls["legacy"], urls["candidate"], urls["secondary"]
    if others and legacy is None and candidate is None and secondary is None:
        return None
    if legacy is None:
        raise ConfigError(f"{source}: upstreams.legacy: is required (or pass --legacy URL)")
    if candidate is None:
        raise ConfigError(f"{source}: upstreams.candidate: is required (or pass --candidate URL)")
    return UpstreamSettings(
        legacy=legacy,
        candidate=candidate,
        secondary=secondary,
        host_header=host_header,  # type: ignore[arg-type]
    )


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

    shadow = shadow_section(top)
    legacy = section(top, "legacy", LegacySettings())
    rules = compare_rules(top.child("compare"), CompareRules())
    streams = streams_section(top)
    evidence = section(top, "evidence", EvidenceSettings(), exclude=("log_dir",))
    log_dir = overrides.log_dir or top.string("log_dir", evidence.log_dir) or evidence.log_dir
    evidence = replace(evidence, log_dir=log_dir)
    cutover = cutover_settings(top, env, log_dir)
    identity = section(top, "identity", IdentitySettings())
    capture = section(top, "capture", CaptureSettings())
    routes = route_specs(top, top.raw("routes"), shadow, rules, cutover, streams, capture)
    capturing = capture.percent > 0 or any(spec.capture.percent > 0 for spec in routes)
    if capturing and Path(capture.dir).resolve().is_relative_to(Path(log_dir).resolve()):
        raise top.child("capture").error(
            "must not be inside log_dir: shadow report reads every .jsonl below it", "dir"
        )

    redact_reader = top.child("redact")
    redact = RedactSettings(
        headers=tuple(h.lower() for h in redact_reader.strings("headers")),
        body_paths=redact_reader.strings("body_paths"),
        query_params=tuple(q.lower() for q in redact_reader.strings("query_params")),
        keys=redact_reader.strings("keys"),
        patterns=redact_reader.strings("patterns"),
        hash_key=_hash_key(redact_reader, env),
    )
    redact_reader.finish()
    try:
        Redactor(redact)
    except RedactSettingsError as exc:
        raise redact_reader.error(str(exc), exc.key) from None

    # Read the file's key even when the environment wins, so it is never an unknown key.
    file_token = top.string("admin_token", None)
    token = env.get(ADMIN_TOKEN_ENV) or file_token
    unauthenticated = top.boolean("admin_allow_unauthenticated_loopback", False)
    if not is_loopback(admin.host):
        where = "--admin" if overrides.admin is not None else f"{source}: admin"
        if unauthenticated:
            raise top.error(
                f"the admin listener binds beyond loopback ({admin.host})",
                "admin_allow_unauthenticated_loopback",
            )
        if not token:
            raise ConfigError(
                f"{where}: binds beyond loopback ({admin.host});"
                f" set admin_token or {ADMIN_TOKEN_ENV}"
            )

    workers_raw = overrides.workers if overrides.workers is not None else top.raw("workers")
    workers = worker_count(
        workers_raw, "--workers" if overrides.workers is not None else f"{source}: workers"
    )
    drain_s = top.number("drain_s", 10.0, exclusive_min=True)
    max_routes = top.integer("max_routes", 100, minimum=1, maximum=10_000)
    max_client_connections = top.integer("max_client_connections", 10_000, minimum=1)
    clients = section(top, "clients", ClientSettings())
    if clients.address_share_percent <= 0:
        raise ConfigError(f"{source}: clients.address_share_percent: must be > 0 and <= 100.0")
    grpc = grpc_settings(top, overrides, shadow, rules, streams, cutover)
    nats = nats_settings(top, env, shadow, rules)
    if grpc is not None:
        names = {spec.name for spec in routes}
        for index, spec in enumerate(grpc.methods):
            if spec.name in names:
                raise ConfigError(
                    f"{source}: grpc.methods[{index}].method: names an HTTP route too"
                    " (route names are shared by cutover)"
                )
    if grpc is not None and grpc.listen.port != 0 and grpc.listen in (listen, admin):
        raise ConfigError(f"{source}: grpc.listen: must differ from listen and admin")
    top.finish()

    settings = Settings(
        upstreams=_http_upstreams(
            source, upstream_urls, host_header, others=grpc is not None or nats is not None
        ),
        upstream_tls=tls,
        listen=listen,
        listen_tls=tls_listener,
        admin=AdminSettings(
            listen=admin, token=token, allow_unauthenticated_loopback=unauthenticated
        ),
        legacy=legacy,
        shadow=shadow,
        compare=rules,
        streams=streams,
        routes=routes,
        max_routes=max_routes,
        max_client_connections=max_client_connections,
        clients=clients,
        evidence=evidence,
        redact=redact,
        drain_s=drain_s,
        workers=workers,
        source=source,
        grpc=grpc,
        nats=nats,
        cutover=cutover,
        identity=identity,
        capture=capture,
    )
    return replace(settings, digest=digest(settings))
