"""Events of legacy and the candidate paired by correlation key within a time window.

Owns the bookkeeping of one event subject, as values in and outcomes out:

- an event whose ``Nats-Msg-Id`` its side already delivered (within the
  window) is a ``duplicate`` and takes no further part;
- an event without a correlation key is ``uncorrelated``;
- an event whose key has an event of the other side waiting pairs with the
  oldest of them: ``matched`` when the second came within ``window_s`` of the
  first, ``late`` when it came within ``late_s`` after that;
- otherwise it waits; one that waited ``window_s + late_s`` in vain ends as
  ``missing`` (legacy's: the candidate never sent it) or ``extra`` (the
  candidate's: legacy never did);
- at most ``max_pending`` events, of at most ``max_bytes`` payload in all,
  wait: one more drops the oldest waiting (``dropped``); remembered message
  ids are bounded by ``max_pending`` too.

Times are monotonic seconds the caller passes. Pure code: no I/O, no clock.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from itertools import count

from shadowproxy.model import EventFate, Headers, Upstream

__all__ = ["Event", "EventWindow", "Fate"]


@dataclass(frozen=True, slots=True)
class Event:
    """One event as it arrived on one side."""

    side: Upstream
    key: str | None
    """The correlation key, or None when the payload has none."""
    msg_id: str | None
    """``Nats-Msg-Id``, when the publisher set one."""
    data: bytes
    headers: Headers
    at: float
    """When it arrived (monotonic seconds)."""
    wall: float
    """When it arrived (seconds since the epoch, for the record's time)."""


@dataclass(frozen=True, slots=True)
class Fate:
    """An event's fate: a pair (both sides), or one side alone."""

    result: EventFate
    legacy: Event | None = None
    candidate: Event | None = None

    @property
    def lag_s(self) -> float:
        """How much later the second event of a pair came than the first."""
        if self.legacy is None or self.candidate is None:
            return 0.0
        return abs(self.candidate.at - self.legacy.at)


class EventWindow:
    """The events of one subject waiting for their pair; bounded."""

    def __init__(self, *, window_s: float, late_s: float, max_pending: int, max_bytes: int) -> None:
        self._window_s = window_s
        self._wait_s = window_s + late_s
        self._max_pending = max_pending
        self._max_bytes = max_bytes
        self._bytes = 0
        self._serial = count()
        self._waiting: OrderedDict[int, Event] = OrderedDict()
        """Every waiting event by serial, oldest first."""
        self._by_key: dict[tuple[str, Upstream], deque[int]] = {}
        self._seen: OrderedDict[tuple[Upstream, str], float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, event: Event) -> list[Fate]:
        """Take one event; what it (and any event it pushed out) came to."""
        outcomes = self.expire(event.at)
        if event.msg_id is not None:
            seen = (event.side, event.msg_id)
            if seen in self._seen:
                return [*outcomes, _alone(EventFate.DUPLICATE, event)]
            self._seen[seen] = event.at
            if len(self._seen) > self._max_pending:
                self._seen.popitem(last=False)
        if event.key is None:
            return [*outcomes, _alone(EventFate.UNCORRELATED, event)]
        other = Upstream.CANDIDATE if event.side is Upstream.LEGACY else Upstream.LEGACY
        partners = self._by_key.get((event.key, other))
        if partners:
            first = self._waiting.pop(partners.popleft())
            self._bytes -= len(first.data)
            self._forget_empty((event.key, other))
            pair = (first, event) if first.side is Upstream.LEGACY else (event, first)
            result = EventFate.MATCHED if event.at - first.at <= self._window_s else EventFate.LATE
            return [*outcomes, Fate(result, *pair)]
        serial = next(self._serial)
        self._waiting[serial] = event
        self._bytes += len(event.data)
        self._by_key.setdefault((event.key, event.side), deque()).append(serial)
        while len(self._waiting) > self._max_pending or self._bytes > self._max_bytes:
            _, oldest = self._waiting.popitem(last=False)
            self._unlink(oldest)
            outcomes.append(_alone(EventFate.DROPPED, oldest))
        return outcomes

    def expire(self, now: float) -> list[Fate]:
        """The events that waited too long: ``missing`` (legacy's) or ``extra``."""
        outcomes: list[Fate] = []
        while self._waiting:
            serial, oldest = next(iter(self._waiting.items()))
            if now - oldest.at <= self._wait_s:
                break
            del self._waiting[serial]
            self._unlink(oldest)
            late = EventFate.MISSING if oldest.side is Upstream.LEGACY else EventFate.EXTRA
            outcomes.append(_alone(late, oldest))
        while self._seen:
            seen, at = next(iter(self._seen.items()))
            if now - at <= self._wait_s:
                break
            del self._seen[seen]
        return outcomes

    def _unlink(self, event: Event) -> None:
        """Drop the oldest serial of ``event``'s key and side (it is the one leaving)."""
        assert event.key is not None
        self._bytes -= len(event.data)
        where = (event.key, event.side)
        self._by_key[where].popleft()
        self._forget_empty(where)

    def _forget_empty(self, where: tuple[str, Upstream]) -> None:
        if not self._by_key[where]:
            del self._by_key[where]


def _alone(result: EventFate, event: Event) -> Fate:
    if event.side is Upstream.LEGACY:
        return Fate(result, legacy=event)
    return Fate(result, candidate=event)
