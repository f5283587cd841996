"""One process's cutover control: the current state, the state file, its records and rollbacks.

Every process holds the ``CutoverState`` in memory; the hot path asks
``decide`` (a cached decision per route). The state is kept in a state file
(``statefile``) in ``cutover.state_dir``: the process serving the admin
listener (the ``controller``) restores it at start over the configuration
(``state.restore``) and every process polls it every 250 ms, so a change
made in any process (the admin API in the supervisor, a rollback in a
worker) reaches every worker within a second and outlives a restart.

A change asked for through the admin API (a mode, promote, drill) is
refused with ``StateNotSavedError`` when it cannot be saved: a decision a
restart would undo does not hold. Force-legacy and automatic rollbacks
always apply (they protect clients) and are saved when possible. The
process that makes a change writes its ``ownership`` record; every process
moves its own ``shadowproxy_route_mode`` gauges.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import structlog

from shadowproxy.cutover.canary import CanaryKeys, Decision, canary_keys, decisions
from shadowproxy.cutover.listing import listing
from shadowproxy.cutover.restore import restore
from shadowproxy.cutover.rollback import RollbackWindows, Trigger
from shadowproxy.cutover.state import (
    ALL_ROUTES,
    FORCE_LEGACY,
    Assignment,
    Change,
    CutoverState,
    Mode,
    configured,
    reconcile,
    shown_routes,
)
from shadowproxy.cutover.statefile import StateFile, StateFileError
from shadowproxy.model import DiffClass, Observation, Phase, Verdict
from shadowproxy.settings import Settings

__all__ = ["Ownership", "OwnershipSink", "StateNotSavedError"]

log = structlog.get_logger(__name__)

POLL_S = 0.25
_ANSWERING = frozenset({Mode.CANARY, Mode.CANDIDATE})


class StateNotSavedError(Exception):
    """A change was refused because the state file could not keep it (nothing changed)."""


class OwnershipSink(Protocol):
    """Where changes go (``shadowproxy.sinks.Evidence`` is one)."""

    def write_record(self, record: Mapping[str, object]) -> None: ...
    def set_route_mode(self, route: str, mode: str, percent: float) -> None: ...
    def on_rollback(self, route: str, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class _Route:
    """A route's decisions under the current state, computed once per state."""

    legacy: Decision
    candidate: Decision | None
    """Set only in canary: then ``keys`` choose between the two."""
    keys: CanaryKeys
    percent: float


class Ownership:
    """The cutover state of one process, kept in step with the state file."""

    def __init__(
        self,
        settings: Settings,
        sink: OwnershipSink,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._settings = settings
        self._sink = sink
        self._clock = clock
        self._monotonic = monotonic
        self._file = StateFile(settings.cutover.state_dir)
        self._usable = False
        self.state_error: str | None = None
        """Why the state file cannot be used (None when it can)."""
        self._windows = RollbackWindows(settings.cutover.rollback)
        self._keys = {spec.name: canary_keys(spec) for spec in settings.owned}
        self._routes: dict[str, _Route] = {}
        self._state = configured(settings, clock())

    @property
    def state(self) -> CutoverState:
        """The state in force in this process."""
        return self._state

    @state.setter
    def state(self, fresh: CutoverState) -> None:
        self._state = fresh
        self._routes = {}

    @property
    def configured_routes(self) -> list[str]:
        """Names the admin API accepts: every configured route and ``*`` (the default)."""
        return [*(spec.name for spec in self._settings.owned), ALL_ROUTES]

    def start(self, *, controller: bool) -> None:
        """Take up the state: the ``controller`` restores and saves it, the others read it."""
        changes: list[Change] = []
        try:
            self._prepare()
            with self._file.locked():
                if controller:
                    self.state, changes = restore(
                        self.state, self._saved(), self.configured_routes, self._clock()
                    )
                    self._file.write(self.state)
                else:
                    self.state = self._file.read() or self.state
        except StateFileError as exc:
            self._unusable(exc)
        if controller:
            self._announce(changes)
            if self._settings.cutover.force_legacy:
                log.warning("force-legacy is on (SHADOWPROXY_FORCE_LEGACY)")
                self._sink.write_record(
                    Change(
                        ALL_ROUTES, "routes", FORCE_LEGACY, 0.0, "environment", "env", self._clock()
                    ).record()
                )
        self._show()

    def _prepare(self) -> None:
        if not self._usable:
            self._file.prepare()
            self._usable, self.state_error = True, None

    def _unusable(self, exc: StateFileError) -> None:
        self._usable, self.state_error = False, str(exc)
        log.error("cutover state file unusable; changes hold in this process only", error=str(exc))

    def _saved(self) -> CutoverState | None:
        """The state file's state; an unreadable file is set aside and the configuration used."""
        try:
            return self._file.read()
        except StateFileError as exc:
            aside = self._file.set_aside()
            log.error(
                "cutover state file unreadable; starting from the configuration",
                error=str(exc),
                kept_as=aside,
            )
            return None

    def record(self, record: Mapping[str, object]) -> None:
        """Write another cutover record (a ``drill`` result) to the evidence."""
        self._sink.write_record(record)

    def _route(self, route: str) -> _Route:
        cached = self._routes.get(route)
        if cached is None:
            legacy, candidate = decisions(self._state, route)
            keys = self._keys.get(route, CanaryKeys())
            percent = self._state.assignment(route).percent
            cached = self._routes[route] = _Route(legacy, candidate, keys, percent)
        return cached

    def decide(self, route: str, key: Callable[[str], str]) -> Decision:
        """Who answers a request of ``route`` right now; ``key(sticky)`` is read only in canary."""
        entry = self._route(route)
        if entry.candidate is not None and entry.keys.chosen(key(entry.keys.sticky), entry.percent):
            return entry.candidate
        return entry.legacy

    def phase(self, route: str) -> Phase:
        """The phase requests of ``route`` are filed under right now."""
        return self._route(route).legacy.phase

    def canary_keys(self, route: str) -> CanaryKeys:
        """A configured route's canary settings (the defaults for the rest)."""
        return self._keys.get(route, CanaryKeys())

    def configured_assignment(self, route: str) -> Assignment:
        """What the configuration says for ``route`` (``*``: the default mode)."""
        return configured(self._settings).assignment(route)

    def set_route(
        self,
        route: str,
        target: Assignment,
        *,
        reason: str,
        source: str,
        numbers: Mapping[str, float] | None = None,
    ) -> Change | None:
        """Move ``route`` (``*``: the default) to ``target``; None when it already was there.

        Raises StateNotSavedError (nothing changed) when the state file cannot keep it.
        """
        now = self._clock()
        wanted = self.configured_assignment(route)
        changes = self._change(
            lambda s: _one(
                s.with_route(
                    route,
                    target,
                    reason=reason,
                    source=source,
                    now=now,
                    numbers=numbers,
                    configured=wanted,
                )
            ),
            must_save=True,
        )
        return changes[0] if changes else None

    def set_force_legacy(self, on: bool, *, reason: str, source: str) -> Change | None:
        """Switch force-legacy on or off, saved when possible; None when it already was."""
        now = self._clock()
        changes = self._change(
            lambda s: _one(s.with_force_legacy(on, reason=reason, source=source, now=now)),
            must_save=False,
        )
        return changes[0] if changes else None

    def reload(self, settings: Settings, *, controller: bool) -> list[Change]:
        """Take a reloaded configuration; the ``controller`` applies what changed in modes."""
        old, self._settings = self._settings, settings
        self._windows.settings = settings.cutover.rollback
        self._keys = {spec.name: canary_keys(spec) for spec in settings.owned}
        self._routes = {}
        if not controller:
            return []
        now = self._clock()
        return self._change(lambda s: reconcile(s, old, settings, now), must_save=False)

    def refresh(self) -> bool:
        """Re-read the state file when another process changed it; True when it did."""
        if not self._usable or not self._file.changed():
            return False
        try:
            fresh = self._file.read()
        except StateFileError as exc:
            log.error("cutover state file unreadable; keeping the last good state", error=str(exc))
            return False
        if fresh is None:
            return False
        self.state = fresh
        self._show()
        return True

    async def follow(self, stop: asyncio.Event) -> None:
        """Poll the state file every 250 ms until ``stop`` is set."""
        while not stop.is_set():
            # A timeout scope, not wait_for: no new task every poll for the whole run.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_S):
                    await stop.wait()
            self.refresh()

    def answered(self, route: str, *, error: bool) -> None:
        """The candidate answered a request of ``route`` (``error``: a 5xx or no answer)."""
        owner = self._state.assignment(route)
        if owner.mode not in _ANSWERING or self._state.force_legacy:
            return
        trigger = self._windows.answered(route, owner, error=error, now=self._monotonic())
        self._maybe_roll_back(route, owner, trigger)

    def compared(
        self, route: str, verdict: Verdict, legacy: Observation, candidate: Observation
    ) -> None:
        """A compared exchange of ``route`` that the candidate answered (the reverse shadow's).

        A structural verdict and both sides' latencies (of a side that answered) feed the
        route's rollback window.
        """
        owner = self._state.assignment(route)
        if owner.mode not in _ANSWERING or self._state.force_legacy:
            return
        trigger = self._windows.compared(
            route,
            owner,
            structural=DiffClass.STRUCTURAL in verdict.classes,
            candidate_s=candidate.elapsed_s if candidate.ok else None,
            legacy_s=legacy.elapsed_s if legacy.ok else None,
            now=self._monotonic(),
        )
        self._maybe_roll_back(route, owner, trigger)

    def _maybe_roll_back(self, route: str, owner: Assignment, trigger: Trigger | None) -> None:
        if trigger is None or not self._settings.cutover.rollback.enabled:
            return
        self._windows.forget(route)
        now = self._clock()
        wanted = self.configured_assignment(route)

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
                    configured=wanted,
                )
            )

        if self._change(roll_back, must_save=False):
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
        return listing(self._state, self.configured_routes, str(self._file.path), self.state_error)

    def _change(
        self,
        apply: Callable[[CutoverState], tuple[CutoverState, list[Change]]],
        *,
        must_save: bool,
    ) -> list[Change]:
        try:
            self._prepare()
            with self._file.locked():
                fresh, changes = apply(self._current())
                if changes:
                    self._file.write(fresh)
        except StateFileError as exc:
            if must_save:
                log.error("cutover change refused: the state file cannot keep it", error=str(exc))
                raise StateNotSavedError(str(exc)) from None
            self._unusable(exc)
            fresh, changes = apply(self._state)
        self.state = fresh
        self._announce(changes)
        self._show()
        return changes

    def _current(self) -> CutoverState:
        """The state file's state, or this process's when it holds none or cannot be read."""
        try:
            return self._file.read() or self._state
        except StateFileError as exc:
            log.error("cutover state file unreadable; overwriting it", error=str(exc))
            return self._state

    def _announce(self, changes: list[Change]) -> None:
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

    def _show(self) -> None:
        state = self._state
        for name in shown_routes(state, self.configured_routes):
            if name != ALL_ROUTES:  # route labels stay route names; the default is on /cutover
                self._sink.set_route_mode(name, state.effective(name), state.share(name))


def _one(result: tuple[CutoverState, Change | None]) -> tuple[CutoverState, list[Change]]:
    state, change = result
    return state, [change] if change is not None else []
