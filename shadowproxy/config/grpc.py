"""The ``grpc:`` section and the ``--grpc-*`` flags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from shadowproxy.compare.rules import CompareRules
from shadowproxy.config.overrides import Overrides
from shadowproxy.config.reader import ConfigError, Reader, parse_address
from shadowproxy.config.routes import allowlist, mode
from shadowproxy.config.rules import compare_rules
from shadowproxy.config.streams import stream_window
from shadowproxy.settings import (
    CutoverSettings,
    GrpcCardinality,
    GrpcMethodSpec,
    GrpcSettings,
    RouteMode,
    ShadowSettings,
    StreamSettings,
)

__all__ = ["grpc_settings"]

GRPC_CARDINALITIES = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


def grpc_settings(
    top: Reader,
    overrides: Overrides,
    shadow: ShadowSettings,
    rules: CompareRules,
    streams: StreamSettings,
    cutover: CutoverSettings,
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
        methods=grpc_methods(
            reader, _Inherited(shadow, rules, streams, domain, cutover.fallback, known)
        ),
        domain=domain,
        timeout_s=reader.number("timeout_s", 30.0, exclusive_min=True),
        tls=reader.boolean("tls", False),
    )
    reader.finish()
    return settings


@dataclass(frozen=True, slots=True)
class _Inherited:
    """What a method takes from the section and the rest of the file unless it sets its own."""

    shadow: ShadowSettings
    rules: CompareRules
    streams: StreamSettings
    domain: str
    fallback: bool
    known: frozenset[str] | None
    """The descriptors' methods, when there are descriptors."""


def grpc_methods(reader: Reader, inherited: _Inherited) -> tuple[GrpcMethodSpec, ...]:
    value = reader.raw("methods")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise reader.error("must be a list of methods", "methods")
    specs: list[GrpcMethodSpec] = []
    for index, item in enumerate(value):
        entry = Reader(reader.source, item, f"{reader.path}.methods[{index}]")
        spec = _method(entry, inherited)
        if any(known.method == spec.method for known in specs):
            raise entry.error(f"duplicate method {spec.method!r}", "method")
        specs.append(spec)
        entry.finish()
    return tuple(specs)


def _method(entry: Reader, inherited: _Inherited) -> GrpcMethodSpec:
    """One ``methods`` entry: ``/package.Service/Method``, or a service, ``/package.Service/*``."""
    name = entry.string("method", None)
    if name is None:
        raise entry.error("is required", "method")
    service, _, method = name[1:].partition("/") if name.startswith("/") else ("", "", "")
    if not service or not method or "/" in method or ("*" in method and method != "*"):
        raise entry.error(
            f"must be /package.Service/Method or /package.Service/*, got {name!r}", "method"
        )
    cardinality = entry.string("cardinality", None)
    if cardinality is not None and cardinality not in GRPC_CARDINALITIES:
        raise entry.error(f"must be one of {', '.join(GRPC_CARDINALITIES)}", "cardinality")
    known = inherited.known
    if method == "*":
        if known is not None and not any(m.startswith(f"/{service}/") for m in known):
            raise entry.error(f"the descriptors define no service {service!r}", "method")
    elif known is not None and name not in known and cardinality is None:
        raise entry.error("is not in the descriptors (or set cardinality)", "method")
    mirror = entry.raw("mirror")
    if mirror is not None and not isinstance(mirror, bool):
        raise entry.error("must be true or false", "mirror")
    spec = GrpcMethodSpec(
        method=name,
        domain=entry.string("domain", inherited.domain) or inherited.domain,
        mirror=mirror,
        sample_percent=entry.number(
            "sample_percent", inherited.shadow.sample_percent, maximum=100.0
        ),
        rules=compare_rules(entry.child("compare"), inherited.rules),
        cardinality=cast("GrpcCardinality | None", cardinality),
        window=_window(entry, inherited.streams),
        mode=cast("RouteMode | None", mode(entry, "mode", None)),
        canary_percent=entry.number("canary_percent", 0.0, maximum=100.0),
        sticky=_sticky(entry),
        canary_allow=allowlist(entry),
        fallback=entry.boolean("fallback", inherited.fallback),
    )
    if spec.mode == "canary" and spec.canary_percent == 0 and not spec.canary_allow:
        raise entry.error("a canary needs canary_percent > 0 or canary_allow", "canary_percent")
    return spec


def _sticky(entry: Reader) -> str:
    """``client`` (the peer's address) or ``metadata:NAME`` (a lower-case metadata key)."""
    value = entry.string("sticky", "client") or "client"
    kind, _, key = value.partition(":")
    if value != "client" and (kind != "metadata" or not key or key != key.lower()):
        raise entry.error("must be client or metadata:NAME (a lower-case key)", "sticky")
    return value


def _window(entry: Reader, streams: StreamSettings) -> StreamSettings | None:
    """A method's own ``stream:`` window (over ``streams:``), or None."""
    if not entry.has("stream"):
        return None
    reader = entry.child("stream")
    window = stream_window(reader, streams)
    reader.finish()
    return window
