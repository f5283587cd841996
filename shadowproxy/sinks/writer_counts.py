"""What the JSONL writer counts: records written, dropped by reason and by route, the last error.

The event loop (``JsonlWriter.submit``, a full queue) and the writer thread
(encoding, writing, the disk cap) both count here, under one lock. Exchange
records dropped are also kept per route until the next rollup takes them
(``take_route_drops``); a lost rollup is logged loudly, yet bounded: the
first loss and then at every power of two, as it leaves a gap in the gate
window. File errors are kept for ``/status`` as errno and path only.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from shadowproxy.model import Phase
from shadowproxy.sinks.files import Stream
from shadowproxy.sinks.metrics import Metrics

__all__ = ["Figures", "RouteKey", "WriterCounts"]

RouteKey = tuple[str, str, Phase]
"""The (route, domain, cutover phase) an exchange record belongs to."""

log = structlog.get_logger("shadowproxy.sinks")


@dataclass(frozen=True, slots=True)
class Figures:
    """The counts at one moment, for ``/status``."""

    written: int
    dropped: dict[str, int]
    """Records dropped by reason, sorted by reason."""
    rollups_dropped: int
    last_error: str | None


class WriterCounts:
    """One writer's counters, shared by the event loop and the writer thread."""

    def __init__(self, keep_rollups_days: float, metrics: Metrics) -> None:
        self._keep_rollups_days = keep_rollups_days
        self._metrics = metrics
        self._lock = threading.Lock()
        self._written = 0
        self._dropped: dict[str, int] = {}
        self._route_drops: dict[RouteKey, dict[str, int]] = {}
        self._rollups_dropped = 0
        self._last_error: str | None = None

    def drop(self, reason: str, stream: Stream, routes: Sequence[RouteKey | None]) -> None:
        """Count the records of ``routes`` (one entry each) dropped for ``reason``."""
        n = len(routes)
        if n <= 0:
            return
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + n
            for route in routes:
                if route is not None:
                    counts = self._route_drops.setdefault(route, {})
                    counts[reason] = counts.get(reason, 0) + 1
            if stream is Stream.ROLLUPS:
                before = self._rollups_dropped
                self._rollups_dropped += n
        self._metrics.jsonl_dropped.labels(reason).inc(n)
        if stream is Stream.ROLLUPS:
            self._metrics.rollups_dropped.labels(reason).inc(n)
            # Loud, yet bounded: the first loss and then at every power of two.
            if (before + n).bit_length() > before.bit_length():
                log.error(
                    "evidence_window_not_kept",
                    reason=reason,
                    rollups_dropped=before + n,
                    keep_rollups_days=self._keep_rollups_days,
                )

    def wrote(self, n: int) -> None:
        """Count ``n`` records written."""
        if n <= 0:
            return
        with self._lock:
            self._written += n
        self._metrics.jsonl_records.inc(n)

    def remember(self, exc: OSError, where: Path) -> None:
        """Keep the error for ``/status`` and log it when it changed (errno and path only)."""
        name = errno.errorcode.get(exc.errno or 0, "EIO")
        message = f"{name}: {exc.strerror or 'error'} ({exc.filename or where})"
        with self._lock:
            first = self._last_error != message
            self._last_error = message
        if first:
            log.error("jsonl_write_failed", error=message)

    def take_route_drops(self) -> dict[RouteKey, dict[str, int]]:
        """Exchange records dropped per route since the last call, by reason."""
        with self._lock:
            drops, self._route_drops = self._route_drops, {}
        return drops

    def figures(self) -> Figures:
        """The counts now."""
        with self._lock:
            return Figures(
                written=self._written,
                dropped=dict(sorted(self._dropped.items())),
                rollups_dropped=self._rollups_dropped,
                last_error=self._last_error,
            )
