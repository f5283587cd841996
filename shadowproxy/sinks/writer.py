"""The JSONL writer: a bounded queue drained by one thread into rotated, capped files.

Owns everything between "a record is wanted" and "its bytes are on disk":
the queue (a full queue drops and counts, never waits), serialisation with
orjson, the per-worker file ``shadow-<worker_id>.jsonl`` (mode 0600), size
rotation, the disk cap over every ``shadow-*`` file in ``log_dir``, and
counting every record that could not be written. The event loop only ever
calls ``submit``; all file I/O happens on the writer thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import orjson
import structlog

from shadowproxy.settings import EvidenceSettings
from shadowproxy.sinks.metrics import Metrics

__all__ = ["Item", "JsonlWriter", "file_name", "open_private"]

Item = Mapping[str, object] | Callable[[], Mapping[str, object] | None]
"""A record, or a builder the writer thread calls (None: nothing to write)."""

_STOP = object()
_BATCH = 512
_RETRY_S = 1.0
_RESCAN_S = 0.5
_ROTATED = re.compile(r"shadow-.+\.jsonl\.(\d+)(?:\.gz)?")
_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]")
_ORJSON_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS

log = structlog.get_logger("shadowproxy.sinks")


def file_name(worker_id: str) -> str:
    """The active file name of worker ``worker_id`` (unsafe characters become ``_``)."""
    return f"shadow-{_SAFE_ID.sub('_', worker_id)}.jsonl"


def open_private(path: Path) -> int:
    """Open ``path`` for appending, created with mode 0600, and return the descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        # A file created earlier by someone else may be wider; evidence is private.
        os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return fd


class JsonlWriter:
    """One worker's evidence file and the thread that writes it."""

    def __init__(self, settings: EvidenceSettings, worker_id: str, metrics: Metrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._dir = Path(settings.log_dir)
        self._path = self._dir / file_name(worker_id)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(settings.queue_size, 1))
        self._thread = threading.Thread(target=self._run, name="shadowproxy-jsonl", daemon=True)
        self._lock = threading.Lock()
        self._written = 0
        self._dropped: dict[str, int] = {}
        self._last_error: str | None = None
        self._closed = False
        # Writer-thread state only:
        self._fd: int | None = None
        self._size = 0
        self._torn = False
        self._retry_at = 0.0
        self._dir_bytes = 0
        self._scanned_at = -float("inf")
        self._rotated: list[tuple[int, Path]] = []

    @property
    def path(self) -> Path:
        """The active file."""
        return self._path

    def start(self) -> None:
        """Start the writer thread (once)."""
        if self._thread.ident is None:
            self._thread.start()

    def submit(self, item: Item) -> bool:
        """Queue ``item`` without ever blocking; False (and counted) when it was dropped."""
        if self._closed:
            self._drop("closed", 1)
            return False
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._drop("queue_full", 1)
            return False
        return True

    def close(self, timeout_s: float, final: Sequence[Item] = ()) -> bool:
        """Write ``final`` items and everything queued, then stop; True when all was flushed.

        Items still queued at the deadline are counted as dropped (``closed``).
        """
        if self._closed:
            self._drop("closed", len(final))
            return not self._thread.is_alive()
        deadline = time.monotonic() + max(timeout_s, 0.0)
        self.start()
        for item in [*final, _STOP]:
            try:
                self._queue.put(item, timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Full:
                if item is not _STOP:
                    self._drop("closed", 1)
        self._closed = True
        self._thread.join(max(deadline - time.monotonic(), 0.0))
        if self._thread.is_alive():
            self._drop("closed", self._queue.qsize())
            return False
        return True

    def stats(self) -> dict[str, object]:
        """Counters for ``/status``."""
        with self._lock:
            return {
                "records_written": self._written,
                "dropped": dict(sorted(self._dropped.items())),
                "queue_depth": self._queue.qsize(),
                "queue_size": self._queue.maxsize,
                "file": str(self._path),
                "file_bytes": self._size,
                "last_error": self._last_error,
            }

    # --- bookkeeping shared by both threads --------------------------------

    def _drop(self, reason: str, n: int) -> None:
        """Count ``n`` records dropped for ``reason``."""
        if n <= 0:
            return
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + n
        self._metrics.jsonl_dropped.labels(reason).inc(n)

    def _wrote(self, n: int) -> None:
        """Count ``n`` records written."""
        if n <= 0:
            return
        with self._lock:
            self._written += n
        self._metrics.jsonl_records.inc(n)

    # --- writer thread -----------------------------------------------------

    def _run(self) -> None:
        """Drain the queue in batches until the stop marker arrives."""
        stop = False
        while not stop:
            items = [self._queue.get()]
            while len(items) < _BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            lines: list[bytes] = []
            for item in items:
                if item is _STOP:
                    stop = True
                    continue
                line = self._encode(item)
                if line is not None:
                    lines.append(line)
            if lines:
                self._write(lines)
        self._release()

    def _encode(self, item: object) -> bytes | None:
        """One JSON line, or None (counted) when the item cannot be built or serialised."""
        try:
            record = item() if callable(item) else item
            if record is None:
                return None
            return orjson.dumps(record, option=_ORJSON_OPTS)
        except Exception as exc:  # a bad record must not stop the writer
            self._drop("encode_error", 1)
            log.error("jsonl_encode_failed", error=type(exc).__name__)
            return None

    def _write(self, lines: list[bytes]) -> None:
        """Append ``lines``, rotating and enforcing the disk cap; count what was not written."""
        if self._fd is None and not self._open():
            self._drop("write_error", len(lines))
            return
        chunk: list[bytes] = []
        pending = 0
        for i, line in enumerate(lines):
            if self._size + pending + len(line) > self._settings.rotate_bytes and (
                self._size + pending
            ):
                if not self._flush(chunk) or not self._rotate():
                    self._drop("write_error", len(lines) - i)
                    return
                chunk, pending = [], 0
            if not self._fits(pending + len(line)):
                self._drop("disk_cap", 1)
                continue
            chunk.append(line)
            pending += len(line)
        self._flush(chunk)

    def _flush(self, chunk: list[bytes]) -> bool:
        """Write ``chunk`` to the open file; on failure count the lost lines and close."""
        if not chunk:
            return True
        assert self._fd is not None
        # After a failed write the file may end mid-line; start on a fresh line.
        prefix = b"\n" if self._torn else b""
        data = prefix + b"".join(chunk)
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, memoryview(data)[done:])
        except OSError as exc:
            self._size += done
            self._dir_bytes += done
            written = _whole_lines(chunk, done - len(prefix))
            self._wrote(written)
            self._drop("write_error", len(chunk) - written)
            self._torn = True
            self._failed(exc)
            return False
        self._torn = False
        self._size += done
        self._dir_bytes += done
        self._wrote(len(chunk))
        return True

    def _fits(self, extra: int) -> bool:
        """Whether ``extra`` more bytes stay under ``max_total_bytes``.

        Deletes the oldest rotated files (any worker's) to make room.
        """
        cap = self._settings.max_total_bytes
        if self._dir_bytes + extra <= cap:
            return True
        now = time.monotonic()
        if now - self._scanned_at >= _RESCAN_S:
            self._scan(now)
        while self._dir_bytes + extra > cap and self._rotated:
            size, path = self._rotated.pop(0)
            try:
                path.unlink()
            except FileNotFoundError:
                pass  # another worker deleted it first
            except OSError as exc:
                self._failed(exc)
                continue
            self._dir_bytes -= size
        return self._dir_bytes + extra <= cap

    def _scan(self, now: float) -> None:
        """Re-measure every evidence file in ``log_dir`` and list the rotated ones, oldest first."""
        total = 0
        rotated: list[tuple[float, int, int, Path]] = []
        try:
            entries = list(os.scandir(self._dir))
        except OSError as exc:
            self._failed(exc)
            entries = []
        for entry in entries:
            if not entry.name.startswith("shadow-") or ".jsonl" not in entry.name:
                continue
            try:
                stat = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            total += stat.st_size
            match = _ROTATED.fullmatch(entry.name)
            if match:
                # Equal mtimes: a higher suffix is an older file.
                age = -int(match.group(1))
                rotated.append((stat.st_mtime, age, stat.st_size, Path(entry.path)))
        self._dir_bytes = total
        self._scanned_at = now
        rotated.sort(key=lambda item: item[:2])
        self._rotated = [(size, path) for _, _, size, path in rotated]

    def _open(self) -> bool:
        """Open the active file unless a recent failure says wait; False when it is not open."""
        now = time.monotonic()
        if now < self._retry_at:
            return False
        try:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = open_private(self._path)
            size = os.fstat(fd).st_size
        except OSError as exc:
            self._failed(exc)
            return False
        self._fd, self._size = fd, size
        self._torn = self._torn and size > 0
        self._scan(now)
        return True

    def _rotate(self) -> bool:
        """Shift ``.N`` files up, keep ``keep_files`` of them, and open a fresh active file."""
        self._release()
        keep = self._settings.keep_files
        base = str(self._path)
        try:
            for suffix in ("", ".gz"):
                oldest = Path(f"{base}.{keep}{suffix}")
                if keep > 0 and oldest.exists():
                    oldest.unlink()
                for n in range(keep - 1, 0, -1):
                    src = Path(f"{base}.{n}{suffix}")
                    if src.exists():
                        src.rename(f"{base}.{n + 1}{suffix}")
            if keep > 0:
                self._path.rename(f"{base}.1")
            else:
                self._path.unlink()
        except OSError as exc:
            self._failed(exc)
        self._torn = False
        return self._open()

    def _failed(self, exc: OSError) -> None:
        """Remember a file error (no data in it, only errno and path) and back off."""
        name = errno.errorcode.get(exc.errno or 0, "EIO")
        message = f"{name}: {exc.strerror or 'error'} ({exc.filename or self._path})"
        with self._lock:
            first = self._last_error != message
            self._last_error = message
        if first:
            log.error("jsonl_write_failed", error=message)
        self._release()
        self._retry_at = time.monotonic() + _RETRY_S

    def _release(self) -> None:
        """Close the active file (data is already in the kernel; fsync only on a clean stop)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        # fsync or close failing on a broken disk changes nothing we can act on.
        with contextlib.suppress(OSError):
            os.fsync(fd)
        with contextlib.suppress(OSError):
            os.close(fd)


def _whole_lines(chunk: list[bytes], written: int) -> int:
    """How many leading lines of ``chunk`` fit in ``written`` bytes."""
    count = 0
    for line in chunk:
        written -= len(line)
        if written < 0:
            break
        count += 1
    return count
