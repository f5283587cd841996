"""Finding and reading evidence files: paths, directories, globs, rotated and gzip.

Owns turning the command line's PATHs into an ordered, de-duplicated list of
files, and streaming the lines of a file (or of a byte range of one) as
bytes with bounded memory: a line is at most ``MAX_LINE_BYTES`` and a gzip
file expands to at most ``gzip_bound`` bytes. What cannot be read whole is
replaced by a marker line (``OVERSIZED``, ``TRUNCATED``, ``CUT``) that the
aggregator counts, so nothing is skipped silently. Standard library only.
"""

from __future__ import annotations

import glob
import gzip
import re
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

from shadowproxy.report.errors import ReportInputError

__all__ = [
    "CUT",
    "GZIP_MAGIC",
    "MAX_LINE_BYTES",
    "OVERSIZED",
    "TRUNCATED",
    "expand_paths",
    "gzip_bound",
    "is_gzip",
    "iter_lines",
    "line_number",
    "worker_of",
]

MAX_LINE_BYTES = 8 * 1024 * 1024
"""Longest line read; the writer's lines stay far below (about 200 KB at most with
default limits). A longer line is skipped to its end and counted."""
OVERSIZED = b"\0oversized"
"""Stands for a line longer than ``MAX_LINE_BYTES``."""
TRUNCATED = b"\0truncated"
"""Ends a gzip file that stops short (still being written, or cut mid-copy)."""
CUT = b"\0cut"
"""Ends a gzip file that would expand past ``gzip_bound``; the rest is not read."""
GZIP_MAGIC = b"\x1f\x8b"
_GZIP_RATIO = 256
_GZIP_MIN_BOUND = 64 * 1024 * 1024
_EVIDENCE_NAME = re.compile(r"\.jsonl(\.\d+)?(\.gz)?$")
_WORKER_SUFFIX = re.compile(r"(\.rollups)?\.jsonl(\.\d+)?(\.gz)?$")
_GLOB_CHARS = frozenset("*?[")
_READ_BUFFER = 1024 * 1024


class _Readable(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


def expand_paths(patterns: Sequence[str]) -> list[Path]:
    """Every evidence file named by ``patterns``, each once, in a stable order.

    A file is taken as given; a directory contributes every ``*.jsonl``,
    ``*.jsonl.N`` and ``*.gz`` variant below it; a glob must match something.
    """
    found: dict[Path, None] = {}
    for pattern in patterns:
        for path in _expand_one(pattern):
            found.setdefault(path.resolve(), None)
    return list(found)


def _expand_one(pattern: str) -> list[Path]:
    if _GLOB_CHARS & set(pattern):
        matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))  # noqa: PTH207 - may be absolute
        files = [p for p in matches if p.is_file()]
        if not files:
            raise ReportInputError(pattern, "no file matches this pattern")
        return files
    path = Path(pattern)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and _EVIDENCE_NAME.search(p.name))
    if path.is_file():
        return [path]
    raise ReportInputError(pattern, "no such file or directory")


def worker_of(path: Path | str) -> str:
    """The worker a file belongs to: its name without ``.rollups``, ``.jsonl``, ``.N``, ``.gz``.

    Every file of one worker's series (exchanges and rollups, active, rotated,
    compressed, shipped to another directory) has the same name up to those
    suffixes: ``shadow-web1-42.rollups.jsonl.3.gz`` is worker ``shadow-web1-42``.
    """
    name = Path(path).name
    found = _WORKER_SUFFIX.search(name)
    return name[: found.start()] if found else name


def _cannot_read(path: Path, exc: OSError) -> ReportInputError:
    return ReportInputError(str(path), f"cannot read ({exc.strerror or exc})")


def is_gzip(path: Path) -> bool:
    """Whether ``path`` starts with the gzip magic bytes."""
    try:
        with path.open("rb") as handle:
            return handle.read(2) == GZIP_MAGIC
    except OSError as exc:
        raise _cannot_read(path, exc) from None


def gzip_bound(path: Path) -> int:
    """How many bytes a gzip file may expand to: 256 times its size, at least 64 MiB.

    Evidence compresses 10 to 30 times; a gzip bomb expands about a thousand.
    """
    try:
        return max(_GZIP_MIN_BOUND, _GZIP_RATIO * path.stat().st_size)
    except OSError as exc:
        raise _cannot_read(path, exc) from None


def iter_lines(path: Path, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """The lines of ``path`` (gunzipped when it starts with the gzip magic), bounded.

    With ``start``/``end``, only the lines of a plain file that start in
    ``[start, end)``: a line begun before ``start`` belongs to the range
    before. A line over ``MAX_LINE_BYTES`` yields ``OVERSIZED``; a gzip file
    cut short ends with ``TRUNCATED``, one expanding past ``gzip_bound``
    with ``CUT``.
    """
    try:
        raw = path.open("rb", buffering=_READ_BUFFER)
    except OSError as exc:
        raise _cannot_read(path, exc) from None
    try:
        with raw:
            if start == 0 and end is None and raw.read(2) == GZIP_MAGIC:
                raw.seek(0)
                yield from _gunzipped(raw, gzip_bound(path))
                return
            raw.seek(0)
            position = 0
            if start:
                # Start after the newline at or past start-1: a line that began
                # in the previous range belongs to it.
                raw.seek(start - 1)
                position = start - 1 + _skip_line(raw)
            yield from _bounded(raw, float("inf") if end is None else end - position)
    except OSError as exc:
        raise _cannot_read(path, exc) from None


def _gunzipped(raw: BinaryIO, bound: int) -> Iterator[bytes]:
    try:
        with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
            yield from _bounded(unzipped, float("inf"), bound)
    except (EOFError, gzip.BadGzipFile, zlib.error):
        yield TRUNCATED


def _skip_line(handle: _Readable, budget: float = float("inf")) -> int:
    """Read to the end of the current line in bounded steps, or past ``budget``; the bytes read."""
    skipped = 0
    while skipped <= budget:
        part = handle.readline(_READ_BUFFER)
        skipped += len(part)
        if not part or part[-1] == 10:
            break
    return skipped


def _bounded(handle: _Readable, end: float, budget: float = float("inf")) -> Iterator[bytes]:
    """Lines starting before ``end`` bytes from here; past ``budget`` bytes, ``CUT``."""
    readline = handle.readline
    position = 0
    while position < end:
        line = readline(MAX_LINE_BYTES)
        if not line:
            return
        position += len(line)
        if len(line) == MAX_LINE_BYTES and line[-1] != 10:
            line = OVERSIZED  # let the part read go before reading the rest
            position += _skip_line(handle, budget - position)
        if position > budget:
            yield CUT
            return
        yield line


def line_number(path: Path, start: int, index: int) -> int:
    """The line number in ``path`` of the ``index``-th line (from 1) read from byte ``start``."""
    if start == 0:
        return index
    newlines = 0
    with path.open("rb") as handle:
        # The range's first line is the one after the newline at or past start-1.
        remaining = max(start - 1, 0)
        while remaining:
            block = handle.read(min(remaining, _READ_BUFFER))
            if not block:
                break
            newlines += block.count(b"\n")
            remaining -= len(block)
    # Those newlines, then the one at or past start-1 that the range skipped.
    return newlines + 1 + index
