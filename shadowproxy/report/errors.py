"""The one exception the report raises: bad input a user can fix.

Imports only the standard library. ``command.run_report`` turns it into one
line on stderr and exit code 2; nothing else in the report raises for input.
"""

from __future__ import annotations

__all__ = ["ReportInputError"]


class ReportInputError(Exception):
    """A missing path, unreadable file or invalid key; ``source`` names the file."""

    def __init__(self, source: str, what: str) -> None:
        super().__init__(f"{source}: {what}")
        self.source = source
        self.what = what
