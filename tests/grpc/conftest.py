"""Fixtures of the gRPC tests: the generated Shop code, once per session."""

from __future__ import annotations

import pytest

from tests.grpc.shop import ShopCode, generate


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> ShopCode:
    """The Shop contract's generated messages, stubs and descriptor set."""
    return generate(tmp_path_factory.mktemp("shop"))
