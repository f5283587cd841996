"""One start of ``shadowproxy run --workers 2`` on port 0, admin on port 0, checked end to end.

``python -m tests.proxy.workers_start`` exits 0 when the supervisor announced
itself (it does once every worker listens), ``/status`` counts two ready
workers, the proxy port answers (502: legacy refuses) and SIGTERM stops it
with exit code 0. ``test_workers.py`` runs it again and again, each time in a
network namespace of its own with five ephemeral ports, where the port the
supervisor picks is the one the admin listener would get next if it were
released.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp

from tests.support import held_port, proxy_process


async def _start_once() -> None:
    with held_port() as legacy:
        refused = f"http://127.0.0.1:{legacy.getsockname()[1]}"
        async with proxy_process(
            "--legacy", refused, "--candidate", refused, "--workers", "2"
        ) as proxy:
            async with aiohttp.ClientSession() as session:
                async with session.get(proxy.admin + "/status") as response:
                    status = await response.json()
                async with session.get(proxy.url + "/") as response:
                    answer = (response.status, await response.json())
            assert status["workers_ready"] == 2, status
            assert answer == (502, {"error": "refused", "upstream": "legacy"}), answer
            assert await proxy.terminate() == 0


if __name__ == "__main__":
    asyncio.run(_start_once())
    sys.exit(0)
