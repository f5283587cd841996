"""The CLI flags that override the configuration file."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Overrides"]


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
