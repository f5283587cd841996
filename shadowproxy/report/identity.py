"""Files with the same content are read once: a rotated file and its ``gzip -k`` copy.

Owns finding evidence files whose lines are identical once decompressed.
Only files whose uncompressed sizes agree (a plain file's size, a gzip
file's ISIZE trailer, both modulo 2**32) are hashed, so the usual input
costs one ``stat`` per file; the hash reads what the report would read,
within the same decompression bound. Imports the standard library and the
report's sources.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

from shadowproxy.report.errors import ReportInputError
from shadowproxy.report.sources import gzip_bound, is_gzip

__all__ = ["distinct", "uncompressed_size"]

_BLOCK = 1024 * 1024


def uncompressed_size(path: Path) -> int:
    """The bytes of lines ``path`` holds: its size, or a gzip file's ISIZE trailer.

    ISIZE is the size modulo 2**32 as the compressor wrote it; a damaged or
    hostile file may lie, so it only ever selects what to compare or how to
    share work, never what is counted.
    """
    try:
        size = path.stat().st_size
        if size < 4 or not is_gzip(path):
            return size
        with path.open("rb") as handle:
            handle.seek(-4, os.SEEK_END)
            return int.from_bytes(handle.read(4), "little")
    except OSError as exc:
        raise ReportInputError(str(path), f"cannot read ({exc.strerror or exc})") from None


def _digest(path: Path) -> bytes:
    """BLAKE2b of the content the report reads from ``path`` (gunzipped, bounded)."""
    digest = hashlib.blake2b(digest_size=32)
    try:
        with path.open("rb") as raw:
            if not is_gzip(path):
                while block := raw.read(_BLOCK):
                    digest.update(block)
                return digest.digest()
            budget = gzip_bound(path)
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                while budget > 0 and (block := unzipped.read(min(_BLOCK, budget))):
                    digest.update(block)
                    budget -= len(block)
    except (EOFError, gzip.BadGzipFile, zlib.error):
        # A damaged stream is its own content: never the same as another file.
        digest.update(str(path).encode("utf-8", "surrogateescape"))
    except OSError as exc:
        raise ReportInputError(str(path), f"cannot read ({exc.strerror or exc})") from None
    return digest.digest()


def distinct(files: Sequence[Path]) -> tuple[list[Path], list[tuple[Path, Path]]]:
    """The files to read (the first of each content, in order) and ``(skipped, same_as)``."""
    by_size: dict[int, list[Path]] = {}
    for path in files:
        by_size.setdefault(uncompressed_size(path) % 2**32, []).append(path)
    first_of: dict[bytes, Path] = {}
    skipped: dict[Path, Path] = {}
    for group in by_size.values():
        if len(group) < 2:
            continue
        for path in group:
            same = first_of.setdefault(_digest(path), path)
            if same is not path:
                skipped[path] = same
    kept = [path for path in files if path not in skipped]
    return kept, list(skipped.items())
