"""Finding and reading evidence files: paths, directories, globs, rotated and gzip.

Owns turning the command line's PATHs into an ordered, de-duplicated list of
files, and streaming each file's lines as bytes (never loading a whole file).
Standard library only.
"""

from __future__ import annotations

import glob
import gzip
import re
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from shadowproxy.report.errors import ReportInputError

__all__ = ["expand_paths", "iter_lines"]

_EVIDENCE_NAME = re.compile(r"\.jsonl(\.\d+)?(\.gz)?$")
_GLOB_CHARS = frozenset("*?[")
_GZIP_MAGIC = b"\x1f\x8b"
_READ_BUFFER = 1024 * 1024


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


def iter_lines(path: Path) -> Iterator[bytes]:
    """The lines of ``path``, gunzipped when it starts with the gzip magic.

    A gzip file cut short (still being compressed, or copied mid-rotation)
    ends the stream early with a final ``b"\\0truncated"`` marker line, which
    the caller counts as malformed instead of failing the whole report.
    """
    try:
        raw = path.open("rb", buffering=_READ_BUFFER)
    except OSError as exc:
        raise ReportInputError(str(path), f"cannot read ({exc.strerror or exc})") from None
    with raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        if not compressed:
            yield from raw
            return
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield from unzipped
        except (EOFError, gzip.BadGzipFile, zlib.error):
            yield b"\0truncated"
