"""What every mirror shares, HTTP or gRPC: spawning, fetching the copies, then recording."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field

import pytest

from shadowproxy.compare.rules import CompareRules
from shadowproxy.model import (
    SHADOW_PHASE,
    Exchange,
    Observation,
    Outcome,
    Phase,
    RequestFacts,
    SkipReason,
    Upstream,
    Verdict,
)
from shadowproxy.settings import ShadowSettings
from shadowproxy.shadow.comparisons import Comparisons
from shadowproxy.shadow.control import LagMonitor, ShadowSwitch
from shadowproxy.shadow.mirror import Mirrors, fetch_copies
from shadowproxy.shadow.tasks import TaskPool

JSON = (("Content-Type", "application/json"),)
FACTS = RequestFacts("id", "GET", "/x", "", "/x", "default", 0.0)


@dataclass(frozen=True)
class _Route:
    name: str = "/x"
    domain: str = "default"
    rules: CompareRules = field(default_factory=CompareRules)


@dataclass
class _Sink:
    """Records what the recorder files, in order."""

    events: list[tuple[object, ...]] = field(default_factory=list)

    def on_upstream(self, upstream: Upstream, route: str, observation: Observation) -> None:
        self.events.append(("upstream", upstream, observation.body))

    def on_skip(
        self, route: str, domain: str, reason: SkipReason, phase: Phase = SHADOW_PHASE
    ) -> None:
        self.events.append(("skip", route, domain, reason))

    def on_verdict(self, exchange: Exchange, verdict: Verdict) -> None:
        self.events.append(("verdict", verdict.note))


def _mirrors(sink: _Sink, pool: TaskPool | None = None) -> Mirrors:
    return Mirrors(
        ShadowSettings(),
        TaskPool(1) if pool is None else pool,
        ShadowSwitch(),
        LagMonitor(),
        Comparisons(inline_max_bytes=1024),
        sink,
    )


def _seen(body: bytes, *, truncated: bool = False) -> Observation:
    return Observation(200, JSON, body, body_size=len(body), truncated=truncated)


class TestFetchCopies:
    async def test_both_copies_in_flight_at_once_then_the_answer(self) -> None:
        """Neither fetch can finish until both have started: they run concurrently."""
        started: list[str] = []
        both = asyncio.Event()

        async def fetch(name: str) -> Observation:
            started.append(name)
            if len(started) == 2:
                both.set()
            await both.wait()
            return _seen(name.encode())

        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        answer.set_result("legacy")
        mirrored, second, got = await fetch_copies(fetch, "candidate", "secondary", answer)
        assert (mirrored.body, second and second.body, got) == (
            b"candidate",
            b"secondary",
            "legacy",
        )

    async def test_without_secondary_one_fetch(self) -> None:
        calls: list[str] = []

        async def fetch(name: str) -> Observation:
            calls.append(name)
            return _seen(b"{}")

        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        answer.set_result(None)
        _, second, _ = await fetch_copies(fetch, "candidate", None, answer)
        assert (calls, second) == (["candidate"], None)

    async def test_answer_cancelled_when_the_fetch_fails(self) -> None:
        """The hot path must not resolve a future nobody will read."""

        async def fetch(name: str) -> Observation:
            raise RuntimeError(name)

        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with pytest.raises(RuntimeError):
            await fetch_copies(fetch, "candidate", None, answer)
        assert answer.cancelled()


class TestSpawn:
    async def test_full_pool_counts_queue_full_and_starts_nothing(self) -> None:
        sink = _Sink()
        pool = TaskPool(1)
        mirrors = _mirrors(sink, pool)
        release = asyncio.Event()
        ran: list[str] = []

        async def mirror(name: str, answer: asyncio.Future[str]) -> None:
            ran.append(name)
            ran.append(await answer)
            await release.wait()

        first = mirrors.spawn(_Route(), lambda answer: mirror("first", answer), name="first")
        second = mirrors.spawn(_Route(), lambda answer: mirror("second", answer), name="second")
        assert first is not None and second is None
        assert sink.events == [("skip", "/x", "default", SkipReason.QUEUE_FULL)]
        first.set_result("answered")
        release.set()
        assert await pool.close(grace_s=10) == 0
        assert ran == ["first", "answered"]


class TestSettle:
    async def test_files_the_mirrored_side_and_the_secondary_then_the_verdict(self) -> None:
        sink = _Sink()
        exchange = Exchange(FACTS, _seen(b"{}"), _seen(b"{}"), _seen(b"{}"))
        verdict = await _mirrors(sink).settle(exchange, _Route())
        assert verdict is not None and verdict.outcome is Outcome.MATCH
        assert [e[:2] for e in sink.events] == [
            ("upstream", Upstream.CANDIDATE),
            ("upstream", Upstream.SECONDARY),
            ("verdict", None),
        ]

    async def test_reverse_shadow_files_legacy_as_the_mirrored_side(self) -> None:
        """When the candidate answered the client, the copy went to legacy."""
        sink = _Sink()
        exchange = Exchange(
            FACTS, _seen(b'{"from":"legacy"}'), _seen(b"{}"), answered_by=Upstream.CANDIDATE
        )
        await _mirrors(sink).settle(exchange, _Route())
        assert sink.events[0] == ("upstream", Upstream.LEGACY, b'{"from":"legacy"}')

    @pytest.mark.parametrize("answered_by", [Upstream.LEGACY, Upstream.CANDIDATE])
    async def test_truncated_answer_is_not_compared(self, answered_by: Upstream) -> None:
        """Only the answering side's truncation matters; comparing prefixes invents differences."""
        sink = _Sink()
        answer, mirrored = _seen(b"{", truncated=True), _seen(b"{}")
        legacy, candidate = (
            (answer, mirrored) if answered_by is Upstream.LEGACY else (mirrored, answer)
        )
        exchange = Exchange(FACTS, legacy, candidate, answered_by=answered_by)
        verdict = await _mirrors(sink).settle(exchange, _Route())
        assert verdict is None
        assert sink.events[-1] == ("skip", "/x", "default", SkipReason.BODY_TOO_LARGE)

    async def test_present_rewrites_the_evidence_not_the_verdict_returned(self) -> None:
        sink = _Sink()
        exchange = Exchange(FACTS, _seen(b"{}"), _seen(b"{}"))
        verdict = await _mirrors(sink).settle(
            exchange, _Route(), lambda v: dataclasses.replace(v, note="presented")
        )
        assert verdict is not None and verdict.note is None
        assert sink.events[-1] == ("verdict", "presented")
