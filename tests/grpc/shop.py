"""The test contract's generated code and real gRPC servers implementing it.

``generate(directory)`` runs grpc_tools.protoc on ``shop.proto`` (Python
messages, gRPC stubs and a descriptor set) and imports the result.
``shop_server(code, script)`` serves the Shop service on 127.0.0.1 as a
test's ``Script`` says, and records every call it receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.resources
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc

from tests.support import WAIT_S

PROTO = Path(__file__).with_name("shop.proto")

Metadata = tuple[tuple[str, str | bytes], ...]


@dataclass(frozen=True)
class ShopCode:
    """The generated modules and the descriptor set file."""

    pb2: ModuleType
    pb2_grpc: ModuleType
    descriptors: Path


def generate(directory: Path) -> ShopCode:
    """Generate and import the code for ``shop.proto`` (once per process)."""
    from grpc_tools import protoc

    include = str(importlib.resources.files("grpc_tools") / "_proto")
    descriptors = directory / "shop.pb"
    status = protoc.main(
        [
            "protoc",
            f"-I{PROTO.parent}",
            f"-I{include}",
            f"--python_out={directory}",
            f"--grpc_python_out={directory}",
            f"--descriptor_set_out={descriptors}",
            "--include_imports",
            str(PROTO),
        ]
    )
    assert status == 0, "protoc failed"
    sys.path.insert(0, str(directory))
    try:
        pb2 = importlib.import_module("shop_pb2")
        pb2_grpc = importlib.import_module("shop_pb2_grpc")
    finally:
        sys.path.remove(str(directory))
    return ShopCode(pb2, pb2_grpc, descriptors)


@dataclass(frozen=True)
class Seen:
    """One call a server received."""

    method: str
    metadata: Metadata
    time_remaining: float | None


@dataclass
class Script:
    """How a test server answers. Unary methods answer ``item`` unless ``code`` is set."""

    item: dict[str, Any] = field(
        default_factory=lambda: {
            "id": "1",
            "name": "lamp",
            "price": {"cents": 1999, "currency": "EUR"},
            "tags": ["home", "light"],
            "note": "bright",
        }
    )
    code: grpc.StatusCode | None = None
    details: str = ""
    initial: Metadata = ()
    trailing: Metadata = ()
    new_field: bool = False
    """Answer with ItemV2's extra field, which the descriptors do not know."""
    hang: asyncio.Event | None = None
    """Wait for this event before answering (a stuck server)."""
    stream_count: int = 3
    stream_code: grpc.StatusCode | None = None
    """Status after the streamed messages (None: OK)."""


@dataclass
class ShopServer:
    """A running test server and what it received."""

    target: str
    script: Script
    seen: list[Seen] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_calls(self, count: int) -> None:
        """Wait until ``count`` calls arrived (bounded, no sleeps)."""
        async with asyncio.timeout(WAIT_S), self.arrived:
            await self.arrived.wait_for(lambda: len(self.seen) >= count)


class _Shop:
    """The servicer; generated base class methods are overridden by name."""

    def __init__(self, code: ShopCode, server: ShopServer) -> None:
        self._pb2 = code.pb2
        self._server = server

    async def _record(self, context: Any, method: str) -> Script:
        async with self._server.arrived:
            self._server.seen.append(
                Seen(
                    method,
                    tuple((k, v) for k, v in context.invocation_metadata()),
                    context.time_remaining(),
                )
            )
            self._server.arrived.notify_all()
        script = self._server.script
        if script.hang is not None:
            await script.hang.wait()
        if script.initial:
            await context.send_initial_metadata(script.initial)
        if script.trailing:
            context.set_trailing_metadata(script.trailing)
        return script

    def _item(self, script: Script, item_id: str) -> Any:
        fields = {**script.item, "id": item_id or script.item.get("id", "")}
        if script.new_field:
            return self._pb2.Item.FromString(
                self._pb2.ItemV2(**fields, on_sale=True).SerializeToString()
            )
        return self._pb2.Item(**fields)

    async def _unary(self, request: Any, context: Any, method: str) -> Any:
        script = await self._record(context, method)
        if script.code is not None:
            await context.abort(script.code, script.details, script.trailing)
        return self._item(script, request.id)

    async def GetItem(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self._unary(request, context, "GetItem")

    async def DeleteItem(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self._unary(request, context, "DeleteItem")

    async def ListItems(self, request: Any, context: Any) -> Any:  # noqa: N802
        script = await self._record(context, "ListItems")
        items = [self._item(script, str(n)) for n in range(request.limit)]
        return self._pb2.ListItemsResponse(items=items)

    async def WatchItems(self, request: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802
        script = await self._record(context, "WatchItems")
        for n in range(script.stream_count):
            yield self._item(script, f"w{n}")
        if script.stream_code is not None:
            await context.abort(script.stream_code, script.details, script.trailing)

    async def UploadItems(self, requests: Any, context: Any) -> Any:  # noqa: N802
        await self._record(context, "UploadItems")
        return self._pb2.ListItemsResponse(items=[item async for item in requests])

    async def Chat(self, requests: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802
        await self._record(context, "Chat")
        async for item in requests:
            yield self._pb2.Item(id=item.id, name=item.name.upper())


@contextlib.asynccontextmanager
async def shop_server(
    code: ShopCode, script: Script | None = None, tls: grpc.ServerCredentials | None = None
) -> AsyncIterator[ShopServer]:
    """Serve the Shop service on 127.0.0.1 until the block ends (over TLS with ``tls``)."""
    state = ShopServer(target="", script=script or Script())
    server = grpc.aio.server()
    servicer = type("Shop", (_Shop, code.pb2_grpc.ShopServicer), {})(code, state)
    code.pb2_grpc.add_ShopServicer_to_server(servicer, server)
    if tls is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", tls)
    await server.start()
    state.target = f"127.0.0.1:{port}"
    try:
        yield state
    finally:
        if state.script.hang is not None:
            state.script.hang.set()
        await server.stop(0)


@contextlib.asynccontextmanager
async def raw_server(answers: dict[str, bytes]) -> AsyncIterator[str]:
    """Serve each method of ``answers`` with exactly those bytes (any request); yields the target.

    For wire layouts the generated code would not write, such as map entries in a chosen order.
    """

    def answering(data: bytes) -> Any:
        async def answer(_request: bytes, _context: Any) -> bytes:
            return data

        return grpc.unary_unary_rpc_method_handler(answer)

    server = grpc.aio.server()
    handlers = {name.rpartition("/")[2]: answering(data) for name, data in answers.items()}
    services = {name.split("/")[1] for name in answers}
    for service in services:
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)
