"""The bundled demo backends: a legacy JSON API and a candidate rewrite of it.

The candidate differs from legacy the way real rewrites do:

- ``/api/users/{id}``: a renamed field (``email`` became ``email_address``), structural;
  its timestamps use ``+00:00`` and milliseconds where legacy writes ``Z`` (an equivalence);
- ``/api/orders/{id}``: a changed type (``qty`` is a string) and a drifted value
  (``total`` rounded differently), structural and semantic;
- ``/api/search``: the same answer, but more than 100 ms slower, timing;
- every answer carries a nondeterministic ``request_id``, noise that a secondary
  legacy instance reveals;
- ``/api/health`` and ``/api/catalog`` are identical, matches.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from aiohttp import web

__all__ = ["DEMO_PATHS", "build_backend", "serve_backend"]

WHICH = web.AppKey("which", str)
SLOW_SEARCH_S = 0.12
"""The candidate's extra latency on /api/search (over the 100 ms timing threshold)."""

DEMO_PATHS = (
    "/api/health",
    "/api/catalog",
    "/api/users/1",
    "/api/users/2",
    "/api/orders/1001",
    "/api/orders/1002",
    "/api/search?q=lamp",
)
"""The GET paths the demo's traffic cycles through."""

_USERS = {
    1: {"name": "Ada Lovelace", "email": "ada@example.com"},
    2: {"name": "Alan Turing", "email": "alan@example.com"},
}


def _candidate(request: web.Request) -> bool:
    return request.app[WHICH] == "candidate"


def _envelope(request: web.Request, payload: dict[str, object]) -> web.Response:
    return web.json_response({**payload, "request_id": str(uuid.uuid4())})


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _catalog(request: web.Request) -> web.Response:
    return web.json_response(
        {"items": [{"sku": "LAMP-1", "price": 19.5}, {"sku": "DESK-2", "price": 240}]}
    )


async def _user(request: web.Request) -> web.Response:
    user_id = int(request.match_info["id"])
    user = _USERS.get(user_id)
    if user is None:
        return web.json_response({"error": "not found"}, status=404)
    if _candidate(request):
        body: dict[str, object] = {
            "id": user_id,
            "name": user["name"],
            "email_address": user["email"],
            "created_at": "2024-03-01T09:30:00.000+00:00",
        }
    else:
        body = {
            "id": user_id,
            "name": user["name"],
            "email": user["email"],
            "created_at": "2024-03-01T09:30:00Z",
        }
    return _envelope(request, body)


async def _order(request: web.Request) -> web.Response:
    order_id = int(request.match_info["id"])
    qty = 3
    price = Decimal("3.335")
    # Legacy rounds half-up; the rewrite truncates: a one-cent drift.
    rounding = ROUND_DOWN if _candidate(request) else ROUND_HALF_UP
    total = (price * qty).quantize(Decimal("0.01"), rounding=rounding)
    item: dict[str, object] = {"sku": "LAMP-1", "qty": str(qty) if _candidate(request) else qty}
    return _envelope(
        request,
        {"id": order_id, "items": [item], "total": float(total), "currency": "EUR"},
    )


async def _search(request: web.Request) -> web.Response:
    if _candidate(request):
        await asyncio.sleep(SLOW_SEARCH_S)
    query = request.query.get("q", "")
    return web.json_response({"query": query, "hits": [{"sku": "LAMP-1", "score": 1.0}]})


async def _create_order(request: web.Request) -> web.Response:
    return web.json_response({"id": 2001, "status": "created"}, status=201)


def build_backend(which: str) -> web.Application:
    """The demo ``legacy`` or ``candidate`` application."""
    app = web.Application()
    app[WHICH] = which
    app.router.add_get("/api/health", _health)
    app.router.add_get("/api/catalog", _catalog)
    app.router.add_get("/api/users/{id:\\d+}", _user)
    app.router.add_get("/api/orders/{id:\\d+}", _order)
    app.router.add_post("/api/orders", _create_order)
    app.router.add_get("/api/search", _search)
    return app


def serve_backend(which: str, listen: str) -> int:
    """Serve one demo backend until interrupted (``shadowproxy demo-backend``)."""
    from shadowproxy.config import parse_address

    address = parse_address(listen, "--listen")
    with contextlib.suppress(KeyboardInterrupt):
        web.run_app(build_backend(which), host=address.host, port=address.port, print=None)
    return 0
