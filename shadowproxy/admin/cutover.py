"""The admin endpoints of cutover control: list modes, switch a route, force-legacy, drill results.

``GET /cutover`` lists every route's mode, force-legacy and recent history.
POSTs (and the DELETE) pass through the admin listener's token guard:

- ``POST /cutover`` with ``{"route", "mode", "percent", "reason"}``, or
  ``POST /cutover/{route}`` with the rest in the body (the route name keeps
  its slashes: ``/cutover//api/orders/{id}``);
- ``POST /cutover/force-legacy`` and ``DELETE /cutover/force-legacy``;
- ``POST /cutover/drill`` records a ``drill`` result (``shadow drill`` sends it).

Bad input answers 400 with ``{"error": ...}``, an unknown route 404, and a
mode change the state file cannot keep 503 (nothing changed).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from aiohttp import web

from shadowproxy.cutover.ownership import Ownership, StateNotSavedError
from shadowproxy.cutover.state import Assignment, Mode
from shadowproxy.records import DRILL, SCHEMA_VERSION

__all__ = ["API_SOURCES", "CUTOVER", "add_cutover_routes"]

log = structlog.get_logger(__name__)

CUTOVER = web.AppKey("cutover", Ownership)
API_SOURCES = ("api", "promote", "drill")
"""``source`` values a client may give; ``api`` when it gives none."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""An aiohttp request handler."""

_MAX_REASON = 200
_MAX_STEPS = 20


class _BadInputError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise _BadInputError("body must be a JSON object") from None
    if not isinstance(data, dict):
        raise _BadInputError("body must be a JSON object")
    return data


def _text(data: Mapping[str, Any], key: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise _BadInputError(f"{key}: must be a string")
    return value[:_MAX_REASON]


def _source(data: Mapping[str, Any]) -> str:
    source = _text(data, "source", "api")
    if source not in API_SOURCES:
        raise _BadInputError(f"source: must be one of {', '.join(API_SOURCES)}")
    return source


def _numbers(data: Mapping[str, Any]) -> dict[str, float] | None:
    value = data.get("numbers")
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        for v in value.values()
    ):
        raise _BadInputError("numbers: must map names to finite numbers")
    return {str(k)[:64]: float(v) for k, v in list(value.items())[:_MAX_STEPS]}


def _target(data: Mapping[str, Any], allowlisted: bool) -> Assignment:
    """The assignment asked for; a canary at 0 % only for a route with an allowlist."""
    mode = data.get("mode")
    if mode not in {str(m) for m in Mode}:
        raise _BadInputError(f"mode: must be one of {', '.join(str(m) for m in Mode)}")
    percent = data.get("percent")
    if mode == Mode.CANARY:
        if (
            isinstance(percent, bool)
            or not isinstance(percent, int | float)
            or not (0 < percent <= 100 or (allowlisted and percent == 0))
        ):
            floor = "[0, 100] (0: its allowlist only)" if allowlisted else "(0, 100]"
            raise _BadInputError(f"percent: canary needs a number in {floor}")
        return Assignment.of(Mode.CANARY, float(percent))
    return Assignment.of(str(mode))


def _answer(call: Callable[[web.Request], Awaitable[web.Response]]) -> Handler:
    async def answered(request: web.Request) -> web.StreamResponse:
        try:
            return await call(request)
        except _BadInputError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)

    return answered


async def _list(request: web.Request) -> web.Response:
    return web.json_response(request.app[CUTOVER].snapshot())


async def _set_route(request: web.Request) -> web.Response:
    ownership = request.app[CUTOVER]
    data = await _body(request)
    route = request.match_info.get("route") or data.get("route")
    if not isinstance(route, str) or not route:
        raise _BadInputError("route: missing")
    if route not in ownership.configured_routes:
        raise _BadInputError(f"route: {route!r} is not a configured route (or *)", status=404)
    target = _target(data, bool(ownership.canary_keys(route).allow))
    try:
        change = ownership.set_route(
            route,
            target,
            reason=_text(data, "reason", ""),
            source=_source(data),
            numbers=_numbers(data),
        )
    except StateNotSavedError as exc:
        raise _BadInputError(f"cutover state not saved, nothing changed: {exc}", 503) from None
    log.warning(
        "route mode set via admin API", route=route, mode=str(target.mode), remote=request.remote
    )
    placement = ownership.state.placement(route)
    return web.json_response(
        {
            "route": route,
            **target.to_json(),
            "effective": ownership.state.effective(route),
            "since": placement.since,
            "source": placement.source,
            "changed": change is not None,
        }
    )


def _force(on: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler that turns force-legacy ``on`` (POST) or off (DELETE)."""

    async def handler(request: web.Request) -> web.Response:
        ownership = request.app[CUTOVER]
        data = await _body(request)
        change = ownership.set_force_legacy(
            on, reason=_text(data, "reason", ""), source=_source(data)
        )
        return web.json_response(
            {
                "force_legacy": on,
                "changed": change is not None,
                "saved": ownership.state_error is None,
            }
        )

    return handler


def _steps(value: object) -> list[dict[str, object]]:
    if not isinstance(value, list) or len(value) > _MAX_STEPS:
        raise _BadInputError(f"steps: must be a list of at most {_MAX_STEPS} objects")
    steps: list[dict[str, object]] = []
    for step in value:
        if not isinstance(step, dict) or not all(
            v is None or isinstance(v, str | int | float | bool) for v in step.values()
        ):
            raise _BadInputError("steps: each step maps names to plain values")
        steps.append(
            {str(k)[:64]: v[:_MAX_REASON] if isinstance(v, str) else v for k, v in step.items()}
        )
    return steps


async def _drill(request: web.Request) -> web.Response:
    ownership = request.app[CUTOVER]
    data = await _body(request)
    route = data.get("route")
    if not isinstance(route, str) or route not in ownership.configured_routes:
        raise _BadInputError("route: must be a configured route (or *)")
    passed = data.get("passed")
    if not isinstance(passed, bool):
        raise _BadInputError("passed: must be true or false")
    drill_id = data.get("id")
    if drill_id is not None and (not isinstance(drill_id, str) or not 0 < len(drill_id) <= 64):
        raise _BadInputError("id: must be a string of at most 64 characters")
    record = {
        "v": SCHEMA_VERSION,
        "type": DRILL,
        "route": route,
        "id": drill_id,
        "passed": passed,
        "steps": _steps(data.get("steps", [])),
        "reason": _text(data, "reason", ""),
    }
    ownership.record(record)
    log.warning("drill recorded", route=route, passed=passed)
    return web.json_response({"recorded": True, "route": route, "passed": passed})


def add_cutover_routes(
    app: web.Application, ownership: Ownership, guard: Callable[[Handler], Handler]
) -> None:
    """Add the cutover endpoints to the admin ``app``; ``guard`` wraps every POST and DELETE."""
    app[CUTOVER] = ownership
    router = app.router
    router.add_get("/cutover", _list)
    router.add_post("/cutover", guard(_answer(_set_route)))
    # Fixed names first: a route path below would otherwise swallow them.
    router.add_post("/cutover/force-legacy", guard(_answer(_force(True))))
    router.add_delete("/cutover/force-legacy", guard(_answer(_force(False))))
    router.add_post("/cutover/drill", guard(_answer(_drill)))
    router.add_post("/cutover/{route:.+}", guard(_answer(_set_route)))
