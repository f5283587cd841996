"""What ``GET /cutover`` shows of a cutover state: the default, each route, the history.

Pure: it reads a ``CutoverState`` and the configured route names, and
returns the JSON the admin API serves (docs/cutover.md).
"""

from __future__ import annotations

from collections.abc import Iterable

from shadowproxy.cutover.state import CutoverState, shown_routes

__all__ = ["listing"]


def listing(
    state: CutoverState, configured: Iterable[str], state_file: str, state_error: str | None
) -> dict[str, object]:
    """The ``/cutover`` document of ``state``: the ``configured`` routes and any placed ones."""
    routes: dict[str, object] = {}
    for name in shown_routes(state, configured):
        placement = state.placement(name)
        routes[name] = {
            **placement.assignment.to_json(),
            "effective": state.effective(name),
            "since": placement.since,
            "source": placement.source,
        }
    return {
        "force_legacy": state.force_legacy,
        "default": state.default.assignment.to_json(),
        "routes": routes,
        "history": list(state.history),
        "state_file": state_file,
        "state_error": state_error,
    }
