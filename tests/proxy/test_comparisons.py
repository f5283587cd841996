"""Comparisons: small pairs inline on the loop, large pairs in the worker process."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from shadowproxy.compare import Comparator
from shadowproxy.compare.rules import CompareRules
from shadowproxy.model import Exchange, Observation, Outcome, RequestFacts, Verdict
from shadowproxy.proxy.comparisons import Comparisons, ComparisonWorkerLostError
from tests.support import eventually

JSON = (("Content-Type", "application/json"),)
PAD = "x" * 100
ROOT = Path(__file__).resolve().parents[2]


def _exchange(legacy: object, candidate: object) -> Exchange:
    facts = RequestFacts("id", "GET", "/x", "", "/x", "default", 0.0)
    return Exchange(
        facts,
        Observation(200, JSON, orjson.dumps(legacy)),
        Observation(200, JSON, orjson.dumps(candidate)),
    )


class _Counting:
    """Delegates to a Comparator and counts the calls made in this process."""

    def __init__(self, comparator: Comparator) -> None:
        self._comparator = comparator
        self.calls = 0

    def compare(self, exchange: Exchange, rules: CompareRules) -> Verdict:
        self.calls += 1
        return self._comparator.compare(exchange, rules)


class TestComparisons:
    """Where the comparison runs never changes the verdict."""

    async def test_small_inline_large_in_the_worker_process(self) -> None:
        """A pair over the inline bound is compared in another process, with the same verdict."""
        comparisons = Comparisons(inline_max_bytes=64)
        inline = _Counting(comparisons._inline)
        comparisons._inline = inline  # type: ignore[assignment]
        try:
            small = await comparisons.compare(_exchange({"a": 1}, {"a": 2}), CompareRules())
            assert comparisons._executor is None
            big = await comparisons.compare(
                _exchange({"a": 1, "pad": PAD}, {"a": 2, "pad": PAD}), CompareRules()
            )
            assert comparisons._executor is not None
            worker_pids = list(comparisons._executor._processes)  # type: ignore[attr-defined]
        finally:
            comparisons.close()
        assert inline.calls == 1
        assert worker_pids and os.getpid() not in worker_pids
        assert small.outcome is big.outcome is Outcome.DIVERGED
        assert [d.path for d in small.differences] == [d.path for d in big.differences] == ["$.a"]

    async def test_rules_cross_to_the_worker(self) -> None:
        """Route rules travel with the exchange: an ignored path is noise in the worker too."""
        comparisons = Comparisons(inline_max_bytes=64)
        try:
            verdict = await comparisons.compare(
                _exchange({"a": 1, "pad": PAD}, {"a": 2, "pad": PAD}),
                CompareRules(ignore=("$.a",)),
            )
        finally:
            comparisons.close()
        assert verdict.outcome is Outcome.NOISE
        assert [(d.path, d.noise) for d in verdict.differences] == [("$.a", True)]

    async def test_a_dead_worker_is_replaced(self) -> None:
        """If the worker process dies, that comparison fails clearly and the next one works."""
        comparisons = Comparisons(inline_max_bytes=64)
        large = _exchange({"a": 1, "pad": PAD}, {"a": 2, "pad": PAD})
        try:
            await comparisons.compare(large, CompareRules())
            executor = comparisons._executor
            assert executor is not None
            for process in list(executor._processes.values()):  # type: ignore[attr-defined]
                process.kill()
                process.join()
            with pytest.raises(ComparisonWorkerLostError):
                await comparisons.compare(large, CompareRules())
            verdict = await comparisons.compare(large, CompareRules())
            assert comparisons._executor is not executor
        finally:
            comparisons.close()
        assert verdict.outcome is Outcome.DIVERGED

    async def test_worker_exits_when_its_parent_is_killed(self, tmp_path: Path) -> None:
        """A proxy worker killed with SIGKILL leaves no comparison process behind."""
        script = tmp_path / "parent.py"
        script.write_text(
            textwrap.dedent(
                """
                import asyncio, os, signal
                from shadowproxy.compare.rules import CompareRules
                from shadowproxy.model import Exchange, Observation, RequestFacts
                from shadowproxy.proxy.comparisons import Comparisons

                async def main():
                    comparisons = Comparisons(inline_max_bytes=1)
                    json = (("Content-Type", "application/json"),)
                    facts = RequestFacts("id", "GET", "/x", "", "/x", "default", 0.0)
                    exchange = Exchange(
                        facts, Observation(200, json, b"[1]"), Observation(200, json, b"[2]")
                    )
                    await comparisons.compare(exchange, CompareRules())
                    print(*comparisons._executor._processes, flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)

                if __name__ == "__main__":
                    asyncio.run(main())
                """
            )
        )
        parent = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        out, _ = await parent.communicate()
        assert parent.returncode == -9
        (worker,) = map(int, out.split())

        def gone() -> bool:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                return True
            return False

        await eventually(gone)
