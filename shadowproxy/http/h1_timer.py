"""One upstream connection's timer: the read timeout (silence) and the exchange's deadline.

A connection keeps one timer from one request to the next, re-armed only
when it fires (a fire with nothing in flight stops it), never around each
read or request: a uvloop timer armed and cancelled costs as much as
parsing a small answer's head. Each read only notes the time
(``last_read``). Silence while the connection does not read because its
consumer is slow is no upstream silence. ``h1_connection.Connection`` owns one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from shadowproxy.http.h1_response import UpstreamError
from shadowproxy.model import ErrorKind

__all__ = ["ConnectionTimer"]


class ConnectionTimer:
    """When the exchange in flight has waited too long: silence past its timeout, or its deadline.

    It holds nothing of its connection but the armed timer (whose callback,
    ``fire``, is the connection's), so a closed connection is freed by
    reference counting, not by a collection much later.
    """

    __slots__ = ("_loop", "_timeout_s", "_timer", "deadline", "last_read")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._timer: asyncio.TimerHandle | None = None
        self._timeout_s = 0.0
        """The read timeout of the request in flight."""
        self.last_read = 0.0
        """Loop time of the last read (or of the request's start)."""
        self.deadline: float | None = None
        """Loop time by which the exchange in flight must end, or None."""

    def start(self, timeout_s: float, deadline: float | None, fire: Callable[[], None]) -> None:
        """Bound a request: ``fire`` is called by its first bound (or earlier, then ``check``)."""
        now = self.last_read = self._loop.time()
        self._timeout_s = timeout_s
        self.deadline = deadline
        due = now + (timeout_s if deadline is None else min(timeout_s, deadline - now))
        timer = self._timer
        if timer is not None:
            if timer.when() <= due:
                return
            timer.cancel()
        self._timer = self._loop.call_at(due, fire)

    def fired(self) -> None:
        """The timer fired: it is no longer armed."""
        self._timer = None

    def check(self, paused: bool, fire: Callable[[], None]) -> UpstreamError | None:
        """After a fire with an exchange in flight: the error that ends it, or None (re-armed).

        ``paused``: the connection does not read because its consumer is slow.
        """
        self._timer = None
        timeout_s = self._timeout_s
        now = self._loop.time()
        left = self.last_read + timeout_s - now
        if paused:
            left = timeout_s
        deadline = self.deadline
        if deadline is not None:
            if deadline <= now:
                return UpstreamError(ErrorKind.TIMEOUT, "deadline passed")
            left = min(left, deadline - now)
        if left > 0:
            self._timer = self._loop.call_later(left, fire)
            return None
        return UpstreamError(ErrorKind.TIMEOUT, f"no data for {timeout_s:g} s")

    def stop(self) -> None:
        """Stop the timer (the connection is gone)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
