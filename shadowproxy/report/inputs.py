"""What a report read: files, records by fate, and what could not be read, as frozen values.

``Findings.inputs`` and ``Findings.unreadable`` (``summary``) hold these; the
reader fills them (``damage``) and the gates hold unreadable lines against
the domains they fall in. Imports only the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FileProblems", "InputStats", "Unreadable"]


@dataclass(frozen=True, slots=True)
class FileProblems:
    """What could not be read in one file, wherever its lines fell in time."""

    file: str
    malformed: int = 0
    """Lines that are not a well-formed record (bad JSON, BOM, wrong types)."""
    oversized: int = 0
    """Lines longer than the reader's bound, skipped."""
    uncounted: int = 0
    """Records beyond the report's route or domain caps."""
    truncated: bool = False
    """A gzip file that stops short."""
    cut: bool = False
    """A gzip file that would expand past the reader's bound; the rest was not read."""
    first_line: int | None = None
    """The first line with a problem (for a gzip stream, the line after the last one read)."""
    first_problem: str = ""


@dataclass(frozen=True, slots=True)
class Unreadable:
    """Lines of one file that could not be counted, held against a domain's gates.

    ``domain`` is ``*`` when the line does not say which (every domain);
    ``gates`` is ``all`` (a rollup, or a line of unknown kind) or
    ``semantic_documented`` (an exchange: only that gate reads exchanges).
    """

    file: str
    domain: str
    gates: str
    count: int


@dataclass(frozen=True, slots=True)
class InputStats:
    """What was read: files, records by fate, and what could not be parsed."""

    files: int = 0
    records: int = 0
    malformed_lines: int = 0
    """Lines that are not a countable record, gzip streams cut short or cut at the bound."""
    unknown_types: int = 0
    outside_window: int = 0
    fingerprints_overflow: int = 0
    """Non-noise differences not tracked because the fingerprint table was full."""
    oversized_lines: int = 0
    """Of ``malformed_lines``, those longer than the reader's bound."""
    uncounted_records: int = 0
    """Records of routes or domains beyond the report's caps."""
    duplicate_files: tuple[tuple[str, str], ...] = ()
    """``(file, same_as)``: files skipped because another one has the same content."""
    problems: tuple[FileProblems, ...] = ()
