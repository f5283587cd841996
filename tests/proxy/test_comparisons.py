"""Comparisons: small or equal pairs inline on the loop, large ones in the worker process."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import pickle
import signal
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from shadowproxy.compare import Comparator
from shadowproxy.compare.rules import CompareRules
from shadowproxy.model import Exchange, Observation, Outcome, RequestFacts, Verdict
from shadowproxy.shadow import compare_worker
from shadowproxy.shadow.compare_worker import serve
from shadowproxy.shadow.comparisons import (
    MAX_IN_FLIGHT,
    MAX_REPLY_BYTES,
    Comparisons,
    ComparisonWorkerError,
    _Replies,
)
from shadowproxy.shadow.flat import flat_exchange, flat_verdict, verdict_of
from shadowproxy.shadow.wire import frame, pickled
from tests.compare.factories import make_stream
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


LARGE = _exchange({"a": 1, "pad": PAD}, {"a": 2, "pad": PAD})
WHOLE = (None, None, None)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class TestComparisons:
    """Where the comparison runs never changes the verdict."""

    async def test_small_and_equal_inline_large_in_the_worker_process(self) -> None:
        """Only a large pair that differs goes to the worker process, with the same verdict."""
        comparisons = Comparisons(inline_max_bytes=64)
        inline = comparisons._comparator._recall
        try:
            small = await comparisons.compare(_exchange({"a": 1}, {"a": 2}), CompareRules())
            same = await comparisons.compare(
                _exchange({"a": 1, "pad": PAD}, {"a": 1, "pad": PAD}), CompareRules()
            )
            assert comparisons._worker is None
            big = await comparisons.compare(LARGE, CompareRules())
            assert comparisons._worker is not None
            worker = comparisons._worker.pid
        finally:
            await comparisons.aclose()
        # Only the small pair was diffed here: the equal one took the fast path.
        assert (inline.hits, inline.misses) == (0, 1)
        assert worker != os.getpid()
        assert same.outcome is Outcome.MATCH
        assert big is not None
        assert small is not None and same is not None
        assert small.outcome is big.outcome is Outcome.DIVERGED
        assert [d.path for d in small.differences] == [d.path for d in big.differences] == ["$.a"]
        assert small == big
        assert not _alive(worker)

    async def test_equal_large_bodies_reach_the_engine_as_one_object(self) -> None:
        """The engine's own equality check is then by identity: a 50 KB body is read once."""
        comparisons = Comparisons(inline_max_bytes=64)
        document = {"a": 1, "pad": "x" * 5000}
        large = _exchange(document, document)
        small = _exchange({"a": 1}, {"a": 1})
        assert large.candidate.body is not large.legacy.body
        shared = comparisons._inline(large)
        assert shared is not None
        assert shared.candidate.body is shared.legacy.body == large.candidate.body
        assert shared.candidate == large.candidate.with_body(large.legacy.body)
        assert comparisons._inline(small) is small
        verdict = await comparisons.compare(large, CompareRules())
        assert verdict is not None and verdict.outcome is Outcome.MATCH
        assert comparisons._worker is None

    async def test_large_streams_go_to_the_worker(self) -> None:
        """A stream's events are parsed whatever they hold: a large window never runs inline."""
        small = [("tick", {"a": 1}, None, 1.0)]
        large = [("tick", {"a": 1, "pad": PAD * 20}, None, 1.0)]
        facts = RequestFacts("id", "GET", "/x", "", "/x", "default", 0.0)
        comparisons = Comparisons(inline_max_bytes=1024)
        try:
            same = Exchange(facts, make_stream(small), make_stream(small))
            assert await comparisons.compare(same, CompareRules()) is not None
            assert comparisons._worker is None
            verdict = await comparisons.compare(
                Exchange(facts, make_stream(large), make_stream(large)), CompareRules()
            )
            assert comparisons._worker is not None
        finally:
            await comparisons.aclose()
        assert verdict is not None
        assert verdict.outcome is Outcome.MATCH

    async def test_small_compressed_pairs_go_to_the_worker(self) -> None:
        """A few KB of gzip may decode to a megabyte, so a differing pair never runs inline."""
        gzip_json = (*JSON, ("Content-Encoding", "GZIP"))

        def gzipped(document: object) -> Observation:
            return Observation(200, gzip_json, gzip.compress(orjson.dumps(document)))

        facts = RequestFacts("id", "GET", "/x", "", "/x", "default", 0.0)
        pad = "x" * 100_000
        exchange = Exchange(facts, gzipped({"a": 1, "pad": pad}), gzipped({"a": 2, "pad": pad}))
        assert len(exchange.legacy.body) < 1024
        comparisons = Comparisons(inline_max_bytes=1024)
        try:
            verdict = await comparisons.compare(exchange, CompareRules())
            assert comparisons._worker is not None
        finally:
            await comparisons.aclose()
        assert verdict is not None
        assert [d.path for d in verdict.differences] == ["$.a"]

    async def test_rules_cross_to_the_worker_and_answers_keep_their_order(self) -> None:
        """Concurrent large pairs each get their own verdict; route rules travel with them."""
        comparisons = Comparisons(inline_max_bytes=64)
        ignore_a = CompareRules(ignore=("$.a",))
        try:
            verdicts = await asyncio.gather(
                *(
                    comparisons.compare(
                        _exchange({"a": n, "pad": PAD}, {"a": n + 1, "pad": PAD}),
                        ignore_a if n % 2 else CompareRules(),
                    )
                    for n in range(MAX_IN_FLIGHT)
                )
            )
        finally:
            await comparisons.aclose()
        assert [v.outcome if v else None for v in verdicts] == [
            Outcome.DIVERGED,
            Outcome.NOISE,
        ] * (MAX_IN_FLIGHT // 2)
        assert [v.differences[0].legacy if v else None for v in verdicts] == list(
            range(MAX_IN_FLIGHT)
        )

    async def test_closing_answers_what_was_sent_first(self) -> None:
        """``aclose`` closes the process's stdin; what it was sent before is still answered."""
        comparisons = Comparisons(inline_max_bytes=64)
        await comparisons.compare(LARGE, CompareRules())
        sent = _exchange({"a": 3, "pad": PAD}, {"a": 4, "pad": PAD})
        verdict, _ = await asyncio.gather(
            comparisons.compare(sent, CompareRules()), comparisons.aclose()
        )
        assert verdict is not None
        assert (verdict.differences[0].legacy, verdict.differences[0].candidate) == (3, 4)

    async def test_a_full_worker_drops_instead_of_queueing(self) -> None:
        """Past the in-flight bound a large pair is refused at once; small ones still run inline."""
        comparisons = Comparisons(inline_max_bytes=64)
        try:
            verdicts = await asyncio.gather(
                *(comparisons.compare(LARGE, CompareRules()) for _ in range(MAX_IN_FLIGHT + 1)),
                comparisons.compare(_exchange({"a": 1}, {"a": 2}), CompareRules()),
            )
        finally:
            await comparisons.aclose()
        assert [v is None for v in verdicts] == [False] * MAX_IN_FLIGHT + [True, False]

    async def test_a_dead_worker_is_replaced(self) -> None:
        """If the worker process dies, its comparison fails clearly and the next one works."""
        comparisons = Comparisons(inline_max_bytes=64)
        try:
            await comparisons.compare(LARGE, CompareRules())
            first = comparisons._worker
            assert first is not None
            os.kill(first.pid, signal.SIGKILL)
            with pytest.raises(ComparisonWorkerError, match="exited"):
                await comparisons.compare(LARGE, CompareRules())
            verdict = await comparisons.compare(LARGE, CompareRules())
            assert comparisons._worker is not first
        finally:
            await comparisons.aclose()
        assert verdict is not None and verdict.outcome is Outcome.DIVERGED

    async def test_worker_exits_when_its_parent_is_killed(self, tmp_path: Path) -> None:
        """A proxy worker killed with SIGKILL leaves no comparison process behind."""
        script = tmp_path / "parent.py"
        script.write_text(
            textwrap.dedent(
                """
                import asyncio, os, signal
                from shadowproxy.compare.rules import CompareRules
                from shadowproxy.model import Exchange, Observation, RequestFacts
                from shadowproxy.shadow.comparisons import Comparisons

                async def main():
                    comparisons = Comparisons(inline_max_bytes=1)
                    json = (("Content-Type", "application/json"),)
                    facts = RequestFacts("id", "GET", "/x", "", "/x", "default", 0.0)
                    exchange = Exchange(
                        facts, Observation(200, json, b"[1]"), Observation(200, json, b"[2]")
                    )
                    await comparisons.compare(exchange, CompareRules())
                    print(comparisons._worker.pid, flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)

                asyncio.run(main())
                """
            )
        )
        parent = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        out, _ = await parent.communicate()
        assert parent.returncode == -signal.SIGKILL
        worker = int(out)
        await eventually(lambda: not _alive(worker))


class TestWorkerLoop:
    def test_an_engine_failure_is_answered_not_fatal(self) -> None:
        """A comparison that raises is reported back, and the next request is still served."""
        unpicklable_rules = object()
        requests = io.BytesIO(
            b"".join(
                (
                    *frame((flat_exchange(LARGE), pickled(unpicklable_rules), WHOLE)),
                    *frame((flat_exchange(LARGE), pickled(CompareRules()), WHOLE)),
                )
            )
        )
        replies = io.BytesIO()
        serve(requests, replies)
        replies.seek(0)
        answers = []
        while header := replies.read(8):
            answers.append(pickle.loads(replies.read(int.from_bytes(header, "big"))))
        assert [ok for ok, _ in answers] == [False, True]
        assert "AttributeError" in answers[0][1]
        assert verdict_of(answers[1][1]).outcome is Outcome.DIVERGED

    def test_equal_rules_are_one_object_so_a_pair_seen_before_is_recalled(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Equal rules pickled apart are one object: the engine and its recall key on identity."""
        made: list[Comparator] = []

        def kept() -> Comparator:
            made.append(Comparator())
            return made[-1]

        monkeypatch.setattr(compare_worker, "Comparator", kept)
        requests = io.BytesIO(
            b"".join(
                b"".join(frame((flat_exchange(LARGE), pickled(CompareRules()), WHOLE)))
                for _ in range(3)
            )
        )
        serve(requests, io.BytesIO())
        assert (made[0]._recall.hits, made[0]._recall.misses) == (2, 1)


class TestReplies:
    """The proxy worker's end of the pipe: framing, order, and a process that misbehaves."""

    @staticmethod
    def _waiting(replies: _Replies, count: int) -> list[asyncio.Future[Verdict]]:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Verdict]] = [loop.create_future() for _ in range(count)]
        replies.waiting.extend(futures)
        return futures

    async def test_replies_cut_anywhere_answer_in_request_order(self) -> None:
        replies = _Replies()
        first, second, third = self._waiting(replies, 3)
        matched, diverged = Verdict(Outcome.MATCH), Comparator().compare(LARGE, CompareRules())
        data = b"".join(
            b"".join(frame(reply))
            for reply in (
                (True, flat_verdict(matched)),
                (False, "ValueError: engine bug"),
                (True, flat_verdict(diverged)),
            )
        )
        for at in range(len(data)):
            replies.pipe_data_received(1, data[at : at + 1])
        assert first.result() == matched
        with pytest.raises(ComparisonWorkerError, match="engine bug"):
            second.result()
        assert third.result() == diverged
        assert not replies.broken

    async def test_an_unreadable_reply_fails_every_waiting_request(self) -> None:
        replies = _Replies()
        futures = self._waiting(replies, 2)
        replies.pipe_data_received(1, (5).to_bytes(8, "big") + b"junk!")
        assert replies.broken
        for future in futures:
            with pytest.raises(ComparisonWorkerError, match="unreadable"):
                future.result()

    async def test_an_oversized_reply_is_not_awaited(self) -> None:
        """The announced length alone condemns it: nothing is buffered toward it."""
        replies = _Replies()
        (future,) = self._waiting(replies, 1)
        replies.pipe_data_received(1, (MAX_REPLY_BYTES + 1).to_bytes(8, "big"))
        assert replies.broken
        with pytest.raises(ComparisonWorkerError, match="byte reply"):
            future.result()

    async def test_the_end_of_stdout_fails_what_waits(self) -> None:
        """Not the exit itself: replies still in the pipe are read first."""
        replies = _Replies()
        (future,) = self._waiting(replies, 1)
        replies.process_exited()
        replies.pipe_connection_lost(0, None)
        assert replies.exited.done() and not future.done()
        replies.pipe_connection_lost(1, None)
        with pytest.raises(ComparisonWorkerError, match="exited"):
            future.result()
