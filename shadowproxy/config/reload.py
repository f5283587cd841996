"""What a reload (SIGHUP) applies, and the keys it leaves for a restart.

Owns the split between the keys a running process takes from a new file
(routes, sampling, comparison rules, stream windows, cutover, gRPC methods) and the ones fixed
at start; the names of the latter, never their values, go to the log and to
``/status`` as ``restart_needed``.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from typing import TYPE_CHECKING, TypeGuard

from shadowproxy.config.digest import digest
from shadowproxy.settings import Settings

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["reloaded"]


def reloaded(running: Settings, fresh: Settings) -> tuple[Settings, tuple[str, ...]]:
    """What a reload applies, and the keys it leaves for a restart.

    A reload swaps routes, sampling, comparison rules, stream windows, cutover settings (but
    its state directory) and gRPC methods. Everything else (listeners,
    upstreams and their TLS, pools
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
        streams=fresh.streams,
        routes=fresh.routes,
        max_routes=fresh.max_routes,
        cutover=replace(fresh.cutover, state_dir=running.cutover.state_dir),
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
