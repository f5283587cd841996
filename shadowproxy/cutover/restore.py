"""Route ownership at start: the state file's runtime changes over the configuration.

Owns the precedence a process starts with: force-legacy from the
environment, then the runtime changes saved in the state file (admin API,
promote, drill, rollback), then the configuration; a saved change whose
route's configuration changed since it was made gives way to the edited
file, as on SIGHUP. Pure code: no I/O, no clock (callers pass ``now``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from shadowproxy.cutover.state import ALL_ROUTES, FORCE_LEGACY, Change, CutoverState, Placement

__all__ = ["restore"]


def restore(
    start: CutoverState, saved: CutoverState | None, names: Iterable[str], now: float
) -> tuple[CutoverState, list[Change]]:
    """The state at start: ``start`` (the configuration) under what the state file kept.

    Precedence: force-legacy from the environment, then the runtime changes in
    ``saved`` (admin API, promote, drill, rollback), then the configuration. A
    runtime change is dropped when its route is no longer configured
    (``names``, plus ``*``) or when the route's configuration changed since it
    was made: that edit is the newer decision, as on SIGHUP. A route still where
    it was keeps its ``since``. Each restored change is recorded (source
    ``restored``); ownership records stay the history.
    """
    if saved is None:
        return start, []
    known = {*names, ALL_ROUTES}
    state = replace(start, history=saved.history)
    changes: list[Change] = []
    for route in sorted({*saved.routes, ALL_ROUTES} & known):
        kept = saved.placement(route)
        configured_now = start.assignment(route)
        if not kept.runtime or kept.configured != configured_now:
            own = route == ALL_ROUTES or route in start.routes
            if own and kept.assignment == configured_now:
                state = _placed(state, route, replace(start.placement(route), since=kept.since))
            continue
        state = _placed(state, route, kept)
        if kept.assignment != configured_now:
            change = Change(
                route,
                str(configured_now.mode),
                str(kept.assignment.mode),
                kept.assignment.percent,
                f"restored from the state file ({kept.source})",
                "restored",
                now,
            )
            state = state.remember(change)
            changes.append(change)
    if saved.force_legacy and saved.force_legacy_source != "env" and not start.force_legacy:
        state = replace(
            state,
            force_legacy=True,
            force_legacy_since=saved.force_legacy_since,
            force_legacy_source=saved.force_legacy_source,
        )
        change = Change(
            ALL_ROUTES, "routes", FORCE_LEGACY, 0.0, "restored from the state file", "restored", now
        )
        state = state.remember(change)
        changes.append(change)
    return state, changes


def _placed(state: CutoverState, route: str, placement: Placement) -> CutoverState:
    if route == ALL_ROUTES:
        return replace(state, default=placement)
    return replace(state, routes={**state.routes, route: placement})
