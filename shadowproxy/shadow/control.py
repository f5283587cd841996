"""Runtime switches the admin API flips and the hot path reads: the shadow kill switch and loop lag.

Reading either is one attribute access, cheap enough for every request.
The kill switch may be backed by shared memory so a supervisor can pause
every worker process at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["LagMonitor", "ShadowSwitch", "SharedFlag"]


class SharedFlag(Protocol):
    """Anything with an integer ``value``: a plain holder or ``multiprocessing.RawValue``."""

    value: int


class _LocalFlag:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


class ShadowSwitch:
    """The kill switch: while paused, nothing is mirrored (skip reason ``paused``)."""

    __slots__ = ("_flag",)

    def __init__(self, flag: SharedFlag | None = None) -> None:
        self._flag: SharedFlag = flag if flag is not None else _LocalFlag()

    @property
    def paused(self) -> bool:
        """True while mirroring is switched off."""
        return bool(self._flag.value)

    def pause(self) -> None:
        """Stop mirroring new requests; in-flight shadow work finishes."""
        self._flag.value = 1

    def resume(self) -> None:
        """Mirror again."""
        self._flag.value = 0


class LagMonitor:
    """Measures event-loop lag by how late a periodic callback runs.

    The proxy sheds new shadow work (skip reason ``overload``) while the lag
    exceeds its threshold, so comparison can never starve the hot path.
    """

    def __init__(self, interval_s: float = 0.05) -> None:
        self._interval = interval_s
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self.lag_ms = 0.0
        self.max_lag_ms = 0.0

    def start(self) -> None:
        """Begin measuring on the running loop."""
        self._schedule()

    def _schedule(self) -> None:
        self._due = time.perf_counter() + self._interval
        self._handle = asyncio.get_running_loop().call_later(self._interval, self._tick)

    def _tick(self) -> None:
        self.lag_ms = max(0.0, (time.perf_counter() - self._due) * 1000.0)
        self.max_lag_ms = max(self.max_lag_ms, self.lag_ms)
        self._schedule()

    def stop(self) -> None:
        """Stop measuring."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
