"""The evidence facade the proxy calls: metrics, rollups and JSONL records from one object.

Owns the hook surface (``on_request``, ``on_upstream``, ``on_skip``,
``on_verdict``, ``set_inflight``, ``tick``, ``write_record``) and its guard:
every hook runs on the event loop, is cheap, never blocks and never raises,
because a sink must never reach the client's response. Each hook's body sits
in a ``try`` whose ``except Exception`` hands the failure to ``_hook_failed``:
it is logged (exception type and location only, never values) and counted in
``shadowproxy_evidence_errors_total{hook}``. A plain ``try`` rather than a
decorator: the compiled proxy calls a hook directly, where a generic
``*args, **kwargs`` wrapper built a tuple and a dict and made a Python-level
call per hook, six times per request (docs/performance.md). Record building
and file I/O happen on the writer thread.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import time
import traceback
from collections.abc import Callable, Mapping

import structlog

from shadowproxy.model import (
    SHADOW_PHASE,
    ClientTimeout,
    ConnectionRefusal,
    Exchange,
    Observation,
    Phase,
    SkipReason,
    Verdict,
)
from shadowproxy.records import SCHEMA_VERSION
from shadowproxy.settings import Settings
from shadowproxy.sinks.metrics import Metrics, code_class, method_label
from shadowproxy.sinks.records import exchange_record, wanted
from shadowproxy.sinks.redact import Redactor
from shadowproxy.sinks.rollup import Rollups
from shadowproxy.sinks.writer import JsonlWriter, Stream
from shadowproxy.timestamps import rfc3339

__all__ = ["Evidence", "default_worker_id"]

_SKIP_REASONS = frozenset(str(reason) for reason in SkipReason)

log = structlog.get_logger("shadowproxy.sinks")


def default_worker_id() -> str:
    """``<host>-<pid>``: unique per worker process, stable for its lifetime."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Evidence:
    """Metrics, rollups and JSONL evidence of one worker process."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        worker_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Raises ValueError when ``redact.body_paths`` holds a malformed JSONPath."""
        self._evidence = settings.evidence
        self._redactor = Redactor(settings.redact)
        self._metrics = metrics
        self._clock = clock
        self._writer = JsonlWriter(settings.evidence, worker_id, metrics)
        self._rollups = Rollups(settings.evidence.rollup_interval_s, clock())
        self._failures: dict[str, int] = {}
        metrics.batch.on_failure(functools.partial(self._hook_failed, "flush"))

    @property
    def redactor(self) -> Redactor:
        """The redaction rules in force (for other components that log request data)."""
        return self._redactor

    def start(self) -> None:
        """Start the writer thread."""
        self._writer.start()

    def on_request(self, route: str, method: str, status: int | None) -> None:
        """Count a client-facing answer; ``status`` None means the proxy itself failed."""
        try:
            metrics = self._metrics
            metrics.batch.count(
                metrics.requests_by, route, method_label(method), code_class(status)
            )
        except Exception as exc:
            self._hook_failed("on_request", exc)

    def on_upstream(self, upstream: str, route: str, observation: Observation) -> None:
        """Record one upstream's latency, and its error reason when it failed."""
        try:
            self._metrics.observe_upstream(upstream, route, observation)
        except Exception as exc:
            self._hook_failed("on_upstream", exc)

    def on_skip(self, route: str, domain: str, reason: str, phase: Phase = SHADOW_PHASE) -> None:
        """Count a request of ``route`` in ``phase`` that was not mirrored."""
        try:
            label = str(reason) if reason in _SKIP_REASONS else "other"
            self._metrics.batch.count(self._metrics.skipped_by, label)
            self._rollups.tally(route, domain, phase).add_skip(label)
        except Exception as exc:
            self._hook_failed("on_skip", exc)

    def on_verdict(self, exchange: Exchange, verdict: Verdict) -> None:
        """Count a compared exchange and queue its ``exchange`` record when one is due."""
        try:
            request = exchange.request
            metrics = self._metrics
            batch = metrics.batch
            batch.count(metrics.comparisons_by, request.route, request.domain, verdict.outcome)
            for cls in verdict.classes:
                batch.count(metrics.divergences_by, request.route, request.domain, cls)
            self._rollups.tally(request.route, request.domain, request.phase).add_verdict(
                exchange, verdict
            )
            kind = exchange.stream_kind
            if kind is not None:
                batch.count(metrics.streams_by, request.route, request.domain, str(kind))
            if wanted(verdict, request.id, self._evidence):
                self._writer.submit(
                    functools.partial(
                        exchange_record, exchange, verdict, self._redactor, self._evidence
                    ),
                    Stream.EXCHANGES,
                    (request.route, request.domain, request.phase),
                )
        except Exception as exc:
            self._hook_failed("on_verdict", exc)

    def set_route_mode(self, route: str, mode: str, percent: float) -> None:
        """Move ``shadowproxy_route_mode`` and ``_route_canary_percent`` to ``route``'s state."""
        try:
            self._metrics.set_route_mode(route, mode, percent)
        except Exception as exc:
            self._hook_failed("on_cutover", exc)

    def on_fallback(self, route: str) -> None:
        """Count a request of ``route`` retried on legacy after the candidate failed."""
        try:
            self._metrics.fallbacks_by.get(route).inc()
        except Exception as exc:
            self._hook_failed("on_cutover", exc)

    def on_rollback(self, route: str, reason: str) -> None:
        """Count an automatic rollback of ``route`` (its ``ownership`` record is separate)."""
        try:
            self._metrics.rollbacks.labels(route, reason).inc()
        except Exception as exc:
            self._hook_failed("on_cutover", exc)

    def on_nats_event(self, route: str, side: str, result: str) -> None:
        """Count what became of one NATS event of ``route`` (``model.EventFate``)."""
        try:
            self._metrics.nats_events_by.get(route, side, result).inc()
        except Exception as exc:
            self._hook_failed("on_nats", exc)

    def on_nats_dropped(self, route: str, reason: str) -> None:
        """Count a NATS message of ``route`` a subscription dropped unprocessed."""
        try:
            self._metrics.nats_dropped.labels(route, reason).inc()
        except Exception as exc:
            self._hook_failed("on_nats", exc)

    def on_connection_refused(self, reason: ConnectionRefusal) -> None:
        """Count a client connection closed on arrival, and why."""
        try:
            self._metrics.connections_refused.labels(str(reason)).inc()
        except Exception as exc:
            self._hook_failed("on_connection_refused", exc)

    def on_client_timeout(self, phase: ClientTimeout) -> None:
        """Count a client connection closed for a slow request head or body."""
        try:
            self._metrics.client_timeouts.labels(str(phase)).inc()
        except Exception as exc:
            self._hook_failed("on_client_timeout", exc)

    def set_inflight(self, n: int) -> None:
        """Set the number of shadow requests in flight."""
        try:
            self._metrics.batch.set(self._metrics.inflight, n)
        except Exception as exc:
            self._hook_failed("set_inflight", exc)

    def tick(self) -> None:
        """Queue the rollups of a window that has ended (call about once a second)."""
        try:
            now = self._clock()
            if self._rollups.due(now):
                for record in self._rollups.drain(now, self._writer.take_route_drops()):
                    self._writer.submit(record, Stream.ROLLUPS)
        except Exception as exc:
            self._hook_failed("tick", exc)

    def write_record(self, record: Mapping[str, object]) -> None:
        """Queue a record of another ``type``; ``v`` and ``ts`` are added when missing.

        It goes to the rollups file, kept for the gate window like rollups, and
        passes the free-form secret scrubber (``Redactor.mapping``).
        """
        try:
            data = dict(record)
            if not isinstance(data.get("type"), str):
                raise ValueError("a record needs a string 'type'")
            data.setdefault("v", SCHEMA_VERSION)
            data.setdefault("ts", rfc3339(self._clock()))
            self._writer.submit(functools.partial(self._redactor.mapping, data), Stream.ROLLUPS)
        except Exception as exc:
            self._hook_failed("write_record", exc)

    def close(self, timeout_s: float) -> bool:
        """Queue the final rollups, write everything queued and stop the writer thread.

        Blocks up to ``timeout_s``; True when everything was flushed. Never raises.
        """
        self._metrics.batch.flush()
        try:
            final: list[Mapping[str, object]] = list(
                self._rollups.drain(self._clock(), self._writer.take_route_drops())
            )
        except Exception as exc:  # the remaining records still deserve a flush
            self._hook_failed("tick", exc)
            final = []
        try:
            return self._writer.close(timeout_s, final)
        except Exception as exc:  # shutdown must go on
            self._hook_failed("write_record", exc)
            return False

    def stats(self) -> dict[str, object]:
        """Writer counters and hook failures, for ``/status``."""
        return {**self._writer.stats(), "hook_errors": dict(sorted(self._failures.items()))}

    def _hook_failed(self, hook: str, exc: Exception) -> None:
        """Count a failed hook; log the first failure and then at powers of two."""
        n = self._failures[hook] = self._failures.get(hook, 0) + 1
        with contextlib.suppress(Exception):
            self._metrics.evidence_errors.labels(hook).inc()
        if n & (n - 1) == 0:
            frames = traceback.extract_tb(exc.__traceback__)
            where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
            log.error(
                "evidence_hook_failed", hook=hook, error=type(exc).__name__, at=where, failures=n
            )
