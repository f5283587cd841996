"""The admission rules and bounded spawning every mirror shares, whatever the protocol.

HTTP and gRPC each decide first what only they know (methods, body size, call
type); then both ask the gate, which owns the kill switch, sampling, loop-lag
shedding and the hand-off to the bounded task pool.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from shadowproxy.model import SkipReason
from shadowproxy.proxy.control import LagMonitor, ShadowSwitch
from shadowproxy.proxy.tasks import TaskPool
from shadowproxy.settings import ShadowSettings

__all__ = ["MirrorGate"]

T = TypeVar("T")


class MirrorGate:
    """Kill switch, sampling, load shedding and spawning for one worker's mirrors."""

    __slots__ = ("_lag", "_pool", "_switch", "settings")

    def __init__(
        self, settings: ShadowSettings, pool: TaskPool, switch: ShadowSwitch, lag: LagMonitor
    ) -> None:
        self.settings = settings
        self._pool = pool
        self._switch = switch
        self._lag = lag

    @property
    def paused(self) -> bool:
        """True while the kill switch is on."""
        return self._switch.paused

    def admit(self, sample_percent: float) -> SkipReason | None:
        """``sampled_out`` or ``overload``, or None: the last checks before mirroring."""
        if sample_percent < 100.0 and random.random() * 100.0 >= sample_percent:
            return SkipReason.SAMPLED_OUT
        if self._lag.lag_ms > self.settings.max_loop_lag_ms:
            return SkipReason.OVERLOAD
        return None

    def spawn(
        self, mirror: Callable[[asyncio.Future[T]], Coroutine[Any, Any, None]], name: str
    ) -> asyncio.Future[T] | None:
        """Start ``mirror(answer)`` in the pool; returns ``answer`` for the hot path to resolve.

        None when the pool is full: the caller counts ``queue_full``, nothing waits.
        """
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if not self._pool.spawn(mirror(answer), name=name):
            return None
        return answer
