"""Server-Sent Events through the proxy: passed through unchanged, shadowed as event windows."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.streams.sse_support import (
    EVENT_STREAM,
    Script,
    event,
    exchanges,
    kinds,
    read_stream,
    sse_backend,
)
from tests.support import backend, eventually, json_ok, make_settings, running_proxy

# Comments, CR LF and bare CR line ends, a BOM, a multi-line event: what a parser must not touch.
AWKWARD = [
    (0.0, b"\xef\xbb\xbf: hello\r\n\r\n"),
    (0.0, event(1)),
    (0.01, b'id: 2\revent: tick\rdata: {"n": 2}\r\r'),
    (0.01, b"data: line one\ndata: line two\n\n"),
    (0.01, b": heartbeat\n\n"),
    (0.01, event(3)),
]


def _settings(legacy: str, candidate: str, tmp_path: Path, **document: Any) -> Any:
    doc = {"evidence": {"sample_matches_percent": 100}, **document}
    return make_settings(legacy, candidate, tmp_path, doc)


class TestPassthrough:
    """The client's stream is legacy's, byte for byte and event by event."""

    async def test_curl_gets_legacys_bytes(self, tmp_path: Path) -> None:
        """``curl -N`` through the proxy reads exactly the bytes legacy wrote, and they match."""
        sent = b"".join(data for _, data in AWKWARD)
        async with (
            sse_backend(Script(AWKWARD)) as legacy,
            sse_backend(Script(AWKWARD)) as candidate,
            running_proxy(_settings(legacy.url, candidate.url, tmp_path)) as proxy,
        ):
            got = await read_stream(f"{proxy.url}/events", "Accept: text/event-stream")
            assert got == sent
            await eventually(lambda: len(exchanges(tmp_path)) == 1)
        (record,) = exchanges(tmp_path)
        assert record["verdict"] == "match"
        assert record["stream"]["kind"] == "sse"
        assert record["stream"]["legacy"]["events"] == 4
        assert record["stream"]["legacy"]["ended"] == "end"

    async def test_each_event_reaches_the_client_before_the_next_is_sent(
        self, tmp_path: Path
    ) -> None:
        """Unbuffered: the client reads event n while legacy waits for it to ask for n + 1."""
        asked: asyncio.Queue[int] = asyncio.Queue()

        async def paced(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for n in range(1, 6):
                await response.write(event(n))
                await asked.get()
            return response

        async with (
            backend(paced) as legacy,
            sse_backend(Script([(0, event(n)) for n in range(1, 6)])) as candidate,
            running_proxy(_settings(legacy.url, candidate.url, tmp_path)) as proxy,
            aiohttp.ClientSession() as session,
            session.get(f"{proxy.url}/events", headers=EVENT_STREAM) as response,
        ):
            seen = b""
            for n in range(1, 6):
                while event(n) not in seen:
                    seen += await response.content.readany()
                asked.put_nowait(n)
            await eventually(lambda: len(exchanges(tmp_path)) == 1)
        assert exchanges(tmp_path)[0]["verdict"] == "match"


class TestDivergences:
    """Each kind of stream divergence is classified and recorded as one verdict per stream."""

    async def test_out_of_order_dropped_added_and_slow(self, tmp_path: Path) -> None:
        """A candidate that swaps two events, drops one, adds one and starts late."""
        legacy_steps = [(0.0, event(n)) for n in range(1, 7)]
        candidate_steps = [
            (0.4, event(1)),
            (0.0, event(3)),
            (0.0, event(2)),
            (0.0, event(4)),
            (0.0, event(6)),
            (0.0, event(99, extra=True)),
        ]
        async with (
            sse_backend(Script(legacy_steps)) as legacy,
            sse_backend(Script(candidate_steps)) as candidate,
            running_proxy(_settings(legacy.url, candidate.url, tmp_path)) as proxy,
        ):
            got = await read_stream(f"{proxy.url}/events", "Accept: text/event-stream")
            assert got == b"".join(data for _, data in legacy_steps)
            await eventually(lambda: len(exchanges(tmp_path)) == 1)
        (record,) = exchanges(tmp_path)
        assert record["verdict"] == "diverged"
        assert sorted(kinds(record)) == [
            "event_extra",
            "event_missing",
            "event_order",
            "first_event",
        ]
        by_kind = {d["kind"]: d for d in record["differences"]}
        assert by_kind["event_missing"]["path"] == "$[4].tick"
        assert by_kind["event_missing"]["legacy"]["id"] == "5"
        assert by_kind["event_extra"]["candidate"]["id"] == "99"
        assert by_kind["first_event"]["candidate"] >= 400
        assert record["classes"] == ["semantic", "structural", "timing"]
        assert record["stream"]["candidate"]["events"] == 6

    async def test_event_data_is_compared_with_the_engine(self, tmp_path: Path) -> None:
        """JSON data differences carry the event's position and type before their path."""
        async with (
            sse_backend(Script([(0, event(1, total=10))])) as legacy,
            sse_backend(Script([(0, event(1, total=11))])) as candidate,
            running_proxy(_settings(legacy.url, candidate.url, tmp_path)) as proxy,
        ):
            await read_stream(f"{proxy.url}/events", "Accept: text/event-stream")
            await eventually(lambda: len(exchanges(tmp_path)) == 1)
        (difference,) = exchanges(tmp_path)[0]["differences"]
        assert (difference["kind"], difference["path"]) == ("value", "$[0].tick.total")
        assert (difference["legacy"], difference["candidate"]) == (10, 11)

    async def test_json_patch_streams_compare_the_documents(self, tmp_path: Path) -> None:
        """Patches batched differently build the same document: a match."""
        one = [
            (0, b'event: patch\ndata: [{"op": "add", "path": "/a", "value": [1]}]\n\n'),
            (0, b'event: patch\ndata: [{"op": "add", "path": "/a/-", "value": 2}]\n\n'),
        ]
        other = [
            (0, b'event: patch\ndata: [{"op": "add", "path": "/a", "value": []},'
                b' {"op": "add", "path": "/a/0", "value": 1},'
                b' {"op": "add", "path": "/a/1", "value": 2}]\n\n'),
        ]  # fmt: skip
        rules = {"compare": {"json_patch": True}}
        async with (
            sse_backend(Script(one)) as legacy,
            sse_backend(Script(other)) as candidate,
            running_proxy(_settings(legacy.url, candidate.url, tmp_path, **rules)) as proxy,
        ):
            await read_stream(f"{proxy.url}/events", "Accept: text/event-stream")
            await eventually(lambda: len(exchanges(tmp_path)) == 1)
        assert exchanges(tmp_path)[0]["verdict"] == "match"


class TestWindow:
    """The comparison covers a bounded window; then the copy is closed and the verdict filed."""

    async def test_endless_stream_compared_after_max_events(self, tmp_path: Path) -> None:
        """An endless stream is compared after its first N events, while the client still reads."""
        legacy_script = Script([], hold=True, every_s=0.01)
        candidate_script = Script([], hold=True, every_s=0.01)
        routes = [{"match": "/events", "stream": {"max_events": 5, "max_seconds": 30}}]
        async with (
            sse_backend(legacy_script) as legacy,
            sse_backend(candidate_script) as candidate,
            running_proxy(_settings(legacy.url, candidate.url, tmp_path, routes=routes)) as proxy,
            aiohttp.ClientSession() as session,
            session.get(f"{proxy.url}/events", headers=EVENT_STREAM) as response,
        ):
            await eventually(lambda: len(exchanges(tmp_path)) == 1)
            async with asyncio.timeout(10):
                await candidate_script.closed.wait()
            # The client's stream goes on after the window.
            assert b"id: " in await response.content.readany()
            assert proxy.metric("shadowproxy_shadow_inflight") == 0
            assert not legacy_script.closed.is_set()
        (record,) = exchanges(tmp_path)
        assert record["stream"]["legacy"] == {
            **record["stream"]["legacy"],
            "events": 5,
            "ended": "events",
        }
        assert record["stream"]["candidate"]["events"] >= 5
        assert record["verdict"] in {"match", "diverged"}
        assert not [k for k in kinds(record) if k.startswith("event_") and k != "event_gap"]

    async def test_quiet_stream_compared_after_max_seconds(self, tmp_path: Path) -> None:
        """A stream of heartbeats only closes its window by time: a match, not a timeout."""
        quiet = [(0, b": keep-alive\n\n")]
        routes = [{"match": "/events", "stream": {"max_seconds": 0.3, "grace_s": 0.1}}]
        async with (
            sse_backend(Script(quiet, hold=True)) as legacy,
            sse_backend(Script(quiet, hold=True)) as candidate,
            running_proxy(_settings(legacy.url, candidate.url, tmp_path, routes=routes)) as proxy,
            aiohttp.ClientSession() as session,
            session.get(f"{proxy.url}/events", headers=EVENT_STREAM),
        ):
            await eventually(lambda: len(exchanges(tmp_path)) == 1)
        (record,) = exchanges(tmp_path)
        assert record["verdict"] == "match"
        assert record["stream"]["legacy"]["ended"] == "time"
        assert record["stream"]["candidate"]["ended"] == "time"
        assert record["candidate"]["error"] is None


class TestBounds:
    """Streams beyond their bound are skipped and counted; unrecognised ones never hold a slot."""

    async def test_streams_beyond_max_streams_are_skipped(self, tmp_path: Path) -> None:
        """With one stream slot, a second concurrent stream is not shadowed (``streams_full``)."""
        endless = Script([], hold=True, every_s=0.05)
        async with sse_backend(endless) as legacy, sse_backend(endless) as candidate:
            settings = _settings(
                legacy.url,
                candidate.url,
                tmp_path,
                shadow={"max_streams": 1},
                streams={"max_seconds": 30, "max_events": 10_000},
            )
            async with (
                running_proxy(settings) as proxy,
                aiohttp.ClientSession() as session,
                session.get(f"{proxy.url}/a", headers=EVENT_STREAM) as first,
                session.get(f"{proxy.url}/b", headers=EVENT_STREAM) as second,
            ):
                assert await first.content.readany()
                assert await second.content.readany()
                await eventually(
                    lambda: (
                        proxy.metric("shadowproxy_shadow_skipped_total", reason="streams_full") == 1
                    )
                )
                assert proxy.metric("shadowproxy_shadow_inflight") == 1

    async def test_unrecognised_stream_frees_its_slot_at_once(self, tmp_path: Path) -> None:
        """An event stream answering a request that did not ask for one counts as ``stream``."""
        endless = Script([], hold=True, every_s=0.05)
        async with (
            sse_backend(endless) as legacy,
            backend(json_ok) as candidate,
            running_proxy(_settings(legacy.url, candidate.url, tmp_path)) as proxy,
            aiohttp.ClientSession() as session,
            session.get(f"{proxy.url}/events") as response,
        ):
            assert await response.content.readany()
            await eventually(
                lambda: proxy.metric("shadowproxy_shadow_skipped_total", reason="stream") == 1
            )
            await eventually(lambda: proxy.metric("shadowproxy_shadow_inflight") == 0)

    async def test_route_marks_every_get_a_stream(self, tmp_path: Path) -> None:
        """``stream.sse: true`` shadows a client that sends no Accept header (plain curl)."""
        steps = [(0, event(n)) for n in range(1, 4)]
        routes = [{"match": "/events", "stream": {"sse": True}}]
        async with (
            sse_backend(Script(steps)) as legacy,
            sse_backend(Script(steps)) as candidate,
            running_proxy(_settings(legacy.url, candidate.url, tmp_path, routes=routes)) as proxy,
        ):
            await read_stream(f"{proxy.url}/events")
            await eventually(lambda: len(exchanges(tmp_path)) == 1)
        assert exchanges(tmp_path)[0]["stream"]["candidate"]["events"] == 3


class TestLatency:
    """Per-event latency added by the proxy is no worse than what it adds to a plain request."""

    async def test_event_latency_added_is_within_plain_requests(self, tmp_path: Path) -> None:
        """Medians of interleaved rounds: event (through - direct) <= plain (through - direct)."""
        rounds = 40
        sent: dict[str, asyncio.Queue[int]] = {}

        async def on_demand(request: web.Request) -> web.StreamResponse:
            if request.headers.get("Accept") != "text/event-stream":
                return await json_ok(request)
            queue = sent.setdefault(request.query["client"], asyncio.Queue())
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            while True:
                n = await queue.get()
                await response.write(event(n))

        async def event_ms(response: aiohttp.ClientResponse, client: str, n: int) -> float:
            started = time.perf_counter()
            sent[client].put_nowait(n)
            seen = b""
            while event(n) not in seen:
                seen += await response.content.readany()
            return (time.perf_counter() - started) * 1000

        async def plain_ms(session: aiohttp.ClientSession, url: str) -> float:
            started = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
            return (time.perf_counter() - started) * 1000

        routes = [{"match": "/events", "stream": {"max_events": 10_000, "max_seconds": 60}}]
        async with (
            backend(on_demand) as legacy,
            sse_backend(Script([], hold=True)) as candidate,
            running_proxy(_settings(legacy.url, candidate.url, tmp_path, routes=routes)) as proxy,
            aiohttp.ClientSession() as session,
            session.get(f"{proxy.url}/events?client=p", headers=EVENT_STREAM) as through,
            session.get(f"{legacy.url}/events?client=d", headers=EVENT_STREAM) as direct,
        ):
            await eventually(lambda: {"p", "d"} <= set(sent))
            times: dict[str, list[float]] = {"ep": [], "ed": [], "pp": [], "pd": []}
            for n in range(rounds):
                times["ep"].append(await event_ms(through, "p", n))
                times["ed"].append(await event_ms(direct, "d", n))
                times["pp"].append(await plain_ms(session, f"{proxy.url}/plain/{n}"))
                times["pd"].append(await plain_ms(session, f"{legacy.url}/plain/{n}"))
        median = {name: statistics.median(values) for name, values in times.items()}
        event_added = median["ep"] - median["ed"]
        plain_added = median["pp"] - median["pd"]
        assert event_added <= plain_added, median


class TestCutover:
    """In candidate mode the candidate's stream reaches the client and legacy's is the copy."""

    async def test_reverse_shadow_of_a_stream(self, tmp_path: Path) -> None:
        """The client reads the candidate's events; the record compares legacy's copy with them."""
        routes = [{"match": "/events", "mode": "candidate"}]
        async with (
            sse_backend(Script([(0, event(1)), (0, event(2))])) as legacy,
            sse_backend(Script([(0, event(1)), (0, event(3))])) as candidate,
            running_proxy(_settings(legacy.url, candidate.url, tmp_path, routes=routes)) as proxy,
        ):
            got = await read_stream(f"{proxy.url}/events", "Accept: text/event-stream")
            assert got == event(1) + event(3)
            await eventually(lambda: len(exchanges(tmp_path)) == 1)
        (record,) = exchanges(tmp_path)
        assert record["answered_by"] == "candidate"
        assert record["stream"]["legacy"]["events"] == 2
        assert [(d["kind"], d["path"]) for d in record["differences"]] == [
            ("event_id", "$[1].tick"),
            ("value", "$[1].tick.n"),
        ]
