"""Helpers shared by the hardening tests: reading evidence strictly, plain client calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from tests.support import eventually

__all__ = ["exchange_records", "fetch", "strict_lines"]


def strict_lines(log_dir: Path) -> list[dict[str, Any]]:
    """Every JSONL record in ``log_dir``, each line decoded as strict UTF-8 and parsed as JSON."""
    records = []
    for path in sorted(log_dir.glob("shadow-*.jsonl*")):
        for line in path.read_bytes().splitlines():
            if line.strip():
                records.append(json.loads(line.decode("utf-8", errors="strict")))
    return records


async def exchange_records(log_dir: Path, count: int = 1) -> list[dict[str, Any]]:
    """Wait (bounded) until ``count`` exchange records are on disk; returns them."""
    found: list[dict[str, Any]] = []

    def enough() -> bool:
        found[:] = [r for r in strict_lines(log_dir) if r["type"] == "exchange"]
        return len(found) >= count

    await eventually(enough)
    return found


async def fetch(url: str, method: str = "GET", **kwargs: Any) -> tuple[int, bytes]:
    """One request on a fresh session; the status and the body bytes."""
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.request(method, URL(url, encoded=True), **kwargs) as response:
            return response.status, await response.read()
