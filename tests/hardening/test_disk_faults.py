"""A full or read-only evidence directory: records dropped and counted, traffic served."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from aiohttp import web

from shadowproxy.sinks import writer as writer_module
from tests.hardening.harden import fetch
from tests.support import backend, eventually, json_ok, make_settings, running_proxy

REQUESTS = 10
HAS_DEV_FULL = Path("/dev/full").exists()


async def _differs(request: web.Request) -> web.Response:
    return web.json_response({"ok": False})


def _read_only(path: Path) -> int:
    raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))


def _full(path: Path) -> int:
    return os.open("/dev/full", os.O_WRONLY)


class TestUnwritableEvidence:
    """Every wanted record is dropped as ``write_error``; every request is still answered."""

    @pytest.mark.parametrize("opener", [_read_only, _full], ids=["read-only", "full"])
    async def test_dropped_counted_and_served(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opener: object
    ) -> None:
        """Ten diverging exchanges: ten 200s, ten write_error drops, nothing written."""
        if opener is _full and not HAS_DEV_FULL:
            pytest.skip("/dev/full is needed to simulate a full disk")
        # The tests run as root, which ignores permission bits; fail where the writer opens.
        monkeypatch.setattr(writer_module, "open_private", opener)
        async with backend(json_ok) as legacy, backend(_differs) as candidate:
            async with running_proxy(make_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                statuses = [(await fetch(f"{proxy.url}/r/{n}"))[0] for n in range(REQUESTS)]
                await eventually(
                    lambda: (
                        proxy.metric("shadowproxy_jsonl_dropped_total", reason="write_error")
                        == REQUESTS
                    )
                )
                written = proxy.metric("shadowproxy_jsonl_records_total")
                diverged = proxy.metric(
                    "shadowproxy_comparisons_total",
                    route="/r/{id}",
                    domain="default",
                    verdict="diverged",
                )
        assert statuses == [200] * REQUESTS
        assert (written, diverged) == (0, REQUESTS)
