"""One process's cutover control: the current state, its state file, its records and rollbacks.

Every process holds the ``CutoverState`` in memory; the hot path reads it
with one attribute access. With ``--workers N`` the processes share it
through a JSON state file in a private directory the supervisor creates:
a change is a read-modify-write under an exclusive ``flock``, written to a
temporary file and renamed over the old one, so readers never see half a
file; followers poll its inode and mtime every 250 ms. A change made in any
process (the admin API in the supervisor, a rollback in a worker) thus
reaches every worker within a second. The process that makes a change
writes its ``ownership`` record; every process moves its own
``shadowproxy_route_mode`` gauge. The file is a few hundred bytes, so its
I/O stays on the event loop. Without a state file (one process) the state
lives in memory only.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Protocol

import orjson
import structlog

from shadowproxy.cutover.rollback import RollbackWindows, Trigger
from shadowproxy.cutover.state import (
    ALL_ROUTES,
    Assignment,
    Change,
    CutoverState,
    Decision,
    Mode,
    configured,
    decide,
    reconcile,
    shown_routes,
)
from shadowproxy.settings import Settings

__all__ = ["STATE_FILE", "Ownership", "OwnershipSink"]

log = structlog.get_logger(__name__)

STATE_FILE = "ownership.json"
"""The state file's name inside the state directory."""
POLL_S = 0.25
_ANSWERING = frozenset({Mode.CANARY, Mode.CANDIDATE})


class OwnershipSink(Protocol):
    """Where changes go (``shadowproxy.sinks.Evidence`` is one)."""

    def write_record(self, record: Mapping[str, object]) -> None: ...
    def set_route_mode(self, route: str, mode: str) -> None: ...
    def on_rollback(self, route: str, reason: str) -> None: ...


class Ownership:
    """The cutover state of one process, kept in step with the other processes."""

    def __init__(
        self,
        settings: Settings,
        sink: OwnershipSink,
        *,
        state_dir: str | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._settings = settings
        self._sink = sink
        self._clock = clock
        self._monotonic = monotonic
        self._path = Path(state_dir) / STATE_FILE if state_dir else None
        self._seen: tuple[int, int, int] | None = None
        self._windows = RollbackWindows(settings.cutover.rollback)
        self.state = configured(settings)

    @property
    def configured_routes(self) -> list[str]:
        """Names the admin API accepts: every configured route and ``*`` (the default)."""
        return [*(spec.name for spec in self._settings.routes), ALL_ROUTES]

    def publish(self) -> None:
        """Write the configured state (the supervisor or single process, at start)."""
        with self._locked():
            self._write(self.state)
        self._show()
        if self.state.force_legacy:
            log.warning("force-legacy is on (SHADOWPROXY_FORCE_LEGACY)")
            self._sink.write_record(
                Change(
                    ALL_ROUTES, "routes", "force-legacy", 0.0, "environment", "env", self._clock()
                ).record()
            )

    def record(self, record: Mapping[str, object]) -> None:
        """Write another cutover record (a ``drill`` result) to the evidence."""
        self._sink.write_record(record)

    def decide(self, route: str, key: Callable[[], str]) -> Decision:
        """Who answers a request of ``route`` right now."""
        return decide(self.state, route, key)

    def sticky(self, route: str) -> str:
        """The sticky key setting of a configured route (``client`` for the rest)."""
        for spec in self._settings.routes:
            if spec.name == route:
                return spec.sticky
        return "client"

    def set_route(
        self,
        route: str,
        target: Assignment,
        *,
        reason: str,
        source: str,
        numbers: Mapping[str, float] | None = None,
    ) -> Change | None:
        """Move ``route`` (``*``: the default) to ``target``; None when it already was there."""
        now = self._clock()
        changes = self._change(
            lambda s: _one(
                s.with_route(route, target, reason=reason, source=source, now=now, numbers=numbers)
            )
        )
        return changes[0] if changes else None

    def set_force_legacy(self, on: bool, *, reason: str, source: str) -> Change | None:
        """Switch force-legacy on or off; None when it already was."""
        now = self._clock()
        changes = self._change(
            lambda s: _one(s.with_force_legacy(on, reason=reason, source=source, now=now))
        )
        return changes[0] if changes else None

    def reload(self, settings: Settings, *, controller: bool) -> list[Change]:
        """Take a reloaded configuration; the ``controller`` applies what changed in modes."""
        old, self._settings = self._settings, settings
        self._windows.settings = settings.cutover.rollback
        if not controller:
            return []
        now = self._clock()
        return self._change(lambda s: reconcile(s, old, settings, now))

    def refresh(self) -> bool:
        """Re-read the state file when another process changed it; True when it did."""
        if self._path is None:
            return False
        try:
            stat = self._path.stat()
        except OSError:
            return False
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if signature == self._seen:
            return False
        fresh = self._read()
        if fresh is None:
            return False
        self.state = fresh
        self._show()
        return True

    async def follow(self, stop: asyncio.Event) -> None:
        """Poll the state file every 250 ms until ``stop`` is set."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)
            self.refresh()

    def answered(self, route: str, *, error: bool) -> None:
        """The candidate answered a request of ``route`` (``error``: a 5xx or no answer)."""
        owner = self.state.assignment(route)
        if owner.mode not in _ANSWERING or self.state.force_legacy:
            return
        trigger = self._windows.answered(route, owner, error=error, now=self._monotonic())
        self._maybe_roll_back(route, owner, trigger)

    def compared(
        self, route: str, *, structural: bool, candidate_s: float | None, legacy_s: float | None
    ) -> None:
        """A compared exchange of ``route`` that the candidate answered."""
        owner = self.state.assignment(route)
        if owner.mode not in _ANSWERING or self.state.force_legacy:
            return
        trigger = self._windows.compared(
            route,
            owner,
            structural=structural,
            candidate_s=candidate_s,
            legacy_s=legacy_s,
            now=self._monotonic(),
        )
        self._maybe_roll_back(route, owner, trigger)

    def _maybe_roll_back(self, route: str, owner: Assignment, trigger: Trigger | None) -> None:
        if trigger is None or not self._settings.cutover.rollback.enabled:
            return
        self._windows.forget(route)
        now = self._clock()

        def roll_back(state: CutoverState) -> tuple[CutoverState, list[Change]]:
            if state.assignment(route) != owner:
                return state, []  # another process changed it meanwhile
            return _one(
                state.with_route(
                    route,
                    Assignment.of(Mode.SHADOW),
                    reason=trigger.reason,
                    source="rollback",
                    now=now,
                    numbers=trigger.numbers,
                )
            )

        if self._change(roll_back):
            self._sink.on_rollback(route, trigger.reason)
            log.error(
                "route rolled back to shadow",
                route=route,
                reason=trigger.reason,
                **{k: v for k, v in trigger.numbers.items()},
            )

    def snapshot(self) -> dict[str, object]:
        """What ``GET /cutover`` shows."""
        self.refresh()
        state = self.state
        return {
            "force_legacy": state.force_legacy,
            "default": state.default.to_json(),
            "routes": {
                name: {**state.assignment(name).to_json(), "effective": state.effective(name)}
                for name in shown_routes(state, self.configured_routes)
            },
            "history": list(state.history),
        }

    def _change(
        self, apply: Callable[[CutoverState], tuple[CutoverState, list[Change]]]
    ) -> list[Change]:
        with self._locked():
            current = (self._read() if self._path is not None else None) or self.state
            fresh, changes = apply(current)
            if changes:
                self._write(fresh)
            self.state = fresh
        for change in changes:
            self._sink.write_record(change.record())
            log.warning(
                "route ownership changed",
                route=change.route,
                before=change.before,
                after=change.after,
                percent=change.percent,
                source=change.source,
            )
        self._show()
        return changes

    def _show(self) -> None:
        state = self.state
        for name in shown_routes(state, self.configured_routes):
            if name != ALL_ROUTES:  # route labels stay route names; the default is on /cutover
                self._sink.set_route_mode(name, state.effective(name))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self._path is None:
            yield
            return
        fd = os.open(self._path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self) -> CutoverState | None:
        assert self._path is not None
        try:
            stat = self._path.stat()
            state = CutoverState.from_json(orjson.loads(self._path.read_bytes()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error(
                "cutover state file unreadable; keeping the last good state",
                path=str(self._path),
                error=type(exc).__name__,
            )
            return None
        self._seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        return state

    def _write(self, state: CutoverState) -> None:
        if self._path is None:
            return
        temporary = self._path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(orjson.dumps(state.to_json()))
        temporary.replace(self._path)
        stat = self._path.stat()
        self._seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _one(result: tuple[CutoverState, Change | None]) -> tuple[CutoverState, list[Change]]:
    state, change = result
    return state, [change] if change is not None else []
