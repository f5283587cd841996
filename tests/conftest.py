"""Fixtures every test directory shares."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import held_port


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
