"""Event subjects: legacy's events and the candidate's, matched by correlation key, compared.

``NatsEvents`` subscribes to legacy's subject on legacy's connection and to
the candidate's on the candidate's, and feeds every event to the subject's
``EventWindow`` (``matching``), which a timer also sweeps. Each event's
fate becomes evidence filed under the subject's route, method ``EVENT``:

- a pair is compared with the route's rules (JSON with the engine, headers
  by ``compare.headers``) in the shadow task pool; a ``late`` pair also gets
  an ``event_late`` difference (timing) with the lag;
- ``missing`` and ``extra`` are structural ``event_missing`` /
  ``event_extra`` divergences, a duplicate the candidate sent a semantic
  ``event_duplicate``; legacy's own duplicates and events without a key are
  counted only (they are no candidate behaviour);
- every fate counts in ``shadowproxy_nats_events_total{route,side,result}``.

The correlation key is read from the JSON payload at the configured path;
a payload that is not JSON, or has no scalar there, has no key.
"""

from __future__ import annotations

import dataclasses
import time

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg

from shadowproxy.compare.parse import parse_json
from shadowproxy.compare.paths import parse_pattern
from shadowproxy.model import (
    EVENT_METHOD,
    DiffClass,
    Difference,
    EventFate,
    Exchange,
    Observation,
    Outcome,
    RequestFacts,
    SkipReason,
    Upstream,
    Verdict,
)
from shadowproxy.natsproxy.matching import Event, EventWindow, Fate
from shadowproxy.natsproxy.messages import header_pairs, observed
from shadowproxy.natsproxy.requests import NatsRoute, new_id
from shadowproxy.natsproxy.sink import NatsSink
from shadowproxy.settings import NatsEventSpec
from shadowproxy.shadow.comparisons import Comparisons
from shadowproxy.shadow.mirror import Mirrors
from shadowproxy.shadow.tasks import TaskPool

__all__ = ["EVENT", "NatsEvents", "correlation_key"]

log = structlog.get_logger(__name__)

EVENT = EVENT_METHOD
"""The method recorded for a NATS event."""
_MSG_ID = "Nats-Msg-Id"
_SCALARS = (str, int, float, bool)
_DIVERGED = {
    EventFate.MISSING: (DiffClass.STRUCTURAL, "event_missing"),
    EventFate.EXTRA: (DiffClass.STRUCTURAL, "event_extra"),
    EventFate.DUPLICATE: (DiffClass.SEMANTIC, "event_duplicate"),
}
_ABSENT = Observation(status=None)
"""The side of an event that never came."""


def correlation_key(data: bytes, steps: tuple[str | int, ...]) -> str | None:
    """The scalar at ``steps`` in the JSON payload ``data``, as text; None without one."""
    parsed = parse_json(data)
    if parsed.error is not None:
        return None
    value: object = parsed.value
    for step in steps:
        found = (type(value) is list and isinstance(step, int) and 0 <= step < len(value)) or (
            type(value) is dict and isinstance(step, str) and step in value
        )
        if not found:
            return None
        value = value[step]  # type: ignore[index]
    if value is None or not isinstance(value, _SCALARS):
        return None
    return value if isinstance(value, str) else str(value)


class NatsEvents:
    """One event subject of one process: both sides subscribed, matched, compared."""

    def __init__(
        self,
        spec: NatsEventSpec,
        *,
        mirrors: Mirrors,
        comparisons: Comparisons,
        sink: NatsSink,
        pool: TaskPool,
        cap: int,
    ) -> None:
        self.spec = spec
        self.route = NatsRoute(spec.subject, spec.domain, spec.rules)
        self._steps = tuple(
            step.selector
            for step in parse_pattern(spec.correlation).steps
            if step.selector is not None
        )
        self._window = EventWindow(
            window_s=spec.window_s,
            late_s=spec.late_s,
            max_pending=spec.max_pending,
            max_bytes=spec.max_bytes,
        )
        self._mirrors = mirrors
        self._comparisons = comparisons
        self._sink = sink
        self._pool = pool
        self._cap = cap

    @property
    def tick_s(self) -> float:
        """How often ``sweep`` should run: a tenth of the time an event may wait, at most 1 s."""
        return min((self.spec.window_s + self.spec.late_s) / 10, 1.0)

    async def subscribe_legacy(self, legacy: Client, max_pending: int) -> None:
        """Take legacy's events (its subscription holds at most ``max_pending`` unprocessed)."""

        async def arrived(msg: Msg) -> None:
            self._arrived(Upstream.LEGACY, msg)

        await legacy.subscribe(self.spec.legacy, cb=arrived, pending_msgs_limit=max_pending)

    async def subscribe_candidate(self, candidate: Client, max_pending: int) -> None:
        """Take the candidate's events, likewise."""

        async def arrived(msg: Msg) -> None:
            self._arrived(Upstream.CANDIDATE, msg)

        await candidate.subscribe(self.spec.candidate, cb=arrived, pending_msgs_limit=max_pending)

    def sweep(self) -> None:
        """File the events that waited too long for their pair."""
        for fate in self._window.expire(time.perf_counter()):
            self._file(fate)

    def _arrived(self, side: Upstream, msg: Msg) -> None:
        headers = msg.headers or {}
        event = Event(
            side=side,
            key=correlation_key(msg.data, self._steps),
            msg_id=headers.get(_MSG_ID),
            data=msg.data,
            headers=header_pairs(headers),
            at=time.perf_counter(),
            wall=time.time(),
        )
        for fate in self._window.add(event):
            self._file(fate)

    def _file(self, fate: Fate) -> None:
        """Count ``fate`` and turn it into evidence."""
        first = fate.legacy or fate.candidate
        assert first is not None
        for side in (fate.legacy, fate.candidate):
            if side is not None:
                self._sink.on_nats_event(self.spec.subject, str(side.side), str(fate.result))
        result = fate.result
        if result in (EventFate.MATCHED, EventFate.LATE):
            if not self._pool.spawn(self._compare(fate), name=f"nats-event-{self.spec.subject}"):
                self._mirrors.skip(self.route, SkipReason.QUEUE_FULL)
            return
        if result is EventFate.DUPLICATE and first.side is Upstream.LEGACY:
            return
        if result in _DIVERGED:
            cls, kind = _DIVERGED[result]
            summary = _summary(first)
            legacy, candidate = (
                (summary, None) if first.side is Upstream.LEGACY else (None, summary)
            )
            verdict = Verdict(
                Outcome.DIVERGED,
                frozenset({cls}),
                (Difference(cls, kind, "$", legacy, candidate),),
            )
            self._sink.on_verdict(self._exchange(fate), verdict)

    async def _compare(self, fate: Fate) -> None:
        exchange = self._exchange(fate)
        if exchange.legacy.truncated or exchange.candidate.truncated:
            self._mirrors.skip(self.route, SkipReason.BODY_TOO_LARGE)
            return
        verdict = await self._comparisons.compare(exchange, self.route.rules)
        if verdict is None:
            self._mirrors.skip(self.route, SkipReason.QUEUE_FULL)
            return
        if fate.result is EventFate.LATE:
            verdict = _late(verdict, self.spec.window_s, fate.lag_s)
        self._sink.on_verdict(exchange, verdict)

    def _exchange(self, fate: Fate) -> Exchange:
        first = fate.legacy or fate.candidate
        assert first is not None
        facts = RequestFacts(
            id=new_id(),
            method=EVENT,
            path=self.spec.subject,
            query="",
            route=self.spec.subject,
            domain=self.spec.domain,
            started_at=first.wall,
            client_request_id=first.key,
        )
        return Exchange(facts, self._observed(fate.legacy), self._observed(fate.candidate))

    def _observed(self, event: Event | None) -> Observation:
        if event is None:
            return _ABSENT
        return observed(event.data, dict(event.headers), 0.0, cap=self._cap)


def _summary(event: Event) -> dict[str, object]:
    """What a lone event is recorded as (the sinks bound and redact it)."""
    return {"key": event.key, "msg_id": event.msg_id, "data": event.data.decode("utf-8", "replace")}


def _late(verdict: Verdict, window_s: float, lag_s: float) -> Verdict:
    """``verdict`` with the pair's lag as a timing difference (the window, the lag, in ms)."""
    late = Difference(
        DiffClass.TIMING, "event_late", "$", round(window_s * 1000, 3), round(lag_s * 1000, 3)
    )
    return dataclasses.replace(
        verdict,
        outcome=Outcome.DIVERGED,
        classes=verdict.classes | {DiffClass.TIMING},
        differences=(*verdict.differences, late),
    )
