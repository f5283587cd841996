"""The exceptions of the report: bad input a user can fix, and values no writer makes.

Imports only the standard library. ``command.run_report`` turns a
``ReportInputError`` into one line on stderr and exit code 2; nothing else
in the report raises for input::

    Exception
    ├── ReportInputError       a missing path, unreadable file, invalid key,
    │                          or a hostile record (named by file and line)
    └── HostileValueError      raised while reading one record; the reader
                               names the file and line and raises ReportInputError
"""

from __future__ import annotations

__all__ = ["HostileValueError", "ReportInputError"]


class ReportInputError(Exception):
    """A missing path, unreadable file or invalid key; ``source`` names the file."""

    def __init__(self, source: str, what: str) -> None:
        super().__init__(f"{source}: {what}")
        self.source = source
        self.what = what

    def __reduce__(self) -> tuple[type[ReportInputError], tuple[str, str]]:
        # Raised in worker processes too; the default pickling would lose ``what``.
        return (type(self), (self.source, self.what))


class HostileValueError(Exception):
    """A value no writer produces and that would break the arithmetic or the stack.

    Counters beyond 64 bits, instants outside the years 1970-9999, values
    nested too deep to decode. The whole report is refused (exit 2) rather
    than judged without the record or crashed by it.
    """
