"""Streams compared: two windows of events (SSE events, WebSocket messages), event by event.

Owns the kinds of stream difference and the alignment that finds them:

- the two sequences are aligned on whole events (type, id, data) with
  ``difflib``'s matcher; an event both sides sent at different places is
  ``event_order``;
- the rest of each unequal stretch is paired in order and compared field by
  field: ``event_type``, ``event_id``, and the data, with the body comparison
  (JSON with the engine, else text; binary WebSocket messages by bytes), its
  paths prefixed by the event's position and type (``$[3].update.total``);
- what is left is ``event_missing`` or ``event_extra``, except events one side
  sent after the other side's window closed, or past as many events as the
  other's window held when it closed full: those were never in both windows;
- timing: ``first_event`` (the first event's latency, by the route's timing
  rule) and ``event_gap`` (the one gap between consecutive aligned events
  that grew most, when it breaks the rule);
- with ``json_patch``, events holding JSON Patch arrays are left out of the
  sequences and compared as the documents they build (``patches``).

Pure code: no I/O, no clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from difflib import SequenceMatcher

from shadowproxy.compare.body import diff_bodies
from shadowproxy.compare.found import Collector, Found
from shadowproxy.compare.media import parse_content_type
from shadowproxy.compare.patches import PATCH_PATH, build_document, is_patch
from shadowproxy.compare.paths import Segments, format_path
from shadowproxy.compare.rules import TimingRules
from shadowproxy.compare.timing import is_slow
from shadowproxy.compare.tree import TreeRules, diff_json
from shadowproxy.model import StreamEvent, StreamWindow, WindowEnd

__all__ = ["BINARY", "FIRST_EVENT_PATH", "diff_streams"]

BINARY = "binary"
"""The type of a binary WebSocket message: its data is compared as bytes."""
FIRST_EVENT_PATH = "first_event"
_JSON = parse_content_type("application/json")
_BYTES = parse_content_type("application/octet-stream")


def diff_streams(
    legacy: StreamWindow,
    candidate: StreamWindow,
    rules: TreeRules,
    timing: TimingRules,
    out: Collector,
    *,
    json_patch: bool = False,
) -> None:
    """Append the differences between two windows to ``out``."""
    left, right = list(legacy.events), list(candidate.events)
    if json_patch:
        left_patches = [e for e in left if is_patch(e.data)]
        right_patches = [e for e in right if is_patch(e.data)]
        left = [e for e in left if not is_patch(e.data)]
        right = [e for e in right if not is_patch(e.data)]
    _first_event(legacy.events, candidate.events, timing, out)
    pairs = _Alignment(left, right, legacy, candidate, rules, out).run()
    _largest_gap(left, right, pairs, timing, out)
    if json_patch and (left_patches or right_patches):
        _documents(
            _within(left_patches, candidate),
            _within(right_patches, legacy),
            rules,
            out,
        )


def _within(events: Sequence[StreamEvent], other: StreamWindow) -> list[StreamEvent]:
    """``events`` the other side's window could have seen (all, unless it was cut earlier)."""
    if not other.cut:
        return list(events)
    return [e for e in events if e.at_s <= other.closed_s]


class _Alignment:
    """One alignment of two event sequences and the differences it finds."""

    __slots__ = ("_candidate", "_left", "_legacy", "_out", "_right", "_rules")

    def __init__(
        self,
        left: list[StreamEvent],
        right: list[StreamEvent],
        legacy: StreamWindow,
        candidate: StreamWindow,
        rules: TreeRules,
        out: Collector,
    ) -> None:
        self._left, self._right = left, right
        self._legacy, self._candidate = legacy, candidate
        self._rules = rules
        self._out = out

    def run(self) -> list[tuple[int, int]]:
        """Report the differences; returns the aligned pairs (legacy index, candidate index)."""
        left, right = self._left, self._right
        matcher = SequenceMatcher(None, [_key(e) for e in left], [_key(e) for e in right], False)
        pairs: list[tuple[int, int]] = []
        stretches: list[tuple[list[int], list[int]]] = []
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                pairs.extend(zip(range(i1, i2), range(j1, j2), strict=True))
            else:
                stretches.append((list(range(i1, i2)), list(range(j1, j2))))
        moved = self._moved(stretches)
        for i, j in moved:
            self._add("event_order", i, left[i], i, j)
        paired: list[tuple[int, int]] = []
        missing: list[int] = []
        extra: list[int] = []
        taken_left = {i for i, _ in moved}
        taken_right = {j for _, j in moved}
        for lefts, rights in stretches:
            lefts = [i for i in lefts if i not in taken_left]
            rights = [j for j in rights if j not in taken_right]
            paired.extend(zip(lefts, rights, strict=False))
            missing.extend(lefts[len(rights) :])
            extra.extend(rights[len(lefts) :])
        for i, j in sorted(paired):
            self._fields(i, j)
        for i in missing:
            if not _beyond(left[i], i, self._candidate, len(right)):
                self._add("event_missing", i, left[i], _summary(left[i]), None)
        for j in extra:
            if not _beyond(right[j], j, self._legacy, len(left)):
                self._add("event_extra", j, right[j], None, _summary(right[j]))
        return sorted(pairs + paired)

    def _moved(self, stretches: list[tuple[list[int], list[int]]]) -> list[tuple[int, int]]:
        """Events both sides sent, at different places: (legacy index, candidate index)."""
        waiting: dict[tuple[str, str | None, bytes], list[int]] = {}
        for _, rights in stretches:
            for j in rights:
                waiting.setdefault(_key(self._right[j]), []).append(j)
        moved: list[tuple[int, int]] = []
        for lefts, _ in stretches:
            for i in lefts:
                same = waiting.get(_key(self._left[i]))
                if same:
                    moved.append((i, same.pop(0)))
        return moved

    def _fields(self, i: int, j: int) -> None:
        """Compare two events that take the same place in their sequences."""
        left, right = self._left[i], self._right[j]
        if left.type != right.type:
            self._add("event_type", i, left, left.type, right.type)
            return
        if left.id != right.id:
            self._add("event_id", i, left, left.id, right.id)
        if left.data != right.data:
            inner = Collector(max(self._out.limit - len(self._out.found), 0))
            media = _BYTES if left.type == BINARY else _JSON
            diff_bodies(left.data, right.data, media, media, self._rules, inner)
            _prefixed(inner, (i, left.type), self._out)

    def _add(
        self, kind: str, index: int, event: StreamEvent, legacy: object, candidate: object
    ) -> None:
        segments: Segments = (index, event.type)
        self._out.add(Found(kind, format_path(segments), legacy, candidate, segments))


def _key(event: StreamEvent) -> tuple[str, str | None, bytes]:
    return (event.type, event.id, event.data)


_FULL = frozenset({WindowEnd.EVENTS, WindowEnd.BYTES})


def _beyond(event: StreamEvent, position: int, other: StreamWindow, held: int) -> bool:
    """True when ``event`` could not be in the other side's window, which ``held`` events.

    It came after that window closed, or that window closed full (its events
    or bytes) and ``event`` lies past as many events as it holds: a side that
    sends faster has read further when the other's window fills.
    """
    if not other.cut:
        return False
    return event.at_s > other.closed_s or (other.ended in _FULL and position >= held)


def _summary(event: StreamEvent) -> dict[str, object]:
    """What a missing or extra event is recorded as (the sinks bound the data's length)."""
    if event.type == BINARY:
        return {"type": event.type, "bytes": len(event.data)}
    return {"type": event.type, "id": event.id, "data": event.data.decode("utf-8", "replace")}


def _prefixed(inner: Collector, prefix: Segments, out: Collector) -> None:
    """Move ``inner``'s differences to ``out`` with their paths under ``prefix``."""
    for found in inner.found:
        segments = prefix + (found.segments or ())
        out.add(Found(found.kind, format_path(segments), found.legacy, found.candidate, segments))
    for name, n in inner.equivalences.items():
        out.equivalences[name] = out.equivalences.get(name, 0) + n
    if inner.truncated:
        out.truncated = True


def _first_event(
    legacy: Sequence[StreamEvent],
    candidate: Sequence[StreamEvent],
    timing: TimingRules,
    out: Collector,
) -> None:
    """``first_event`` when the candidate's first event came late, or never."""
    if not legacy:
        return
    legacy_ms = round(legacy[0].at_s * 1000.0, 3)
    if not candidate:
        out.add(Found("first_event", FIRST_EVENT_PATH, legacy_ms, None))
        return
    candidate_ms = round(candidate[0].at_s * 1000.0, 3)
    if is_slow(legacy_ms, candidate_ms, timing):
        out.add(Found("first_event", FIRST_EVENT_PATH, legacy_ms, candidate_ms))


def _largest_gap(
    left: Sequence[StreamEvent],
    right: Sequence[StreamEvent],
    pairs: Sequence[tuple[int, int]],
    timing: TimingRules,
    out: Collector,
) -> None:
    """``event_gap`` at the aligned event whose wait since the previous one grew most."""
    worst: tuple[float, int, float, float] | None = None
    for (i0, j0), (i1, j1) in itertools.pairwise(pairs):
        # Rounded as recorded, so float noise never makes a gap slow.
        legacy_ms = round((left[i1].at_s - left[i0].at_s) * 1000.0, 3)
        candidate_ms = round((right[j1].at_s - right[j0].at_s) * 1000.0, 3)
        grown = candidate_ms - legacy_ms
        if is_slow(legacy_ms, candidate_ms, timing) and (worst is None or grown > worst[0]):
            worst = (grown, i1, legacy_ms, candidate_ms)
    if worst is not None:
        _, index, legacy_ms, candidate_ms = worst
        segments: Segments = (index, left[index].type)
        out.add(Found("event_gap", format_path(segments), legacy_ms, candidate_ms, segments))


def _documents(
    legacy: Sequence[StreamEvent],
    candidate: Sequence[StreamEvent],
    rules: TreeRules,
    out: Collector,
) -> None:
    """The documents each side's patches build, compared (paths under ``$.document``)."""
    left, right = build_document(legacy), build_document(candidate)
    if left.error is not None or right.error is not None:
        out.add(Found("patch", PATCH_PATH, left.error, right.error, ("document",)))
        return
    inner = Collector(max(out.limit - len(out.found), 0))
    diff_json(left.document, right.document, rules, inner)
    _prefixed(inner, ("document",), out)
