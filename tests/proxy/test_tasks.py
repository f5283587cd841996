"""TaskPool: bounded, strong references, never waits, cancels on close."""

from __future__ import annotations

import asyncio

from shadowproxy.shadow.tasks import TaskPool


class TestTaskPool:
    """The only way background work is spawned."""

    async def test_full_pool_refuses_without_waiting(self) -> None:
        """Beyond the limit spawn returns False and the coroutine is closed, not run."""
        gate = asyncio.Event()
        sizes: list[int] = []
        pool = TaskPool(2, on_change=sizes.append)
        ran: list[int] = []

        async def job(n: int) -> None:
            await gate.wait()
            ran.append(n)

        assert pool.spawn(job(1)) and pool.spawn(job(2))
        assert not pool.spawn(job(3))
        assert len(pool) == 2
        gate.set()
        assert await pool.close(1.0) == 0
        assert sorted(ran) == [1, 2]
        assert sizes[-1] == 0

    async def test_close_cancels_after_grace(self) -> None:
        """Tasks still running after the grace period are cancelled and awaited."""
        pool = TaskPool(4)
        cancelled = asyncio.Event()

        async def forever() -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        pool.spawn(forever())
        await asyncio.sleep(0)
        assert await pool.close(0.01) == 1
        assert cancelled.is_set()
        assert len(pool) == 0
        assert not pool.spawn(forever()), "a closed pool refuses work"
