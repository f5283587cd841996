"""Captured requests: a sample of client requests, redacted, for ``shadow replay``.

Owns the ``capture`` record (docs/replay.md, a contract like the evidence
records), the per-route sampling (a share of the requests, at most so many
per second through a token bucket) and the worker's capture file
(``capture-<worker>.jsonl`` in ``capture.dir``): a bounded queue drained by a
thread that builds, redacts and appends each record, up to the file's size
cap, past which captures are dropped and counted. A record keeps what a
replay needs (method, target, end-to-end headers, body) with every secret
replaced as evidence replaces it (``Redactor``): credentials, cookies, secret
query values, secret keys and body paths, the request's own secrets anywhere,
JWTs and ``redact.patterns``. The hot path only calls ``offer``: a draw, a
token and a queue put, never I/O.
"""

from __future__ import annotations

import base64
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import orjson
import structlog

from shadowproxy.records import CAPTURE, SCHEMA_VERSION
from shadowproxy.settings import CaptureSettings, RouteCapture
from shadowproxy.sinks.files import open_private, private_dir, safe_worker_id
from shadowproxy.sinks.redact import Redactor
from shadowproxy.sinks.secrets import known_secrets
from shadowproxy.timestamps import rfc3339

__all__ = ["NOT_CAPTURED", "Capture", "capture_file", "capture_record"]

NOT_CAPTURED = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-real-ip",
        "via",
    }
)
"""Headers a capture leaves out: framing and hops (a replay sets its own) and client addresses."""

_OWN_PREFIX = "x-shadow-"
_DROP_REASONS = ("queue_full", "body_too_large", "file_full", "write_error", "encode_error")
_RETRY_S = 1.0

log = structlog.get_logger("shadowproxy.sinks")

Headers = Sequence[tuple[str, str]]


def capture_file(directory: str, worker_id: str) -> Path:
    """The capture file of ``worker_id`` in ``directory``."""
    return Path(directory) / f"capture-{safe_worker_id(worker_id)}.jsonl"


def capture_record(
    *,
    id: str,
    ts: float,
    route: str,
    domain: str,
    method: str,
    target: str,
    headers: Headers,
    body: bytes,
    redactor: Redactor,
) -> dict[str, object]:
    """The ``capture`` record of one request, its secrets replaced."""
    path, mark, query = target.partition("?")
    content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
    finder = redactor.finder
    known = known_secrets((*finder.in_request(headers, query), *finder.in_body(body, content_type)))
    kept = [
        (name, value)
        for name, value in headers
        if (lower := name.lower()) not in NOT_CAPTURED and not lower.startswith(_OWN_PREFIX)
    ]
    shown = [
        [name, value if redactor.is_secret_header(name) else redactor.text(value, known)]
        for name, value in redactor.headers(tuple(kept))
    ]
    scrubbed = redactor.body(body, content_type, known) if body else b""
    text: str | None = None
    encoded: str | None = None
    if scrubbed:
        try:
            text = scrubbed.decode("utf-8")
        except UnicodeDecodeError:
            encoded = base64.b64encode(scrubbed).decode("ascii")
    query = redactor.query(query, known) if query else ""
    return {
        "v": SCHEMA_VERSION,
        "type": CAPTURE,
        "ts": rfc3339(ts),
        "id": id,
        "route": route,
        "domain": domain,
        "method": method,
        "target": f"{redactor.path(path, known)}{mark}{query}",
        "headers": shown,
        "body": text,
        "body_base64": encoded,
    }


class _Bucket:
    """A token bucket: ``rate`` tokens a second, ``max(rate, 1)`` saved at most (and at first)."""

    __slots__ = ("at", "tokens")

    def __init__(self, now: float, rate: float) -> None:
        self.tokens = max(rate, 1.0)
        self.at = now

    def take(self, rate: float, now: float) -> bool:
        self.tokens = min(max(rate, 1.0), self.tokens + (now - self.at) * rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class Capture:
    """One worker's capture file, its sampling and the thread that writes it."""

    def __init__(
        self,
        settings: CaptureSettings,
        redactor: Redactor,
        worker_id: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._redactor = redactor
        self._path = capture_file(settings.dir, worker_id)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._queue: queue.SimpleQueue[Callable[[], dict[str, object]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending = 0
        self._written = 0
        self._dropped = dict.fromkeys(_DROP_REASONS, 0)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="shadowproxy-capture", daemon=True)
        # Writer-thread state only:
        self._fd: int | None = None
        self._size = 0
        self._retry_at = 0.0

    def start(self) -> None:
        """Start the writer thread (once)."""
        if self._thread.ident is None:
            self._thread.start()

    def offer(
        self,
        rule: RouteCapture,
        *,
        id: str,
        route: str,
        domain: str,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes | None,
    ) -> None:
        """Capture this request if its route's share and rate allow; never blocks.

        ``body`` is None when it was not read whole (it streamed to legacy).
        """
        if rule.percent <= 0.0 or self._closed:
            return
        if rule.percent < 100.0 and random.random() * 100.0 >= rule.percent:
            return
        now = self._clock()
        bucket = self._buckets.get(route)
        if bucket is None:
            bucket = self._buckets[route] = _Bucket(now, rule.per_second)
        if not bucket.take(rule.per_second, now):
            return
        if body is None or len(body) > self._settings.max_body_bytes:
            self._drop("body_too_large")
            return
        with self._lock:
            full = self._pending >= self._settings.queue_size
            if not full:
                self._pending += 1
        if full:
            self._drop("queue_full")
            return
        ts, kept = time.time(), list(headers)
        self._queue.put(
            lambda: capture_record(
                id=id,
                ts=ts,
                route=route,
                domain=domain,
                method=method,
                target=target,
                headers=kept,
                body=body,
                redactor=self._redactor,
            )
        )

    def close(self, timeout_s: float) -> bool:
        """Write what is queued and stop the thread; True when everything was written."""
        self._closed = True
        self.start()
        self._queue.put(None)
        self._thread.join(max(timeout_s, 0.0))
        return not self._thread.is_alive()

    def stats(self) -> dict[str, object]:
        """Counters for ``/status``."""
        with self._lock:
            return {
                "file": str(self._path),
                "written": self._written,
                "dropped": dict(self._dropped),
                "file_bytes": self._size,
            }

    def _drop(self, reason: str) -> None:
        with self._lock:
            self._dropped[reason] += 1

    def _run(self) -> None:
        while (build := self._queue.get()) is not None:
            with self._lock:
                self._pending -= 1
            try:
                line = orjson.dumps(build(), option=orjson.OPT_APPEND_NEWLINE)
            except Exception as exc:  # a bad record must not stop the writer
                self._drop("encode_error")
                log.error("capture_encode_failed", error=type(exc).__name__)
                continue
            self._write(line)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _write(self, line: bytes) -> None:
        """Append one line under the size cap; count it as dropped when it cannot be."""
        if self._size + len(line) > self._settings.max_bytes:
            self._drop("file_full")
            return
        try:
            if self._fd is None:
                if time.monotonic() < self._retry_at:
                    self._drop("write_error")
                    return
                private_dir(self._path.parent)
                self._fd = open_private(self._path)
                self._size = os.fstat(self._fd).st_size
            os.write(self._fd, line)
        except OSError as exc:
            self._drop("write_error")
            log.error("capture_write_failed", error=exc.strerror, path=str(self._path))
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._retry_at = time.monotonic() + _RETRY_S
            return
        with self._lock:
            self._size += len(line)
            self._written += 1
