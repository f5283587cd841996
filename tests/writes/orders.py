"""A real orders service over its own SQLite store, for the write tests.

Each instance has its own database file, so legacy and candidate are two
stores whose ids differ (``first_id``). ``POST /orders`` creates an order in a
transaction; with ``dry_run`` set (the candidate's contract, docs/writes.md) a
request carrying the dry-run header is validated and answered, then rolled
back. ``GET /orders/{id}``, ``GET /orders?id=N`` and ``POST /orders/lookup``
(``{"order_id": N}``) read one back; ``POST /orders/{id}/items`` adds to it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.support import Backend, backend

DRY_RUN = "X-Shadow-Dry-Run"
_STORES = itertools.count()


@dataclass
class Store:
    """One service's database."""

    path: Path

    def count(self) -> int:
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            return int(db.execute("SELECT count(*) FROM orders").fetchone()[0])


def _answer(db: sqlite3.Connection, order_id: int, *, id_prefix: str) -> web.Response:
    row = db.execute("SELECT id, item, qty FROM orders WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        return web.json_response({"error": "no such order"}, status=404)
    shown: object = f"{id_prefix}{row[0]}" if id_prefix else row[0]
    return web.json_response(
        {"id": shown, "item": row[1], "qty": row[2], "href": f"/orders/{shown}"}
    )


@contextlib.asynccontextmanager
async def orders_service(
    directory: Path,
    *,
    first_id: int = 1,
    dry_run: bool = False,
    dry_run_header: str = DRY_RUN,
    id_prefix: str = "",
    price: int = 10,
) -> AsyncIterator[tuple[Backend, Store]]:
    """Serve the orders API on loopback over a fresh store; ids start at ``first_id``.

    ``id_prefix`` makes ids strings (``ord_1001``) as a rewrite's might be.
    """
    path = directory / f"orders-{next(_STORES)}.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT, item TEXT, qty INTEGER)"
        )
        db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('orders', ?)", (first_id - 1,))
        db.commit()

    def own_id(text: str) -> int:
        return int(text.removeprefix(id_prefix))

    async def handle(request: web.Request) -> web.Response:
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
            parts = request.path.strip("/").split("/")
            if request.method == "POST" and parts == ["orders"]:
                order = json.loads(await request.read())
                if not isinstance(order.get("qty"), int) or order["qty"] < 1:
                    return web.json_response(
                        {"error": "qty must be a positive integer"}, status=422
                    )
                db.execute("BEGIN")
                cursor = db.execute(
                    "INSERT INTO orders (item, qty) VALUES (?, ?)", (order["item"], order["qty"])
                )
                answer = _answer(db, int(cursor.lastrowid or 0), id_prefix=id_prefix)
                answer.headers["X-Total"] = str(order["qty"] * price)
                if dry_run and request.headers.get(dry_run_header) == "1":
                    db.execute("ROLLBACK")
                else:
                    db.execute("COMMIT")
                return answer
            if request.method == "GET" and parts == ["orders"]:
                return _answer(db, own_id(request.query["id"]), id_prefix=id_prefix)
            if request.method == "POST" and parts == ["orders", "lookup"]:
                wanted = json.loads(await request.read())["order_id"]
                return _answer(db, own_id(str(wanted)), id_prefix=id_prefix)
            if request.method == "GET" and len(parts) == 2 and parts[0] == "orders":
                return _answer(db, own_id(parts[1]), id_prefix=id_prefix)
            if request.method == "POST" and len(parts) == 3 and parts[2] == "items":
                db.execute("UPDATE orders SET qty = qty + 1 WHERE id = ?", (own_id(parts[1]),))
                return _answer(db, own_id(parts[1]), id_prefix=id_prefix)
            return web.json_response({"error": "not found"}, status=404)

    async with backend(handle) as served:
        yield served, Store(path)
