"""The JSONL writer: a bounded queue drained by one thread into rotated, capped files.

Owns everything between "a record is wanted" and "its bytes are on disk":
the queue (a full queue drops and counts, never waits), serialisation with
orjson, the worker's two files (``files.Stream``: exchange records, and
rollups with the other small records), size rotation, the disk cap over every
``shadow-*`` file in ``log_dir``, and counting (``writer_counts``) every record
that could not be written: by reason, by route for exchange records (the next
rollup carries them), and loudly for rollups, whose loss leaves a gap in the
gate window.
Under pressure exchange records go first: each stream has its own queue
bound, and the cap deletes exchange files (this worker's active one last)
before it would touch a rollup younger than ``keep_rollups_days``, which it
never does. The event loop only ever calls ``submit``; all file I/O happens
on the writer thread (``files``).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import orjson
import structlog

from shadowproxy.settings import EvidenceSettings
from shadowproxy.sinks.files import DiskCap, Stream, file_name, open_private, private_dir, rotate
from shadowproxy.sinks.metrics import Metrics
from shadowproxy.sinks.writer_counts import RouteKey, WriterCounts

__all__ = ["Item", "JsonlWriter", "RouteKey", "Stream", "file_name", "open_private"]

Item = Mapping[str, object] | Callable[[], Mapping[str, object] | None]
"""A record, or a builder the writer thread calls (None: nothing to write)."""

_DAY_S = 86_400.0
_BATCH = 512
_RETRY_S = 1.0
_RESCAN_S = 0.5
_ORJSON_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS

log = structlog.get_logger("shadowproxy.sinks")

_Line = tuple[bytes, RouteKey | None]
_Entry = tuple[Item, Stream, RouteKey | None]


class _File:
    """One of this worker's evidence files (writer thread only)."""

    __slots__ = ("fd", "path", "size", "stream", "torn")

    def __init__(self, path: Path, stream: Stream) -> None:
        self.path = path
        self.stream = stream
        self.fd: int | None = None
        self.size = 0
        self.torn = False
        """The last write failed part-way: the file may end mid-line."""


class JsonlWriter:
    """One worker's evidence files and the thread that writes them."""

    def __init__(self, settings: EvidenceSettings, worker_id: str, metrics: Metrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._dir = Path(settings.log_dir)
        self._files = {s: _File(self._dir / file_name(worker_id, s), s) for s in Stream}
        # None is the stop marker.
        self._queue: queue.SimpleQueue[_Entry | None] = queue.SimpleQueue()
        self._bound = max(settings.queue_size, 1)
        self._thread = threading.Thread(target=self._run, name="shadowproxy-jsonl", daemon=True)
        self._lock = threading.Lock()
        """Guards ``_pending``, which the event loop and the thread both change."""
        self._pending = dict.fromkeys(Stream, 0)
        self._counts = WriterCounts(settings.keep_rollups_days, metrics)
        self._closed = False
        # Writer-thread state only:
        self._retry_at = 0.0
        self._cap = DiskCap(self._dir, settings.max_total_bytes)
        self._scanned_at = -float("inf")

    @property
    def path(self) -> Path:
        """The active exchange file."""
        return self._files[Stream.EXCHANGES].path

    @property
    def rollups_path(self) -> Path:
        """The active file of rollups and the other small records."""
        return self._files[Stream.ROLLUPS].path

    def start(self) -> None:
        """Start the writer thread (once)."""
        if self._thread.ident is None:
            self._thread.start()

    def submit(
        self, item: Item, stream: Stream = Stream.EXCHANGES, route: RouteKey | None = None
    ) -> bool:
        """Queue ``item`` without ever blocking; False (and counted) when it was dropped.

        ``route`` names the route of an exchange record, so a drop shows in its rollup.
        """
        if self._closed:
            self._counts.drop("closed", stream, [route])
            return False
        with self._lock:
            full = self._pending[stream] >= self._bound
            if not full:
                self._pending[stream] += 1
        if full:
            self._counts.drop("queue_full", stream, [route])
            return False
        self._queue.put((item, stream, route))
        return True

    def close(self, timeout_s: float, final: Sequence[Item] = ()) -> bool:
        """Write ``final`` items (rollups) and everything queued, then stop; True when all was.

        Items still queued at the deadline are counted as dropped (``closed``).
        """
        if self._closed:
            self._counts.drop("closed", Stream.ROLLUPS, [None] * len(final))
            return not self._thread.is_alive()
        self.start()
        with self._lock:
            self._pending[Stream.ROLLUPS] += len(final)
        for item in final:
            self._queue.put((item, Stream.ROLLUPS, None))
        self._queue.put(None)
        self._closed = True
        self._thread.join(max(timeout_s, 0.0))
        if self._thread.is_alive():
            with self._lock:
                pending = dict(self._pending)
            for stream, n in pending.items():
                self._counts.drop("closed", stream, [None] * n)
            return False
        return True

    def take_route_drops(self) -> dict[RouteKey, dict[str, int]]:
        """Exchange records dropped per route since the last call, by reason."""
        return self._counts.take_route_drops()

    def stats(self) -> dict[str, object]:
        """Counters for ``/status``."""
        counts = self._counts.figures()
        with self._lock:
            depth = sum(self._pending.values())
        return {
            "records_written": counts.written,
            "dropped": counts.dropped,
            "rollups_dropped": counts.rollups_dropped,
            "queue_depth": depth,
            "queue_size": self._bound,
            "file": str(self.path),
            "file_bytes": self._files[Stream.EXCHANGES].size,
            "rollups_file": str(self.rollups_path),
            "last_error": counts.last_error,
        }

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
            lines: dict[Stream, list[_Line]] = {s: [] for s in Stream}
            for entry in items:
                if entry is None:
                    stop = True
                    continue
                item, stream, route = entry
                with self._lock:
                    self._pending[stream] -= 1
                line = self._encode(item, stream, route)
                if line is not None:
                    lines[stream].append((line, route))
            # Rollups first: under pressure they must find the room.
            for stream in (Stream.ROLLUPS, Stream.EXCHANGES):
                if lines[stream]:
                    self._write(self._files[stream], lines[stream])
        for file in self._files.values():
            self._release(file)

    def _encode(self, item: object, stream: Stream, route: RouteKey | None) -> bytes | None:
        """One JSON line, or None (counted) when the item cannot be built or serialised."""
        try:
            record = item() if callable(item) else item
            if record is None:
                return None
            return orjson.dumps(record, option=_ORJSON_OPTS)
        except Exception as exc:  # a bad record must not stop the writer
            self._counts.drop("encode_error", stream, [route])
            log.error("jsonl_encode_failed", error=type(exc).__name__)
            return None

    def _write(self, file: _File, lines: list[_Line]) -> None:
        """Append ``lines``, rotating and enforcing the disk cap; count what was not written."""
        if file.fd is None and not self._open(file):
            self._counts.drop("write_error", file.stream, [route for _, route in lines])
            return
        chunk: list[_Line] = []
        pending = 0
        for i, (line, route) in enumerate(lines):
            if file.size + pending + len(line) > self._settings.rotate_bytes and (
                file.size + pending
            ):
                if not self._flush(file, chunk) or not self._rotate(file):
                    self._counts.drop("write_error", file.stream, [r for _, r in lines[i:]])
                    return
                chunk, pending = [], 0
            if not self._room(pending + len(line), file.stream):
                self._counts.drop("disk_cap", file.stream, [route])
                continue
            chunk.append((line, route))
            pending += len(line)
        self._flush(file, chunk)

    def _flush(self, file: _File, chunk: list[_Line]) -> bool:
        """Write ``chunk`` to the open file; on failure count the lost lines and close it."""
        if not chunk:
            return True
        if file.fd is None:
            self._counts.drop("write_error", file.stream, [route for _, route in chunk])
            return False
        # After a failed write the file may end mid-line; start on a fresh line.
        prefix = b"\n" if file.torn else b""
        data = prefix + b"".join(line for line, _ in chunk)
        done = 0
        try:
            while done < len(data):
                done += os.write(file.fd, memoryview(data)[done:])
        except OSError as exc:
            file.size += done
            self._cap.total += done
            written = _whole_lines(chunk, done - len(prefix))
            self._counts.wrote(written)
            self._counts.drop("write_error", file.stream, [route for _, route in chunk[written:]])
            file.torn = True
            self._failed(exc, file)
            return False
        file.torn = False
        file.size += done
        self._cap.total += done
        self._counts.wrote(len(chunk))
        return True

    def _room(self, extra: int, stream: Stream) -> bool:
        """Whether ``extra`` more bytes fit under ``max_total_bytes``, deleting to make room.

        Rotated exchange files go first, then rollups older than the
        retention window; for rollups, this worker's own exchange file too.
        """
        if self._cap.fits(extra):
            return True
        now = time.monotonic()
        if now - self._scanned_at >= _RESCAN_S and not self._rescan(now):
            return False
        keep_newer_than = time.time() - self._settings.keep_rollups_days * _DAY_S
        self._note(self._cap.make_room(extra, keep_newer_than))
        exchanges = self._files[Stream.EXCHANGES]
        if self._cap.fits(extra) or stream is not Stream.ROLLUPS or not exchanges.size:
            return self._cap.fits(extra)
        # Rollups outrank exchange records: this worker's own exchange file goes too.
        self._rotate(exchanges)
        self._rescan(time.monotonic())
        self._note(self._cap.make_room(extra, keep_newer_than))
        return self._cap.fits(extra)

    def _rescan(self, now: float) -> bool:
        """Re-measure ``log_dir``; False (noted) when it cannot be listed."""
        try:
            self._cap.scan()
        except OSError as exc:
            self._note([exc])
            return False
        self._scanned_at = now
        return True

    def _open(self, file: _File) -> bool:
        """Open ``file`` unless a recent failure says wait; False when it is not open."""
        now = time.monotonic()
        if now < self._retry_at:
            return False
        try:
            warning = private_dir(self._dir)
            fd = open_private(file.path)
        except OSError as exc:
            self._failed(exc, file)
            return False
        if warning is not None:
            log.warning("log_dir_tightened", detail=warning, log_dir=str(self._dir))
        file.fd, file.size = fd, os.fstat(fd).st_size
        file.torn = file.torn and file.size > 0
        self._rescan(now)
        return True

    def _rotate(self, file: _File) -> bool:
        """Rotate ``file`` (rollups kept for the retention window) and open a fresh one."""
        self._release(file)
        keep_newer_than = (
            time.time() - self._settings.keep_rollups_days * _DAY_S
            if file.stream is Stream.ROLLUPS
            else None
        )
        try:
            rotate(file.path, self._settings.keep_files, keep_newer_than)
        except OSError as exc:
            self._failed(exc, file)
        file.torn = False
        return self._open(file)

    def _note(self, errors: Sequence[OSError]) -> None:
        """Remember file errors that cost no record (a rotated file that would not go)."""
        for exc in errors:
            self._counts.remember(exc, self._dir)

    def _failed(self, exc: OSError, file: _File) -> None:
        """Remember a failure of ``file``, close it and back off before reopening."""
        self._counts.remember(exc, file.path)
        self._release(file)
        self._retry_at = time.monotonic() + _RETRY_S

    def _release(self, file: _File) -> None:
        """Close ``file`` (data is already in the kernel; fsync only on a clean stop)."""
        fd, file.fd = file.fd, None
        if fd is None:
            return
        # fsync or close failing on a broken disk changes nothing we can act on.
        with contextlib.suppress(OSError):
            os.fsync(fd)
        with contextlib.suppress(OSError):
            os.close(fd)


def _whole_lines(chunk: list[_Line], written: int) -> int:
    """How many leading lines of ``chunk`` fit in ``written`` bytes."""
    count = 0
    for line, _ in chunk:
        written -= len(line)
        if written < 0:
            break
        count += 1
    return count
