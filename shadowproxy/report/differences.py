"""Differences by fingerprint, and noise paths: the exchange records' part of a report.

Owns the two bounded tables fed by exchange differences: per fingerprint
``(route, class, kind, path)`` its count, first and last time and earliest
example (at most ``max_fingerprints``; later new ones are counted as
overflow, semantic ones per domain, since an untracked semantic difference
cannot be documented), and per ``(route, path)`` how often it was noise
(array indices generalised, at most ``MAX_NOISE_PATHS``). Paths longer than
1,024 characters are cut. Imports the report's values and records.
"""

from __future__ import annotations

import re

from shadowproxy.report.accumulators import MAX_PATH_CHARS, FingerprintAcc, cut
from shadowproxy.report.records import Difference, ExchangeRecord, raw_text
from shadowproxy.report.summary import FingerprintSummary, NoisePath

__all__ = ["MAX_FINGERPRINTS", "MAX_NOISE_PATHS", "Differences"]

MAX_FINGERPRINTS = 10_000
"""Distinct fingerprints tracked; later new ones are counted as overflow."""
MAX_NOISE_PATHS = 10_000
"""Distinct noise paths tracked; later new ones are not counted."""
_EXAMPLE_CHARS = 160
_INDEX = re.compile(r"\[\d+\]")


def _example(record: ExchangeRecord, diff: Difference) -> str:
    legacy, candidate = raw_text(diff.legacy), raw_text(diff.candidate)
    text = f"{record.method} {record.path}: {legacy} -> {candidate}"
    return text if len(text) <= _EXAMPLE_CHARS else text[: _EXAMPLE_CHARS - 1] + "…"


class Differences:
    """Fingerprints and noise paths while reading; merged across worker processes."""

    __slots__ = ("_fingerprints", "_noise", "capacity", "overflow", "semantic_overflow")

    def __init__(self, max_fingerprints: int = MAX_FINGERPRINTS) -> None:
        self.capacity = max_fingerprints
        """Distinct fingerprints tracked at most."""
        self._fingerprints: dict[tuple[str, str, str, str], FingerprintAcc] = {}
        self._noise: dict[tuple[str, str], int] = {}
        self.overflow = 0
        """Non-noise differences not tracked because the table was full."""
        self.semantic_overflow: dict[str, int] = {}
        """Per domain, semantic differences among ``overflow``."""

    def add(self, record: ExchangeRecord, domain: str, ts: float) -> None:
        """The differences of an exchange at ``ts`` (one call per exchange: this is hot)."""
        fingerprints, noise = self._fingerprints, self.noise
        for diff in record.differences or ():
            if diff.noise:
                noise(record.route, diff.path)
                continue
            cls, path = diff.cls, diff.path
            if len(path) > MAX_PATH_CHARS:
                path = cut(path)
            key = (record.route, cls, diff.kind, path)
            acc = fingerprints.get(key)
            if acc is None:
                if len(fingerprints) >= self.capacity:
                    self._overflowed(domain, cls, 1)
                    continue
                acc = fingerprints[key] = FingerprintAcc(domain, ts, _example(record, diff))
            acc.count += 1
            if ts < acc.first:
                acc.first = ts
                acc.example = _example(record, diff)
            elif ts > acc.last:
                acc.last = ts

    def _overflowed(self, domain: str, cls: str, count: int) -> None:
        self.overflow += count
        if cls == "semantic":
            self.semantic_overflow[domain] = self.semantic_overflow.get(domain, 0) + count

    def noise(self, route: str, path: str) -> None:
        """One noise difference at a body ``path`` of ``route`` (others are not kept)."""
        if not path.startswith("$"):
            return
        if "[" in path:
            path = _INDEX.sub("[*]", path)
        key = (route, path if len(path) <= MAX_PATH_CHARS else cut(path))
        count = self._noise.get(key)
        if count is not None:
            self._noise[key] = count + 1
        elif len(self._noise) < MAX_NOISE_PATHS:
            self._noise[key] = 1

    def merge(self, other: Differences) -> None:
        """Add another table (from a worker process), keeping the caps."""
        for key, theirs in other._fingerprints.items():
            mine = self._fingerprints.get(key)
            if mine is not None:
                mine.merge(theirs)
            elif len(self._fingerprints) < self.capacity:
                self._fingerprints[key] = theirs
            else:
                self._overflowed(theirs.domain, key[1], theirs.count)
        for nkey, n in other._noise.items():
            if nkey in self._noise or len(self._noise) < MAX_NOISE_PATHS:
                self._noise[nkey] = self._noise.get(nkey, 0) + n
        self.overflow += other.overflow
        for domain, n in other.semantic_overflow.items():
            self.semantic_overflow[domain] = self.semantic_overflow.get(domain, 0) + n

    def fingerprints(self) -> tuple[FingerprintSummary, ...]:
        """Every tracked fingerprint, most frequent first."""
        return tuple(
            sorted(
                (
                    FingerprintSummary(
                        route,
                        acc.domain,
                        cls,
                        kind,
                        path,
                        acc.count,
                        acc.first,
                        acc.last,
                        acc.example,
                    )
                    for (route, cls, kind, path), acc in self._fingerprints.items()
                ),
                key=lambda f: (-f.count, f.key),
            )
        )

    def noise_paths(self) -> tuple[NoisePath, ...]:
        """Every tracked noise path, by route, most frequent first."""
        return tuple(
            sorted(
                (NoisePath(route, path, n) for (route, path), n in self._noise.items()),
                key=lambda p: (p.route, -p.count, p.path),
            )
        )
