"""Evidence files on disk: names, private opening, rotation and the disk cap's order.

Owns what the writer thread does to the file system, and only that:

- names: ``shadow-<worker>.jsonl`` for exchange records and
  ``shadow-<worker>.rollups.jsonl`` for rollups and the other small records,
  rotated as ``.1``, ``.2``, ...;
- ``open_private``: a file is opened with ``O_NOFOLLOW``, created with
  ``O_EXCL`` and mode 0600, and refused unless it is a regular file of this
  user with one link, so a planted symlink or hard link never redirects
  evidence;
- ``private_dir``: ``log_dir`` is created 0700; one owned by another user is
  refused, one that others may write to is tightened (with a warning);
- ``rotate``: shifting rotated files up, keeping ``keep_files`` of them, except
  rollup files younger than the retention window, which are kept whatever
  their number;
- ``DiskCap``: the size of every evidence file in ``log_dir`` and the order in
  which the cap frees room: other workers' and this worker's rotated exchange
  files first (oldest first), then rotated rollup files older than the
  retention window; a rollup file younger than that is never deleted.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

__all__ = [
    "DiskCap",
    "Stream",
    "file_name",
    "open_private",
    "private_dir",
    "rotate",
    "safe_worker_id",
]

_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]")
_EVIDENCE = re.compile(r"shadow-.+?(\.rollups)?\.jsonl(?:\.(\d+))?(?:\.gz)?")
_WIDE = stat.S_IWGRP | stat.S_IWOTH


class Stream(StrEnum):
    """The two files of a worker: exchange records go first under pressure, rollups last."""

    EXCHANGES = "exchanges"
    ROLLUPS = "rollups"


def safe_worker_id(worker_id: str) -> str:
    """``worker_id`` for a file name: unsafe characters become ``_``."""
    return _SAFE_ID.sub("_", worker_id)


def file_name(worker_id: str, stream: Stream = Stream.EXCHANGES) -> str:
    """The active file name of ``stream`` for ``worker_id`` (unsafe characters become ``_``)."""
    infix = ".rollups" if stream is Stream.ROLLUPS else ""
    return f"shadow-{safe_worker_id(worker_id)}{infix}.jsonl"


def open_private(path: Path) -> int:
    """Open ``path`` for appending, never through a symlink, creating it 0600; the descriptor.

    Raises OSError when the name is a symlink, not a regular file, another
    user's, or hard-linked elsewhere.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "a symbolic link, never followed", str(path)) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_nlink != 1:
            raise OSError(errno.EPERM, "not a private regular file of this user", str(path))
        if stat.S_IMODE(info.st_mode) != 0o600:
            # A file created earlier by an older version may be wider; evidence is private.
            os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return fd


def private_dir(path: Path) -> str | None:
    """Create ``path`` (0700) or check it; a warning when it had to be tightened, else None.

    Raises OSError when it is not a directory or belongs to another user: a
    directory someone else controls can swap files under the writer.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise OSError(errno.ENOTDIR, "not a directory", str(path))
    if info.st_uid != os.geteuid():
        raise OSError(
            errno.EPERM,
            f"owned by uid {info.st_uid}, not by this user ({os.geteuid()}); refused",
            str(path),
        )
    mode = stat.S_IMODE(info.st_mode)
    if not mode & _WIDE:
        return None
    path.chmod(mode & ~_WIDE)
    return f"log_dir was writable by other users (mode {mode:o}); now {mode & ~_WIDE:o}"


def rotate(active: Path, keep_files: int, keep_newer_than: float | None) -> None:
    """Shift ``active.N`` to ``.N+1`` and ``active`` to ``.1``; trim beyond ``keep_files``.

    With ``keep_newer_than`` (a wall-clock time), files modified after it are
    kept even beyond ``keep_files``: they hold rollups of the retention window.
    Renames never follow symlinks (a planted one is replaced, its target untouched).
    """
    for n, src, suffix in sorted(_rotated(active), reverse=True):
        target = active.with_name(f"{active.name}.{n + 1}{suffix}")
        src.rename(target)
        if n + 1 > keep_files and not _young(target, keep_newer_than):
            target.unlink()
    if keep_files > 0 or keep_newer_than is not None:
        active.rename(active.with_name(f"{active.name}.1"))
    else:
        active.unlink()


def _rotated(active: Path) -> list[tuple[int, Path, str]]:
    """``active``'s rotated files (``.N`` and ``.N.gz``): number, path and ``.gz`` or ``""``."""
    found = []
    prefix = f"{active.name}."
    for entry in os.scandir(active.parent):
        if entry.name.startswith(prefix):
            number, dot, rest = entry.name[len(prefix) :].partition(".")
            if number.isdigit() and rest in {"", "gz"}:
                found.append((int(number), Path(entry.path), dot + rest))
    return found


def _young(path: Path, newer_than: float | None) -> bool:
    if newer_than is None:
        return False
    try:
        return path.lstat().st_mtime > newer_than
    except FileNotFoundError:
        return False


@dataclass(slots=True)
class _Rotated:
    mtime: float
    age: int
    """Minus the rotation number: equal mtimes, a higher suffix is older."""
    size: int
    path: Path
    rollups: bool


class DiskCap:
    """What every evidence file in ``log_dir`` holds, and room made under ``max_total_bytes``."""

    __slots__ = ("_cap", "_dir", "_rotated", "total")

    def __init__(self, log_dir: Path, max_total_bytes: int) -> None:
        self._dir = log_dir
        self._cap = max_total_bytes
        self.total = 0
        """Bytes of every evidence file as last measured, plus what was written since."""
        self._rotated: list[_Rotated] = []

    def fits(self, extra: int) -> bool:
        """Whether ``extra`` more bytes stay under the cap."""
        return self.total + extra <= self._cap

    def scan(self) -> None:
        """Re-measure every evidence file in ``log_dir`` (raises OSError when it cannot list it)."""
        total = 0
        rotated: list[_Rotated] = []
        for entry in os.scandir(self._dir):
            match = _EVIDENCE.fullmatch(entry.name)
            if match is None:
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            total += info.st_size
            if match.group(2) is not None:
                rotated.append(
                    _Rotated(
                        info.st_mtime,
                        -int(match.group(2)),
                        info.st_size,
                        Path(entry.path),
                        match.group(1) is not None,
                    )
                )
        rotated.sort(key=lambda f: (f.mtime, f.age))
        self.total, self._rotated = total, rotated

    def make_room(self, extra: int, keep_newer_than: float) -> list[OSError]:
        """Delete rotated files until ``extra`` fits: exchanges first, then old rollups.

        Rollup files modified after ``keep_newer_than`` are never deleted.
        Returns the errors met (a file another worker deleted first is no error).
        """
        errors: list[OSError] = []
        for rollups in (False, True):
            for found in [f for f in self._rotated if f.rollups is rollups]:
                if self.fits(extra):
                    return errors
                if rollups and found.mtime > keep_newer_than:
                    break
                self._rotated.remove(found)
                try:
                    found.path.unlink()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    errors.append(exc)
                    continue
                self.total -= found.size
        return errors

    def forget(self, size: int) -> None:
        """``size`` bytes were deleted outside ``make_room``."""
        self.total = max(self.total - size, 0)
