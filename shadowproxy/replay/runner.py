"""The replay itself: each captured request sent to the sides, compared, recorded as evidence.

Owns the order and the bounds of a replay: at most ``concurrency`` requests
in flight and at most ``rate`` started a second; a write (any method but GET,
HEAD, OPTIONS) waits for every earlier request to finish and runs alone, so
a create is answered (and its ids learned) before a later read of it is
sent. What is sent is decided per request: writes only with ``--dry-run``
(the route's dry-run header added, every side must honour it) or
``--disposable``; a route with ``mirror: false`` only with ``--disposable``;
a write never to the secondary. Then the proxy's own steps: identity mapping
(``shadow.identity``), ``Mirrors.settle`` (the comparison engine, the route's
rules, the evidence), so the JSONL is the proxy's. In golden modes one side
is the golden directory (``golden``): recorded from legacy, or checked
against the candidate with no legacy running.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import structlog

from shadowproxy.compare import Comparator
from shadowproxy.compare.rules import CompareRules
from shadowproxy.http.routing import Route, RouteTable, resolve_request
from shadowproxy.http.shadow import MIRRORED_METHODS
from shadowproxy.http.upstream import UpstreamClient, fetch_observation, open_upstream
from shadowproxy.model import ErrorKind, Exchange, Observation, RequestFacts, SkipReason, Upstream
from shadowproxy.replay.captures import Captured
from shadowproxy.replay.golden import GoldenDir, normal_answer
from shadowproxy.settings import Settings, UpstreamSettings
from shadowproxy.shadow.comparisons import MAX_IN_FLIGHT, Comparisons
from shadowproxy.shadow.control import LagMonitor, ShadowSwitch
from shadowproxy.shadow.identity import IdentityMap
from shadowproxy.shadow.mirror import Mirrors
from shadowproxy.shadow.tasks import TaskPool
from shadowproxy.sinks import Evidence, Redactor
from shadowproxy.sinks.secrets import known_secrets
from shadowproxy.tls import client_context

__all__ = ["REPLAY_HEADER", "Mode", "Plan", "Replayer", "Tally", "Writes"]

REPLAY_HEADER = ("X-Shadow-Replay", "1")
"""Every replayed request carries it, so a backend can tell a replay from a client."""

Mode = Literal["replay", "record", "check"]
Writes = Literal["skip", "dry_run", "disposable"]

log = structlog.get_logger("shadowproxy.replay")
_ID_PREFIX = f"r{os.getpid():x}-"


@dataclass(frozen=True, slots=True)
class Plan:
    """How one replay runs, from its flags."""

    mode: Mode
    writes: Writes
    concurrency: int
    rate: float
    """Requests started per second at most; 0: no limit."""
    timeout_s: float
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(slots=True)
class Tally:
    """What a replay did, for its summary and exit code."""

    sent: int = 0
    recorded: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    """Requests a side refused (nothing listening), by side."""
    no_golden: int = 0
    failed: int = 0
    """Requests the replay itself could not complete (logged)."""


@dataclass(frozen=True, slots=True)
class _Judged:
    """A route compared under other rules (a golden entry's noise ignored)."""

    name: str
    domain: str
    rules: CompareRules


class Replayer:
    """Replays captured requests against the sides a ``Plan`` names."""

    def __init__(
        self,
        settings: Settings,
        names: UpstreamSettings,
        plan: Plan,
        routes: RouteTable,
        redactor: Redactor,
        evidence: Evidence | None,
        golden: GoldenDir | None,
    ) -> None:
        self._settings = settings
        self._plan = plan
        self._routes = routes
        self._evidence = evidence
        self._golden = golden
        self._redactor = redactor
        tls = client_context(settings.upstream_tls)
        self._open = functools.partial(
            open_upstream,
            connect_timeout_s=min(plan.timeout_s, settings.legacy.connect_timeout_s),
            read_timeout_s=plan.timeout_s,
            limit=plan.concurrency,
            tls=tls,
        )
        self._legacy = None if plan.mode == "check" else self._open("legacy", names.legacy)
        self._candidate = (
            None if plan.mode == "record" else self._open("candidate", names.candidate)
        )
        self._secondary = (
            self._open("secondary", names.secondary)
            if names.secondary and plan.mode == "replay"
            else None
        )
        self._comparisons = Comparisons(settings.shadow.inline_compare_max_bytes)
        self._mirrors = (
            None
            if evidence is None
            else Mirrors(
                settings.shadow,
                TaskPool(1),
                ShadowSwitch(),
                LagMonitor(),
                self._comparisons,
                evidence,
            )
        )
        # The comparison process takes a few large pairs at once: never more in flight.
        self._comparing = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._ids = IdentityMap(settings.identity.max_pairs)
        self._comparator = Comparator()
        self._recorded: set[str] = set()
        self._ids_made = itertools.count(1)
        self.tally = Tally()

    async def run(self, requests: Iterable[Captured], done: Callable[[], None]) -> Tally:
        """Replay ``requests`` in order within the plan's bounds; ``done`` after each one."""
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        pool = TaskPool(self._plan.concurrency, on_change=lambda _: changed.set())

        async def room(at_most: int) -> None:
            while len(pool) > at_most:
                changed.clear()
                await changed.wait()

        async def one(request: Captured, position: int) -> None:
            try:
                await self._one(request, position)
            except Exception as exc:  # a bug must cost one request, never the replay
                self.tally.failed += 1
                log.error("replay_request_failed", where=request.where, error=repr(exc))
            finally:
                if self._evidence is not None:
                    self._evidence.tick()
                done()

        next_at = loop.time()
        for position, request in enumerate(requests, 1):
            if self._plan.rate > 0:
                await asyncio.sleep(max(0.0, next_at - loop.time()))
                next_at = max(next_at, loop.time()) + 1.0 / self._plan.rate
            if request.method in MIRRORED_METHODS:
                await room(self._plan.concurrency - 1)
                pool.spawn(one(request, position), name="replay")
            else:
                # A write runs alone: what came before it is answered, what follows waits.
                await room(0)
                await one(request, position)
        await room(0)
        return self.tally

    async def aclose(self) -> None:
        """Close the upstream connections and the comparison process."""
        for upstream in (self._legacy, self._candidate, self._secondary):
            if upstream is not None:
                await upstream.aclose()
        await self._comparisons.aclose()

    def _skip(self, route: Route, reason: SkipReason) -> None:
        self.tally.skipped[str(reason)] += 1
        if self._evidence is not None:
            self._evidence.on_skip(route.name, route.domain, reason)

    async def _one(self, request: Captured, position: int) -> None:
        path, _, query = request.target.partition("?")
        headers = [*request.headers_with(self._plan.credentials), REPLAY_HEADER]
        finder = self._redactor.finder
        route, secrets = resolve_request(self._routes, finder, request.method, path, query, headers)
        write = request.method not in MIRRORED_METHODS
        if write and self._plan.writes == "skip":
            self._skip(route, SkipReason.METHOD)
            return
        if not route.mirror and self._plan.writes != "disposable":
            self._skip(route, SkipReason.MIRROR_OFF)
            return
        if write and self._plan.writes == "dry_run":
            name = self._settings.shadow.dry_run_header
            headers = [h for h in headers if h[0].lower() != name.lower()]
            headers.append((name, self._settings.shadow.dry_run_value))
        content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
        if request.body:
            secrets = (*secrets, *finder.in_body(request.body, content_type))
        facts = RequestFacts(
            id=f"{_ID_PREFIX}{next(self._ids_made):08x}",
            method=request.method,
            path=path,
            query=query,
            route=route.name,
            domain=route.domain,
            started_at=time.time(),
            secrets=secrets,
        )
        self.tally.sent += 1
        if self._plan.mode == "record":
            await self._record(request, position, route, headers, facts)
        else:
            await self._compare(request, route, headers, facts, write=write)

    async def _fetch(
        self,
        upstream: UpstreamClient,
        request: Captured,
        headers: list[tuple[str, str]],
        target: str,
        body: bytes,
    ) -> Observation:
        observation = await fetch_observation(
            upstream,
            request.method,
            target,
            [*headers, ("Host", upstream.host)],
            body,
            max_bytes=self._settings.shadow.compare_max_bytes,
            timeout_s=self._plan.timeout_s,
        )
        if observation.error is ErrorKind.REFUSED:
            self.tally.refused[upstream.name] += 1
        return observation

    async def _record(
        self,
        request: Captured,
        position: int,
        route: Route,
        headers: list[tuple[str, str]],
        facts: RequestFacts,
    ) -> None:
        """Record legacy's answer in the golden directory (once per distinct request)."""
        assert self._legacy is not None and self._golden is not None
        if request.key in self._recorded:
            return
        # Taken before the answer arrives: an identical request in flight records nothing.
        self._recorded.add(request.key)
        answer = await self._fetch(self._legacy, request, headers, request.target, request.body)
        if not answer.ok:
            self._recorded.discard(request.key)
            self.tally.failed += 1
            log.error("replay_legacy_failed", where=request.where, error=str(answer.error))
            return
        normal = normal_answer(
            answer, self._redactor, known_secrets(facts.secrets), route.rules.max_decoded_bytes
        )
        shown = {
            "method": request.method,
            "target": request.target,
            "headers": [list(pair) for pair in request.headers],
            "route": route.name,
            "domain": route.domain,
        }
        # On the loop: entries are named and numbered one at a time.
        self._golden.record(request, position, shown, normal, route.rules, self._comparator)
        self.tally.recorded += 1

    async def _compare(
        self,
        request: Captured,
        route: Route,
        headers: list[tuple[str, str]],
        facts: RequestFacts,
        *,
        write: bool,
    ) -> None:
        """Both sides' answers (or the golden one), compared and filed as evidence."""
        assert self._candidate is not None and self._mirrors is not None
        target, body = request.target, request.body
        if route.identity is not None:
            target, body = self._ids.rewrite(route.identity, target, body)
        fetch_candidate = functools.partial(
            self._fetch, self._candidate, request, headers, target, body
        )
        judged: _Judged | Route = route
        secondary: Observation | None = None
        if self._golden is not None:
            entry = self._golden.entries.get(request.key)
            if entry is None:
                self.tally.no_golden += 1
                self._skip(route, SkipReason.LEGACY_FAILED)
                return
            candidate = await fetch_candidate()
            known = known_secrets(facts.secrets)
            if candidate.ok:
                candidate = normal_answer(
                    candidate, self._redactor, known, route.rules.max_decoded_bytes
                )
            # Timing is not compared against a recording made elsewhere.
            legacy = replace(entry.answer, elapsed_s=candidate.elapsed_s)
            judged = _Judged(route.name, route.domain, entry.rules(route.rules))
        else:
            assert self._legacy is not None
            fetches = [
                self._fetch(self._legacy, request, headers, request.target, request.body),
                fetch_candidate(),
            ]
            if self._secondary is not None and not write:
                fetches.append(
                    self._fetch(self._secondary, request, headers, request.target, request.body)
                )
            answers = await asyncio.gather(*fetches)
            legacy, candidate = answers[0], answers[1]
            secondary = answers[2] if len(answers) > 2 else None
            assert self._evidence is not None
            self._evidence.on_upstream(Upstream.LEGACY, route.name, legacy)
            if not legacy.ok:
                self._skip(route, SkipReason.LEGACY_FAILED)
                return
        ids = route.identity
        if ids is not None:
            self._ids.learn(ids, legacy, candidate, route.rules.max_decoded_bytes)
        async with self._comparing:
            await self._mirrors.settle(
                Exchange(facts, legacy, candidate, secondary),
                judged,
                adjust=None if ids is None else functools.partial(self._ids.equate, ids.family),
            )
