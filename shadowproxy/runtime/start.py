"""What a serving process sets before its event loop starts: uvloop, the allocator.

``shadowproxy run`` in one process and each worker of ``--workers N`` call
``prepare_process`` first: uvloop's event loop when it is installed (the
asyncio loop otherwise), and the allocator thresholds of ``shadow.allocator``.
"""

from __future__ import annotations

import asyncio

from shadowproxy.shadow.allocator import keep_freed_memory

__all__ = ["prepare_process"]


def prepare_process() -> None:
    """Choose the event loop and tune the allocator, once per process before it serves."""
    keep_freed_memory()
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
