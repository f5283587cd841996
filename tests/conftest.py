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
