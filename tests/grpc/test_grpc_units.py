"""The gRPC package's pure parts: status mapping, mirror policy, method table, JSON, failures."""

from __future__ import annotations

import importlib

import grpc
import orjson
import pytest

from shadowproxy.compare.rules import CompareRules
from shadowproxy.grpcproxy import load_catalog
from shadowproxy.grpcproxy.answers import Answer, observe, transport_failure
from shadowproxy.grpcproxy.messages import message_json
from shadowproxy.grpcproxy.metadata import as_headers, forwardable
from shadowproxy.grpcproxy.methods import OTHER, MethodTable, reads_only
from shadowproxy.grpcproxy.status import code_name, http_status, observation_status
from shadowproxy.model import ErrorKind
from shadowproxy.settings import (
    MAX_LEARNED_ROUTE,
    GrpcMethodSpec,
    GrpcSettings,
    HostAddress,
    StreamSettings,
)
from tests.grpc.shop import ShopCode

MODULES = [
    "answers",
    "descriptors",
    "forward",
    "messages",
    "metadata",
    "methods",
    "server",
    "shadow",
    "status",
]


def _answer(code: grpc.StatusCode, details: str = "", **fields: object) -> Answer:
    values: dict[str, object] = {
        "initial": (),
        "trailing": (),
        "response": None,
        "elapsed_s": 0.01,
        "timeout_s": 5.0,
    }
    values.update(fields)
    return Answer(code=code, details=details, **values)  # type: ignore[arg-type]


class TestExports:
    """Every module exports exactly what it defines."""

    @pytest.mark.parametrize("name", MODULES)
    def test_all_names_exist(self, name: str) -> None:
        """Each name in ``__all__`` is defined in the module."""
        module = importlib.import_module(f"shadowproxy.grpcproxy.{name}")
        assert module.__all__
        assert all(hasattr(module, exported) for exported in module.__all__)


class TestStatus:
    """gRPC codes as observation statuses and metric classes."""

    def test_observation_status(self) -> None:
        """``200 + code``: OK is 200, NOT_FOUND 205, UNAUTHENTICATED 216."""
        assert observation_status(grpc.StatusCode.OK) == 200
        assert observation_status(grpc.StatusCode.NOT_FOUND) == 205
        assert observation_status(grpc.StatusCode.UNAUTHENTICATED) == 216

    def test_code_name(self) -> None:
        """Statuses read back as names; anything else is unchanged."""
        assert code_name(214) == "UNAVAILABLE"
        assert code_name(None) is None
        assert code_name(999) == 999

    def test_http_status(self) -> None:
        """The google.rpc mapping gives client and server error classes."""
        assert http_status(grpc.StatusCode.NOT_FOUND) == 404
        assert http_status(grpc.StatusCode.UNAVAILABLE) == 503


class TestMirrorPolicy:
    """A read prefix, a capital after it, and no write word anywhere in the name."""

    @pytest.mark.parametrize(
        ("method", "reads"),
        [
            ("/a.S/GetUser", True),
            ("/a.S/ListOrders", True),
            ("/a.S/GetItem", True),
            ("/a.S/BatchGetItems", True),
            ("/a.S/SearchOrders", True),
            ("/a.S/WatchItems", True),
            ("/a.S/Watchdog", False),
            ("/a.S/GetOrder", True),
            ("/a.S/GetUserSettings", True),
            ("/a.S/GetAndIncrementBalance", False),
            ("/a.S/CheckAndSet", False),
            ("/a.S/FetchAndAdd", False),
            ("/a.S/FindOrCreateUser", False),
            ("/a.S/ReadAndAck", False),
            ("/a.S/GetOrCreate", False),
            ("/a.S/ListAndDeleteExpired", False),
            ("/a.S/GetUserThenSetFlag", False),
            ("/a.S/GetDataSet", False),
            ("/a.S/List", False),
            ("/a.S/Get2", False),
            ("/a.S/Get_user", False),
            ("/a.S/Listen", False),
            ("/a.S/Getaway", False),
            ("/a.S/DeleteItem", False),
            ("/a.S/CreateOrder", False),
            ("/a.S/IncrementGetCount", False),
        ],
    )
    def test_reads_only(self, method: str, reads: bool) -> None:
        """Only read-style names without a write word are taken as read-only."""
        assert reads_only(method) is reads


class TestMethodTable:
    """Method names to routes, bounded."""

    def _table(self, shop: ShopCode | None = None, **settings: object) -> MethodTable:
        grpc_settings = GrpcSettings(
            listen=HostAddress("127.0.0.1", 0), legacy="l:1", candidate="c:1", **settings
        )  # type: ignore[arg-type]
        catalog = load_catalog(str(shop.descriptors)) if shop is not None else None
        return MethodTable(
            grpc_settings,
            catalog,
            default_sample_percent=100.0,
            default_rules=CompareRules(),
            max_routes=2,
            default_window=StreamSettings(),
        )

    def test_unknown_names_bounded(self) -> None:
        """Past ``max_routes`` unknown names, and for malformed names, the route is ``other``."""
        table = self._table()
        assert table.resolve("/a.S/GetA").name == "/a.S/GetA"
        assert table.resolve("/a.S/GetB").name == "/a.S/GetB"
        assert table.resolve("/a.S/GetC").name == OTHER
        assert table.resolve("/a.S/GetA").name == "/a.S/GetA"
        assert self._table().resolve("not a method").name == OTHER
        assert not table.resolve("/a.S/GetC").mirror

    def test_long_names_are_other_and_known_ones_stay(self, shop: ShopCode) -> None:
        """An unknown name over MAX_LEARNED_ROUTE is ``other`` and takes no place; known stay."""
        table = self._table(shop)
        long_name = "/a." + "S" * MAX_LEARNED_ROUTE + "/GetA"
        assert table.resolve(long_name).name == OTHER
        assert table.resolve("/a.S/GetA").name == "/a.S/GetA"
        assert table.resolve("/a.S/GetB").name == "/a.S/GetB"
        assert table.resolve("/a.S/GetC").name == OTHER
        assert table.resolve("/shop.v1.Shop/GetItem").name == "/shop.v1.Shop/GetItem"

    def test_descriptors_give_shape(self, shop: ShopCode) -> None:
        """Cardinality and response type come from the descriptors."""
        table = self._table(shop)
        watch = table.resolve("/shop.v1.Shop/WatchItems")
        assert watch.cardinality == "unary_stream"
        assert table.resolve("/shop.v1.Shop/Chat").cardinality == "stream_stream"
        get = table.resolve("/shop.v1.Shop/GetItem")
        assert get.output is not None
        assert get.output.DESCRIPTOR.full_name == "shop.v1.Item"

    def test_configuration_wins(self, shop: ShopCode) -> None:
        """A configured mirror flag and cardinality override the defaults."""
        spec = GrpcMethodSpec(
            method="/shop.v1.Shop/GetItem",
            domain="shop",
            mirror=False,
            sample_percent=50.0,
            rules=CompareRules(),
        )
        method = self._table(shop, methods=(spec,)).resolve("/shop.v1.Shop/GetItem")
        assert (method.mirror, method.domain, method.cardinality) == (False, "shop", "unary_unary")


class TestMessageJson:
    """Messages render as proto3 JSON with every field and unknown fields kept."""

    def test_defaults_and_int64(self, shop: ShopCode) -> None:
        """Fields at their default are printed; int64 are numbers; names as in the .proto."""
        item = shop.pb2.Item(id="1", price=shop.pb2.Price(cents=5))
        rendered = orjson.loads(message_json(type(item), item.SerializeToString()) or b"")
        assert rendered == {
            "id": "1",
            "name": "",
            "price": {"cents": 5, "currency": ""},
            "tags": [],
            "labels": {},
        }

    def test_unknown_fields(self, shop: ShopCode) -> None:
        """A field the type lacks appears as ``#<number>``, nested ones too."""
        newer = shop.pb2.ItemV2(id="1", on_sale=True).SerializeToString()
        listing = shop.pb2.ListItemsResponse(items=[shop.pb2.Item.FromString(newer)])
        rendered = orjson.loads(
            message_json(shop.pb2.ListItemsResponse, listing.SerializeToString()) or b""
        )
        assert rendered["items"][0]["#6"] == 1

    def test_undecodable(self, shop: ShopCode) -> None:
        """Bytes that do not parse as the type give None."""
        assert message_json(shop.pb2.Item, b"\xff\xff\xff") is None

    def test_undecodable_observed_as_raw(self, shop: ShopCode) -> None:
        """An answer that does not parse keeps its bytes as application/octet-stream."""
        observation = observe(
            _answer(grpc.StatusCode.OK, response=b"\xff\xff"), shop.pb2.Item, cap=1024
        )
        assert observation.header("content-type") == "application/octet-stream"
        assert observation.body == b"\xff\xff"

    def test_oversized_not_decoded(self, shop: ShopCode) -> None:
        """An answer over the cap is truncated and keeps no body."""
        observation = observe(_answer(grpc.StatusCode.OK, response=b"x" * 10), shop.pb2.Item, cap=4)
        assert (observation.truncated, observation.body, observation.body_size) == (True, b"", 10)


class TestMetadata:
    """Reserved keys are dropped; binary values become base64 headers."""

    def test_forwardable(self) -> None:
        """Transport and grpc- keys go; rich error details and custom keys stay."""
        metadata = (
            ("user-agent", "x"),
            ("grpc-accept-encoding", "gzip"),
            (":authority", "h"),
            ("grpc-status-details-bin", b"\x01"),
            ("x-tenant", "acme"),
        )
        assert forwardable(metadata) == (
            ("grpc-status-details-bin", b"\x01"),
            ("x-tenant", "acme"),
        )

    def test_as_headers(self) -> None:
        """Binary values are base64 text."""
        assert as_headers((("a-bin", b"\x00\xff"),), (("b", "c"),)) == (
            ("a-bin", "AP8="),
            ("b", "c"),
        )


class TestTransportFailure:
    """Answers the gRPC library made up are failures; the upstream's own answers are not."""

    @pytest.mark.parametrize(
        ("answer", "kind"),
        [
            (
                _answer(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"),
                ErrorKind.REFUSED,
            ),
            (_answer(grpc.StatusCode.UNAVAILABLE, "Socket closed"), ErrorKind.RESET),
            (
                _answer(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", elapsed_s=5.0),
                ErrorKind.TIMEOUT,
            ),
            (
                _answer(
                    grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max (9 vs. 4)"
                ),
                ErrorKind.TOO_LARGE,
            ),
            (_answer(grpc.StatusCode.UNAVAILABLE, "overloaded"), None),
            (_answer(grpc.StatusCode.DEADLINE_EXCEEDED, "downstream", elapsed_s=0.1), None),
            (
                _answer(grpc.StatusCode.UNAVAILABLE, "Socket closed", trailing=(("x", "1"),)),
                None,
            ),
            (_answer(grpc.StatusCode.OK), None),
        ],
    )
    def test_kinds(self, answer: Answer, kind: ErrorKind | None) -> None:
        """Each library-made answer maps to its ErrorKind; upstream answers to None."""
        assert transport_failure(answer) is kind
