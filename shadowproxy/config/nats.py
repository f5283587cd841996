"""The ``nats:`` section: servers, request subjects and event subjects (docs/nats.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from shadowproxy.compare.paths import parse_pattern
from shadowproxy.compare.rules import CompareRules
from shadowproxy.config.reader import Reader, split_url
from shadowproxy.config.rules import compare_rules
from shadowproxy.settings import (
    NatsEventSpec,
    NatsRequestSpec,
    NatsServer,
    NatsSettings,
    ShadowSettings,
)

__all__ = ["nats_settings"]

_SCHEMES = frozenset({"nats", "tls"})
_SUBJECT = re.compile(r"[^\s.*>]+(?:\.[^\s.*>]+)*\Z")
_MAX_SUBJECT = 256
_MAX_PENDING = 1_000_000
_MAX_BYTES = 1024 * 1024 * 1024


def nats_settings(
    top: Reader, env: Mapping[str, str], shadow: ShadowSettings, rules: CompareRules
) -> NatsSettings | None:
    """The ``nats:`` section, or None when it is absent."""
    if not top.has("nats"):
        return None
    reader = top.child("nats")
    if not reader.has("server"):
        raise reader.error("is required (the server requesters use)", "server")
    server = _server(reader.child("server"), env)
    legacy = _server(reader.child("legacy_server"), env) if reader.has("legacy_server") else server
    candidate = server
    if reader.has("candidate_server"):
        candidate = _server(reader.child("candidate_server"), env)
    domain = reader.string("domain", "default") or "default"
    timeout_s = reader.number("timeout_s", 30.0, exclusive_min=True)
    queue = reader.string("queue", "shadowproxy") or "shadowproxy"
    if not _SUBJECT.match(queue) or "." in queue:
        raise reader.error("must be one token without spaces, dots or wildcards", "queue")
    settings = NatsSettings(
        server=server,
        legacy_server=legacy,
        candidate_server=candidate,
        requests=_requests(reader, shadow, rules, domain, timeout_s, legacy, candidate, server),
        events=_events(reader, rules, domain, legacy == candidate),
        queue=queue,
        max_pending=reader.integer("max_pending", 1000, minimum=1),
        max_inflight=reader.integer("max_inflight", 256, minimum=1),
    )
    reader.finish()
    if not settings.requests and not settings.events:
        raise reader.error("needs requests or events to shadow")
    return settings


def _server(reader: Reader, env: Mapping[str, str]) -> NatsServer:
    """One connection's URLs and credentials; a secret is named by its environment variable."""
    raw = reader.raw("url")
    urls = (raw,) if isinstance(raw, str) else tuple(raw) if isinstance(raw, list) else ()
    if not urls or not all(isinstance(url, str) for url in urls):
        raise reader.error("must be a nats:// URL or a list of them", "url")
    for url in urls:
        # Credentials first: no later message may echo them.
        if "@" in url:
            raise reader.error("must not carry credentials; use user and password_env", "url")
        parts = split_url(url, f"{reader.source}: {reader.key('url')}")
        if parts.scheme not in _SCHEMES or not parts.hostname:
            raise reader.error(f"must be a nats:// or tls:// URL, got {url!r}", "url")
    for key in ("password_env", "token_env"):
        name = reader.string(key, None)
        if name is not None and not env.get(name):
            raise reader.error(f"environment variable {name} is not set", key)
    server = NatsServer(
        urls=tuple(urls),
        user=reader.string("user", None),
        password_env=reader.string("password_env", None),
        token_env=reader.string("token_env", None),
        creds_file=reader.string("creds_file", None),
    )
    reader.finish()
    return server


def _subject(reader: Reader, key: str, default: str | None = None) -> str:
    value = reader.string(key, default)
    if value is None:
        raise reader.error("is required", key)
    if len(value) > _MAX_SUBJECT or not _SUBJECT.match(value):
        raise reader.error(f"must be a NATS subject without wildcards, got {value!r}", key)
    return value


def _entries(reader: Reader, key: str) -> list[Reader]:
    value = reader.raw(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise reader.error("must be a list", key)
    return [Reader(reader.source, item, f"{reader.key(key)}[{n}]") for n, item in enumerate(value)]


def _requests(
    reader: Reader,
    shadow: ShadowSettings,
    rules: CompareRules,
    domain: str,
    timeout_s: float,
    legacy: NatsServer,
    candidate: NatsServer,
    server: NatsServer,
) -> tuple[NatsRequestSpec, ...]:
    specs: list[NatsRequestSpec] = []
    for entry in _entries(reader, "requests"):
        subject = _subject(entry, "subject")
        if any(spec.subject == subject for spec in specs):
            raise entry.error(f"duplicate subject {subject!r}", "subject")
        spec = NatsRequestSpec(
            subject=subject,
            legacy=_subject(entry, "legacy"),
            candidate=_subject(entry, "candidate"),
            secondary=None if entry.raw("secondary") is None else _subject(entry, "secondary"),
            domain=entry.string("domain", domain) or domain,
            mirror=entry.boolean("mirror", False),
            sample_percent=entry.number("sample_percent", shadow.sample_percent, maximum=100.0),
            rules=compare_rules(entry.child("compare"), rules),
            timeout_s=entry.number("timeout_s", timeout_s, exclusive_min=True),
        )
        # On the requesters' server, the proxy would receive what it sends there: itself.
        for key, target, on in (
            ("legacy", spec.legacy, legacy),
            ("candidate", spec.candidate, candidate),
        ):
            if target == subject and on == server:
                raise entry.error("must differ from subject on the same server", key)
        entry.finish()
        specs.append(spec)
    return tuple(specs)


def _events(
    reader: Reader, rules: CompareRules, domain: str, one_server: bool
) -> tuple[NatsEventSpec, ...]:
    specs: list[NatsEventSpec] = []
    for entry in _entries(reader, "events"):
        subject = _subject(entry, "subject")
        if any(spec.subject == subject for spec in specs):
            raise entry.error(f"duplicate subject {subject!r}", "subject")
        correlation = entry.string("correlation", None)
        if correlation is None:
            raise entry.error("is required (the JSONPath of the correlation key)", "correlation")
        try:
            steps = parse_pattern(correlation).steps
        except ValueError as exc:
            raise entry.error(str(exc), "correlation") from None
        if not steps or any(step.descend or step.selector is None for step in steps):
            raise entry.error("must name one field: no wildcards, no '..'", "correlation")
        window_s = entry.number("window_s", 5.0, exclusive_min=True)
        max_pending = entry.integer("max_pending", 10_000, minimum=1)
        if max_pending > _MAX_PENDING:
            raise entry.error(f"must be <= {_MAX_PENDING}", "max_pending")
        max_bytes = entry.integer("max_bytes", 64 * 1024 * 1024, minimum=1)
        if max_bytes > _MAX_BYTES:
            raise entry.error(f"must be <= {_MAX_BYTES}", "max_bytes")
        legacy, candidate = _subject(entry, "legacy", subject), _subject(entry, "candidate")
        if one_server and legacy == candidate:
            raise entry.error("must differ from legacy's subject on the same server", "candidate")
        specs.append(
            NatsEventSpec(
                subject=subject,
                legacy=legacy,
                candidate=candidate,
                domain=entry.string("domain", domain) or domain,
                correlation=correlation,
                rules=compare_rules(entry.child("compare"), rules),
                window_s=window_s,
                late_s=entry.number("late_s", window_s),
                max_pending=max_pending,
                max_bytes=max_bytes,
            )
        )
        entry.finish()
    return tuple(specs)
