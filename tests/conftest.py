"""Fixtures every test directory shares."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.support import held_port

if TYPE_CHECKING:
    from tests.grpc.shop import ShopCode


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections for the whole test (``held_port``)."""
    with held_port() as sock:
        yield int(sock.getsockname()[1])


_RELEASED = (
    "a port bound and released may be handed to anyone, even the proxy under test:"
    " use closed_port (nothing listens) or listen on port 0 and read the port back"
)


@pytest.fixture
def unused_tcp_port() -> int:
    """pytest-asyncio's released port, refused here (``_RELEASED``)."""
    pytest.fail(_RELEASED)


@pytest.fixture
def unused_tcp_port_factory() -> int:
    """pytest-asyncio's released ports, refused here (``_RELEASED``)."""
    pytest.fail(_RELEASED)


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> ShopCode:
    """The gRPC tests' Shop contract: generated messages, stubs and descriptor set, once."""
    from tests.grpc.shop import generate

    return generate(tmp_path_factory.mktemp("shop"))
