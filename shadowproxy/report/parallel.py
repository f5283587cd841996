"""Reading many evidence bytes on every core: chunk, aggregate in workers, merge.

Owns splitting the input into pieces (byte ranges of plain files, gzip files
whole), aggregating pieces in worker processes, and merging their
aggregators. Files with the same content are read once. Small inputs stay
in-process: starting workers costs more than it saves. Workers are spawned,
never forked, so a threaded caller is safe. Imports multiprocessing and the
aggregator.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from shadowproxy.report.aggregate import Aggregator
from shadowproxy.report.errors import ReportInputError
from shadowproxy.report.identity import distinct, uncompressed_size
from shadowproxy.report.known import KnownSet
from shadowproxy.report.sources import is_gzip, iter_lines
from shadowproxy.report.windows import Windows

__all__ = ["PARALLEL_MIN_BYTES", "Piece", "aggregate_files", "plan_pieces"]

PARALLEL_MIN_BYTES = 64 * 1024 * 1024
"""Below this much input, one process reads everything."""
_CHUNK_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Piece:
    """Lines of ``path`` starting in ``[start, end)``; ``end`` None means to the end."""

    path: Path
    start: int = 0
    end: int | None = None


def plan_pieces(files: Sequence[Path], chunk_bytes: int = _CHUNK_BYTES) -> list[Piece]:
    """Pieces covering every file once; big plain files are cut into ``chunk_bytes`` ranges."""
    pieces: list[Piece] = []
    for path in files:
        size = path.stat().st_size
        if size <= chunk_bytes or is_gzip(path):
            pieces.append(Piece(path))
            continue
        pieces.extend(
            Piece(path, start, min(start + chunk_bytes, size))
            for start in range(0, size, chunk_bytes)
        )
    return pieces


def _cost(piece: Piece) -> int:
    """Bytes of lines to read: a gzip file's uncompressed size, from its trailer."""
    if piece.end is not None:
        return piece.end - piece.start
    return max(uncompressed_size(piece.path), piece.path.stat().st_size)


def _balance(pieces: Sequence[Piece], count: int) -> list[list[Piece]]:
    """Pieces dealt to ``count`` workers, largest first to the least loaded (LPT)."""
    shares: list[list[Piece]] = [[] for _ in range(count)]
    loads = [0] * count
    for cost, piece in sorted(((_cost(p), p) for p in pieces), key=lambda cp: -cp[0]):
        lightest = loads.index(min(loads))
        shares[lightest].append(piece)
        loads[lightest] += cost
    return [share for share in shares if share]


def _aggregate(pieces: Sequence[Piece], windows: Windows, known: KnownSet) -> Aggregator:
    aggregator = Aggregator(windows, known=known)
    for piece in pieces:
        aggregator.feed(
            iter_lines(piece.path, piece.start, piece.end), str(piece.path), piece.start
        )
    return aggregator


def aggregate_files(
    files: Sequence[Path],
    windows: Windows,
    known: KnownSet | None = None,
    workers: int | None = None,
    parallel_min_bytes: int = PARALLEL_MIN_BYTES,
    chunk_bytes: int = _CHUNK_BYTES,
) -> Aggregator:
    """One aggregator over every distinct file, using up to ``workers`` processes for big inputs.

    ``known`` decides which exchanges' differences count as documented.
    """
    known = known or KnownSet()
    files, duplicates = distinct(files)
    total = 0
    for path in files:
        try:
            total += path.stat().st_size
        except OSError as exc:
            raise ReportInputError(str(path), f"cannot read ({exc.strerror or exc})") from None
    count = workers or os.cpu_count() or 1
    if count < 2 or total < parallel_min_bytes:
        merged = _aggregate([Piece(path) for path in files], windows, known)
    else:
        shares = _balance(plan_pieces(files, chunk_bytes), count)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=len(shares), mp_context=context) as pool:
            results = list(
                pool.map(_aggregate, shares, [windows] * len(shares), [known] * len(shares))
            )
        merged = results[0]
        for other in results[1:]:
            merged.merge(other)
    merged.note_duplicates((str(path), str(same)) for path, same in duplicates)
    return merged
