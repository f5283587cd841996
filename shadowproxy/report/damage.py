"""Evidence that could not be counted: per file, and held against which domain's gates.

Owns the bounded tally of lines the aggregator could not count (malformed,
oversized, after a gzip file's cut or truncation, beyond the report's caps)
and what a failed line still says about itself (its type, domain and time),
which decides whose gates it keeps from passing. A line that does not say
is held against every domain. Imports orjson and the report's values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from shadowproxy.report.errors import HostileValueError
from shadowproxy.report.inputs import FileProblems, InputStats, Unreadable
from shadowproxy.report.records import MAX_KEY_CHARS
from shadowproxy.report.sources import CUT, OVERSIZED, TRUNCATED
from shadowproxy.report.summary import ALL_GATES, ANY_DOMAIN

__all__ = ["DamageLog", "Described", "describe", "input_notes", "marker_problem"]

_EXCHANGE_GATES = "semantic_documented"
_MAX_HELD_DOMAINS = 1000
_MAX_KIND_SHOWN = 32
_MARKERS = {
    OVERSIZED: ("oversized", "a line longer than 8 MiB"),
    TRUNCATED: ("truncated", "the gzip stream stops short"),
    CUT: ("cut", "the gzip stream expands past the reader's bound"),
}


@dataclass(frozen=True, slots=True)
class Described:
    """What a line that failed still says: its type, domain and time (None: unknown)."""

    kind: str | None
    domain: str | None
    when: str | None

    @property
    def gates(self) -> str | None:
        """Which gates the line is held against; None for a record no gate reads."""
        if self.kind == "exchange":
            return _EXCHANGE_GATES
        return None if self.kind == "ownership" else ALL_GATES


def describe(line: bytes) -> Described:
    """What a line the aggregator could not count says about itself."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit"):
            raise HostileValueError("a value is nested too deep to decode") from None
        return Described(None, None, None)
    if not isinstance(record, dict):
        return Described(None, None, None)
    kind, domain = record.get("type"), record.get("domain")
    when = record.get("ts_start" if kind == "rollup" else "ts")
    return Described(
        # Only records whose type the reader knows fail here, but the text is shown: cut it.
        kind[:_MAX_KIND_SHOWN] if isinstance(kind, str) else None,
        domain if isinstance(domain, str) and len(domain) <= MAX_KEY_CHARS else None,
        when if isinstance(when, str) else None,
    )


def marker_problem(line: bytes) -> tuple[str, str] | None:
    """``(kind, description)`` when ``line`` is a reader's marker, else None."""
    return _MARKERS.get(line)


class _FileAcc:
    __slots__ = ("counts", "first")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.first: tuple[int, int, str] | None = None


class DamageLog:
    """Problems per file, and counts held against ``(file, domain, gates)``."""

    __slots__ = ("_domains", "_files", "_held")

    def __init__(self) -> None:
        self._held: dict[tuple[str, str, str], int] = {}
        self._domains: set[str] = set()
        self._files: dict[str, _FileAcc] = {}

    def add(
        self,
        file: str,
        position: tuple[int, int],
        problem: tuple[str, str],
        held: tuple[str, str] | None,
    ) -> None:
        """One problem (``(kind, description)``) at line ``position`` = ``(start byte, index)``.

        ``held`` is ``(domain, gates)`` when the line falls in (or may fall
        in) the window, None when it is known to fall outside.
        """
        acc = self._files.get(file)
        if acc is None:
            acc = self._files[file] = _FileAcc()
        kind, description = problem
        acc.counts[kind] = acc.counts.get(kind, 0) + 1
        if acc.first is None or position < acc.first[:2]:
            acc.first = (*position, description)
        if held is not None:
            self._hold(file, *held, 1)

    def _hold(self, file: str, domain: str, gates: str, count: int) -> None:
        if domain not in self._domains:
            if len(self._domains) >= _MAX_HELD_DOMAINS:
                domain = ANY_DOMAIN
            self._domains.add(domain)
        key = (file, domain, gates)
        self._held[key] = self._held.get(key, 0) + count

    def merge(self, other: DamageLog) -> None:
        """Add another log (from a worker)."""
        for (file, domain, gates), count in other._held.items():
            self._hold(file, domain, gates, count)
        for file, theirs in other._files.items():
            mine = self._files.get(file)
            if mine is None:
                self._files[file] = theirs
                continue
            for kind, n in theirs.counts.items():
                mine.counts[kind] = mine.counts.get(kind, 0) + n
            if theirs.first is not None and (mine.first is None or theirs.first < mine.first):
                mine.first = theirs.first

    def total(self, kind: str) -> int:
        """Problems of ``kind`` over every file."""
        return sum(acc.counts.get(kind, 0) for acc in self._files.values())

    def unreadable(self) -> tuple[Unreadable, ...]:
        """What is held against gates, largest first."""
        return tuple(
            sorted(
                (
                    Unreadable(file, domain, gates, n)
                    for (file, domain, gates), n in self._held.items()
                ),
                key=lambda u: (-u.count, u.file, u.domain, u.gates),
            )
        )

    def problems(self, locate: Callable[[str, int, int], int]) -> tuple[FileProblems, ...]:
        """Each file's problems; ``locate(file, start, index)`` gives a line number."""
        out = []
        for file, acc in sorted(self._files.items()):
            first_line, what = None, ""
            if acc.first is not None:
                start, index, what = acc.first
                first_line = locate(file, start, index)
            counts = acc.counts
            out.append(
                FileProblems(
                    file,
                    malformed=counts.get("malformed", 0),
                    oversized=counts.get("oversized", 0),
                    uncounted=counts.get("uncounted", 0),
                    truncated="truncated" in counts,
                    cut="cut" in counts,
                    first_line=first_line,
                    first_problem=what,
                )
            )
        return tuple(out)


def input_notes(
    inputs: InputStats,
    duplicates: Sequence[tuple[str, str]],
    unknown: int,
    capacity: int,
    caps: tuple[int, int],
) -> tuple[str, ...]:
    """The report's notes on what it read: malformed, uncounted past ``caps`` (routes,
    domains), cut or truncated gzip, duplicate files, unknown types, fingerprint overflow."""
    notes = []
    if inputs.malformed_lines:
        oversized = inputs.oversized_lines
        notes.append(
            f"{inputs.malformed_lines} malformed lines skipped"
            + (f" ({oversized} of them over 8 MiB)" if oversized else "")
        )
    if inputs.uncounted_records:
        notes.append(
            f"{inputs.uncounted_records} records beyond the caps ({caps[0]} routes, "
            f"{caps[1]} domains) not counted"
        )
    for problem in inputs.problems:
        if problem.truncated:
            notes.append(f"{problem.file}: the gzip stream stops short")
        if problem.cut:
            notes.append(
                f"{problem.file}: the gzip stream expands past 256 times the file's size; "
                "the rest was not read"
            )
    notes.extend(f"{file}: same content as {same}, read once" for file, same in duplicates)
    if unknown:
        notes.append(f"{unknown} records of unknown type skipped")
    if inputs.fingerprints_overflow:
        notes.append(
            f"fingerprint table full ({capacity}): "
            f"{inputs.fingerprints_overflow} differences not tracked"
        )
    return tuple(notes)
