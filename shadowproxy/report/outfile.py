"""Writing the report's own files (``--out``, ``--tracker``): private, and replaced whole.

Owns opening an output file readable by its owner only (mode 0600; an
existing wider file is narrowed before anything is written) and replacing
a file atomically through a private temporary file in the same directory.
A failure is a ``ReportInputError`` naming the path. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from shadowproxy.report.errors import ReportInputError

__all__ = ["private_text", "replace_private"]

_MODE = 0o600


def _cannot_write(path: str | Path, exc: OSError) -> ReportInputError:
    return ReportInputError(str(path), f"cannot write ({exc.strerror or exc})")


@contextlib.contextmanager
def private_text(path: str) -> Iterator[TextIO]:
    """``path`` opened for writing text, truncated, with mode 0600."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, _MODE)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    try:
        # A file that existed before keeps its mode through O_CREAT; reports are private.
        os.fchmod(fd, _MODE)
        out = os.fdopen(fd, "w", encoding="utf-8", newline="")
    except OSError as exc:
        os.close(fd)
        raise _cannot_write(path, exc) from None
    try:
        with out:
            yield out
    except OSError as exc:
        raise _cannot_write(path, exc) from None


@contextlib.contextmanager
def replace_private(path: str) -> Iterator[TextIO]:
    """A private temporary file that replaces ``path`` when the block ends without error."""
    target = Path(path)
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            yield out
        Path(temporary).replace(target)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            Path(temporary).unlink()
