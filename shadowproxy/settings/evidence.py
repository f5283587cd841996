"""The settings of what is recorded: the evidence files, redaction and the capture file."""

from __future__ import annotations

from dataclasses import dataclass

from shadowproxy.settings.proxy import MiB

__all__ = [
    "CaptureSettings",
    "EvidenceSettings",
    "RedactSettings",
]


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    """The capture file of each worker and its bounds (``capture:``)."""

    dir: str = "./shadow-captures"
    """Where ``capture-<host>-<pid>.jsonl`` files go; never inside ``log_dir``."""
    percent: float = 0.0
    """The routes' ``capture.percent`` unless a route sets its own."""
    per_second: float = 1.0
    """The routes' ``capture.per_second`` unless a route sets its own."""
    max_bytes: int = 256 * MiB
    """The file's size cap: once reached, further captures are dropped and counted."""
    max_body_bytes: int = 64 * 1024
    """Requests with a larger body are not captured (counted)."""
    queue_size: int = 1000
    """Captures waiting for the writer thread; beyond it they are dropped and counted."""


@dataclass(frozen=True, slots=True)
class RedactSettings:
    """What never reaches a file, log line or metric."""

    headers: tuple[str, ...] = ()
    """Header names redacted in addition to the built-in list (lower-case)."""
    body_paths: tuple[str, ...] = ()
    """JSONPath patterns whose values are redacted in recorded differences."""
    query_params: tuple[str, ...] = ()
    """Query parameter names redacted in addition to the built-in patterns."""
    keys: tuple[str, ...] = ()
    """JSON, form and header key names redacted in addition to the built-in secret keys."""
    patterns: tuple[str, ...] = ()
    """Regular expressions whose matches are redacted in every recorded string."""
    hash_key: bytes | None = None
    """When set, redacted values become a keyed hash so equality stays visible."""


@dataclass(frozen=True, slots=True)
class EvidenceSettings:
    """The JSONL writer's limits."""

    log_dir: str = "./shadow-logs"
    sample_matches_percent: float = 0.0
    max_value_chars: int = 256
    max_differences: int = 50
    rollup_interval_s: float = 60.0
    rotate_bytes: int = 64 * MiB
    keep_files: int = 10
    max_total_bytes: int = 1024 * MiB
    keep_rollups_days: float = 16.0
    """Rollup files younger than this are never deleted: the longest gate window plus a margin."""
    queue_size: int = 10_000
    include_query: bool = False
    """Record the (redacted) query string in ``path``; off by default."""
