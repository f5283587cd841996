"""The cutover state file: where route ownership outlives a restart and reaches every worker.

Owns ``<cutover.state_dir>/ownership.json`` and its lock file. The directory
is private: created with mode 0700, refused when it is a symbolic link, not
a directory or another user's, and tightened when others may write to it.
A change is a read-modify-write under an exclusive ``flock`` on the lock
file; the new state goes to a temporary file (``O_EXCL``, ``O_NOFOLLOW``,
mode 0600), is fsynced and renamed over the old one, and the directory is
fsynced, so a reader never sees half a state and a crash never loses a
saved one. Readers open the file with ``O_NOFOLLOW``. Every failure is a
``StateFileError`` naming the path; callers decide what it costs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import orjson

from shadowproxy.cutover.state import CutoverState

__all__ = ["LOCK_FILE", "STATE_FILE", "StateFile", "StateFileError"]

STATE_FILE = "ownership.json"
"""The state file's name inside the state directory."""
LOCK_FILE = "ownership.lock"
_MAX_BYTES = 4 * 1024 * 1024
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


class StateFileError(Exception):
    """The state file or its directory could not be used; the message names the path."""


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


class StateFile:
    """One state directory's ``ownership.json``."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.path = self.directory / STATE_FILE
        self._seen: tuple[int, int, int] | None = None

    def prepare(self) -> None:
        """Create the directory (0700) or check the one there; StateFileError when unusable."""
        where = str(self.directory)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = os.lstat(self.directory)
        except OSError as exc:
            raise StateFileError(f"{where}: {_reason(exc)}") from None
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
            raise StateFileError(f"{where}: not a directory (a link or a file)")
        if info.st_uid != os.geteuid():
            raise StateFileError(f"{where}: owned by uid {info.st_uid}, not by this user")
        if info.st_mode & _OTHERS_WRITE:
            try:
                self.directory.chmod(stat.S_IMODE(info.st_mode) & ~_OTHERS_WRITE)
            except OSError as exc:
                raise StateFileError(f"{where}: {_reason(exc)}") from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the exclusive lock for a read-modify-write."""
        try:
            fd = os.open(
                self.directory / LOCK_FILE,
                os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                0o600,
            )
        except OSError as exc:
            raise StateFileError(f"{self.directory / LOCK_FILE}: {_reason(exc)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def changed(self) -> bool:
        """True when the file differs from the one last read or written here."""
        try:
            info = self.path.lstat()
        except OSError:
            return False
        return (info.st_ino, info.st_mtime_ns, info.st_size) != self._seen

    def read(self) -> CutoverState | None:
        """The saved state; None when there is none yet. StateFileError when unreadable."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateFileError(f"{self.path}: {_reason(exc)}") from None
        try:
            with os.fdopen(fd, "rb") as handle:
                info = os.fstat(handle.fileno())
                data = handle.read(_MAX_BYTES + 1)
            if len(data) > _MAX_BYTES:
                raise StateFileError(f"{self.path}: larger than {_MAX_BYTES} bytes")
            state = CutoverState.from_json(orjson.loads(data))
        except OSError as exc:
            raise StateFileError(f"{self.path}: {_reason(exc)}") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StateFileError(f"{self.path}: malformed ({type(exc).__name__})") from None
        self._seen = (info.st_ino, info.st_mtime_ns, info.st_size)
        return state

    def write(self, state: CutoverState) -> None:
        """Replace the file with ``state``, durably; StateFileError when it cannot."""
        temporary = self.directory / f".{STATE_FILE}.{os.getpid()}.tmp"
        try:
            temporary.unlink(missing_ok=True)
            fd = os.open(
                temporary,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                0o600,
            )
            with os.fdopen(fd, "wb") as out:
                out.write(orjson.dumps(state.to_json()))
                out.flush()
                os.fsync(out.fileno())
            temporary.replace(self.path)
            self._sync_directory()
            info = self.path.lstat()
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise StateFileError(f"{self.path}: {_reason(exc)}") from None
        self._seen = (info.st_ino, info.st_mtime_ns, info.st_size)

    def set_aside(self) -> str | None:
        """Rename an unreadable file out of the way (kept for a post-mortem); its new name."""
        aside = self.path.with_name(f"{STATE_FILE}.unreadable")
        try:
            self.path.replace(aside)
        except OSError:
            return None
        return str(aside)

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
