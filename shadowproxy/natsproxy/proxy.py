"""The NATS data plane of one process: connections, subscriptions, their lifecycle.

``NatsProxy.start`` connects to the requesters' server and to legacy's
(each within a few seconds, else the start fails with one line naming the
server), and to the candidate's: a candidate whose server is down does not
hold the proxy back for more than those seconds; its connection keeps being
tried in the background and until it is up every mirror finds no
responders. The proxy is ready once the servers have its subscriptions. Then it serves each request
subject in the queue group (``NatsRequests``) and subscribes to both sides
of each event subject (``NatsEvents``; with ``--workers N`` only the first
worker does: a pair must meet in one process), and sweeps the event windows.
Stopping comes in two steps, as for gRPC: ``stop`` drains the request
subscriptions (the pending requests are still answered), waits up to
``drain_s`` for requests in flight and stops the event subscriptions;
``close`` closes the connections once the shadow pool has finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno

import structlog
from nats.aio.client import Client
from nats.aio.subscription import Subscription

from shadowproxy.natsproxy.connections import connect
from shadowproxy.natsproxy.events import NatsEvents
from shadowproxy.natsproxy.requests import NatsRequests
from shadowproxy.natsproxy.sink import NatsSink
from shadowproxy.settings import NatsServer, NatsSettings, Settings
from shadowproxy.shadow.comparisons import Comparisons
from shadowproxy.shadow.control import LagMonitor, ShadowSwitch
from shadowproxy.shadow.mirror import Mirrors
from shadowproxy.shadow.tasks import TaskPool
from shadowproxy.sinks.secrets import SecretFinder

__all__ = ["PENDING_FULL", "NatsProxy"]

log = structlog.get_logger(__name__)

PENDING_FULL = "pending_full"
"""Why a subscription dropped a message: it held ``nats.max_pending`` already."""
_START_S = 5.0


class NatsProxy:
    """NATS request/reply and event shadowing; shares evidence, pool and switches with HTTP."""

    def __init__(
        self,
        settings: Settings,
        *,
        pool: TaskPool,
        comparisons: Comparisons,
        evidence: NatsSink,
        secrets: SecretFinder,
        switch: ShadowSwitch,
        lag: LagMonitor,
    ) -> None:
        if settings.nats is None:
            raise ValueError("settings.nats is not set")
        self.settings: NatsSettings = settings.nats
        self._shadow = settings.shadow
        self._evidence = evidence
        self._secrets = secrets
        self._comparisons = comparisons
        self._pool = pool
        self._mirrors = Mirrors(settings.shadow, pool, switch, lag, comparisons, evidence)
        # The requests' semaphore is the bound; a task that released its slot may still be
        # finishing, so the pool (which keeps the tasks and cancels them at stop) holds twice.
        self._hot = TaskPool(2 * self.settings.max_inflight)
        self._keeper = TaskPool(2)
        self._stopping = asyncio.Event()
        self._routes = {
            **{spec.subject: spec.subject for spec in self.settings.requests},
            **{spec.legacy: spec.subject for spec in self.settings.events},
            **{spec.candidate: spec.subject for spec in self.settings.events},
        }
        self._connections: list[Client] = []
        self._candidate: Client | None = None
        self._requests: list[Subscription] = []
        self._events: list[NatsEvents] = []

    def _dropped(self, subject: str) -> None:
        """A subscription dropped a message (its pending messages were full): counted."""
        route = self._routes.get(subject)
        if route is not None:
            self._evidence.on_nats_dropped(route, PENDING_FULL)

    async def _connect(self, server: NatsServer, name: str) -> Client:
        client = await connect(server, name=name, on_dropped=self._dropped)
        self._connections.append(client)
        return client

    async def _reach(self, server: NatsServer, name: str) -> Client:
        """A connection that must be up at start; ``OSError`` naming the server otherwise."""
        try:
            async with asyncio.timeout(_START_S):
                return await self._connect(server, name)
        except TimeoutError:
            raise OSError(
                errno.ECONNREFUSED,
                f"cannot connect to the {name} NATS server {server.urls[0]}"
                " (unreachable, or its credentials refused)",
            ) from None

    async def start(self, *, events: bool = True) -> None:
        """Connect and subscribe; ``events``: also match the event subjects here."""
        nats = self.settings
        requesters = await self._reach(nats.server, "requesters")
        legacy = await self._reach(nats.legacy_server, "legacy")
        inflight = asyncio.Semaphore(nats.max_inflight)
        for spec in nats.requests:
            requests = NatsRequests(
                spec,
                requesters=requesters,
                legacy=legacy,
                candidate=lambda: self._candidate,
                mirrors=self._mirrors,
                sink=self._evidence,
                secrets=self._secrets,
                shadow=self._shadow,
                hot=self._hot,
                inflight=inflight,
            )
            self._requests.append(
                await requesters.subscribe(
                    spec.subject,
                    queue=nats.queue,
                    cb=requests.arrived,
                    pending_msgs_limit=nats.max_pending,
                )
            )
        if events:
            self._events = [
                NatsEvents(
                    spec,
                    mirrors=self._mirrors,
                    comparisons=self._comparisons,
                    sink=self._evidence,
                    pool=self._pool,
                    cap=self._shadow.compare_max_bytes,
                )
                for spec in nats.events
            ]
            for events_of in self._events:
                await events_of.subscribe_legacy(legacy, nats.max_pending)
            self._keeper.spawn(self._sweep(), name="nats-event-sweeper")
        # Subscriptions are in force once the server has read them: ready means subscribed.
        await requesters.flush()
        await legacy.flush()
        try:
            async with asyncio.timeout(_START_S):
                await self._candidate_link()
        except TimeoutError:
            log.error(
                "candidate NATS server unreachable; retrying in the background",
                server=nats.candidate_server.urls[0],
            )
            self._keeper.spawn(self._candidate_link(), name="nats-candidate")
        log.info(
            "nats shadowing",
            requests=[spec.subject for spec in nats.requests],
            events=[handler.spec.subject for handler in self._events],
            queue=nats.queue,
        )

    async def _candidate_link(self) -> None:
        """Connect to the candidate's server (however long it takes), then take its events."""
        candidate = await self._connect(self.settings.candidate_server, "candidate")
        for handler in self._events:
            await handler.subscribe_candidate(candidate, self.settings.max_pending)
        await candidate.flush()
        self._candidate = candidate

    async def _sweep(self) -> None:
        """File the events that waited too long, every ``tick_s``, until stopping."""
        tick = min((handler.tick_s for handler in self._events), default=1.0)
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(tick):
                    await self._stopping.wait()
            for handler in self._events:
                handler.sweep()

    async def stop(self, drain_s: float) -> None:
        """Stop taking requests (pending ones are answered), let those in flight finish."""
        self._stopping.set()
        for subscription in self._requests:
            with contextlib.suppress(Exception):  # a connection already gone drains nothing
                await subscription.drain()  # type: ignore[no-untyped-call]  # untyped upstream
        await self._hot.close(drain_s)
        await self._keeper.close(0)

    async def close(self) -> None:
        """Close every connection (after the shadow pool has finished)."""
        for client in self._connections:
            with contextlib.suppress(Exception):  # closing what is already closed
                await client.close()
