"""Body differences remembered by the pair of body digests: one document served to many.

Owns a bounded cache of what ``body.diff_bodies`` found for a pair of
decoded bodies. An endpoint that serves one document to many clients, and a
candidate that differs in it, gives the same pair again and again; parsing
and walking two 50 KB documents costs about a millisecond, their SHA-256
digests a twentieth of it. What the body diff finds depends only on the two
bodies, their media types and the tree rules, so a pair seen before is
answered from here; statuses, headers, timing, noise and classification are
still judged per exchange by the engine.

Bounded: at most ``MAX_ENTRIES`` pairs, least recently used forgotten, and a
pair is kept only when what it found is small (at most ``MAX_FOUND``
differences, each value a scalar or a string of at most ``MAX_VALUE_CHARS``):
an entry holds no document. A result is replayed only where it would be
reproduced exactly: when the collector has room for all of it, so the walk
that found it would not have stopped early. Pure code, one per ``Comparator``.

The digests of the last ``DIGESTS_KEPT`` bodies are remembered by the body
object itself: the comparison process gets the very same object again for a
body that crossed its pipe before (``shadow.wire.SharedBodies``), so
a document compared again is not hashed again either.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from shadowproxy.compare.body import diff_bodies
from shadowproxy.compare.found import Collector, Found
from shadowproxy.compare.media import MediaType
from shadowproxy.compare.tree import TreeRules

__all__ = ["DIGESTS_KEPT", "MAX_ENTRIES", "MAX_FOUND", "MAX_VALUE_CHARS", "BodyRecall"]

DIGESTS_KEPT = 4
MAX_ENTRIES = 256
MAX_FOUND = 8
MAX_VALUE_CHARS = 256

_Key = tuple[bytes, bytes, MediaType, MediaType, int]


@dataclass(frozen=True, slots=True)
class _Entry:
    rules: TreeRules
    found: tuple[Found, ...]
    equivalences: tuple[tuple[str, int], ...]


def _small(found: Found) -> bool:
    return all(
        value is None
        or type(value) in (bool, int, float)
        or (type(value) is str and len(value) <= MAX_VALUE_CHARS)
        for value in (found.legacy, found.candidate)
    )


class BodyRecall:
    """``diff_bodies`` through a cache keyed by the pair of body digests."""

    __slots__ = ("_digests", "_entries", "hits", "misses")

    def __init__(self) -> None:
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        # By id, holding the body: an id is never reused while its entry is kept.
        self._digests: OrderedDict[int, tuple[bytes, bytes]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def diff(
        self,
        bodies: tuple[bytes, bytes],
        media: tuple[MediaType, MediaType],
        rules: TreeRules,
        out: Collector,
    ) -> None:
        """What ``body.diff_bodies`` appends to ``out`` for the legacy and other ``bodies``
        and their ``media`` types, from the cache when it can."""
        key = (
            self._digest(bodies[0]),
            self._digest(bodies[1]),
            *media,
            id(rules),
        )
        entry = self._entries.get(key)
        # The entry holds its rules, so an id is never reused while it is kept.
        if (
            entry is not None
            and entry.rules is rules
            and len(out.found) + len(entry.found) <= out.limit
        ):
            self._entries.move_to_end(key)
            self.hits += 1
            out.found.extend(entry.found)
            for name, times in entry.equivalences:
                out.equivalences[name] = out.equivalences.get(name, 0) + times
            return
        self.misses += 1
        before_found, before = len(out.found), dict(out.equivalences)
        diff_bodies(*bodies, *media, rules, out)
        found = out.found[before_found:]
        if out.truncated or len(found) > MAX_FOUND or not all(map(_small, found)):
            return
        equivalences = tuple(
            (name, times - before.get(name, 0))
            for name, times in out.equivalences.items()
            if times != before.get(name, 0)
        )
        self._entries[key] = _Entry(rules, tuple(found), equivalences)
        self._entries.move_to_end(key)
        if len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)

    def _digest(self, body: bytes) -> bytes:
        held = self._digests.get(id(body))
        if held is not None and held[0] is body:
            self._digests.move_to_end(id(body))
            return held[1]
        digest = hashlib.sha256(body).digest()
        self._digests[id(body)] = (body, digest)
        if len(self._digests) > DIGESTS_KEPT:
            self._digests.popitem(last=False)
        return digest
