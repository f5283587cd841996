"""Reading many evidence bytes on every core: chunk, aggregate in workers, merge.

Owns splitting the input into pieces (byte ranges of plain files, gzip files
whole), aggregating pieces in worker processes, and merging their
aggregators. Small inputs stay in-process: starting workers costs more than
it saves. Workers are spawned, never forked, so a threaded caller is safe.
Imports multiprocessing and the aggregator.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from shadowproxy.report.aggregate import Aggregator, Windows
from shadowproxy.report.errors import ReportInputError
from shadowproxy.report.sources import iter_lines

__all__ = ["PARALLEL_MIN_BYTES", "Piece", "aggregate_files", "plan_pieces"]

PARALLEL_MIN_BYTES = 64 * 1024 * 1024
"""Below this much input, one process reads everything."""
_CHUNK_BYTES = 32 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class Piece:
    """Lines of ``path`` starting in ``[start, end)``; ``end`` None means to the end."""

    path: Path
    start: int = 0
    end: int | None = None


def _is_gzip(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(2) == _GZIP_MAGIC
    except OSError as exc:
        raise ReportInputError(str(path), f"cannot read ({exc.strerror or exc})") from None


def plan_pieces(files: Sequence[Path], chunk_bytes: int = _CHUNK_BYTES) -> list[Piece]:
    """Pieces covering every file once; big plain files are cut into ``chunk_bytes`` ranges."""
    pieces: list[Piece] = []
    for path in files:
        size = path.stat().st_size
        if size <= chunk_bytes or _is_gzip(path):
            pieces.append(Piece(path))
            continue
        pieces.extend(
            Piece(path, start, min(start + chunk_bytes, size))
            for start in range(0, size, chunk_bytes)
        )
    return pieces


def _piece_lines(piece: Piece) -> Iterator[bytes]:
    if piece.start == 0 and piece.end is None:
        yield from iter_lines(piece.path)
        return
    with piece.path.open("rb", buffering=1024 * 1024) as handle:
        position = piece.start
        if position:
            # Start after the newline at or past start-1: a line that began in
            # the previous range belongs to it.
            handle.seek(position - 1)
            position += len(handle.readline()) - 1
        end = piece.end if piece.end is not None else float("inf")
        for line in handle:
            if position >= end:
                return
            position += len(line)
            yield line


def _cost(piece: Piece) -> int:
    """Bytes of lines to read: a gzip file's uncompressed size, from its trailer."""
    if piece.end is not None:
        return piece.end - piece.start
    size = piece.path.stat().st_size
    if size < 4 or not _is_gzip(piece.path):
        return size
    with piece.path.open("rb") as handle:
        handle.seek(-4, os.SEEK_END)
        # ISIZE is the uncompressed size modulo 2**32; never less than the file.
        return max(int.from_bytes(handle.read(4), "little"), size)


def _balance(pieces: Sequence[Piece], count: int) -> list[list[Piece]]:
    """Pieces dealt to ``count`` workers, largest first to the least loaded (LPT)."""
    shares: list[list[Piece]] = [[] for _ in range(count)]
    loads = [0] * count
    for cost, piece in sorted(((_cost(p), p) for p in pieces), key=lambda cp: -cp[0]):
        lightest = loads.index(min(loads))
        shares[lightest].append(piece)
        loads[lightest] += cost
    return [share for share in shares if share]


def _aggregate(pieces: Sequence[Piece], windows: Windows) -> Aggregator:
    aggregator = Aggregator(windows.until, windows, timeline_start=windows.earliest)
    for piece in pieces:
        aggregator.feed(_piece_lines(piece), whole_file=piece.start == 0)
    return aggregator


def aggregate_files(
    files: Sequence[Path],
    windows: Windows,
    workers: int | None = None,
    parallel_min_bytes: int = PARALLEL_MIN_BYTES,
    chunk_bytes: int = _CHUNK_BYTES,
) -> Aggregator:
    """One aggregator over every file, using up to ``workers`` processes for big inputs."""
    total = 0
    for path in files:
        try:
            total += path.stat().st_size
        except OSError as exc:
            raise ReportInputError(str(path), f"cannot read ({exc.strerror or exc})") from None
    count = workers or os.cpu_count() or 1
    if count < 2 or total < parallel_min_bytes:
        return _aggregate([Piece(path) for path in files], windows)
    shares = _balance(plan_pieces(files, chunk_bytes), count)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(shares), mp_context=context) as pool:
        results = list(pool.map(_aggregate, shares, [windows] * len(shares)))
    merged = results[0]
    for other in results[1:]:
        merged.merge(other)
    return merged
