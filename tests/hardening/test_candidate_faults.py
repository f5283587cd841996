"""A misbehaving candidate: every fault becomes evidence, none reaches the client."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path
from typing import Any

from aiohttp import web

from shadowproxy.settings import Settings
from tests.hardening.harden import exchange_records, fetch
from tests.relay import Fault, MiB, Toxic, relay, relay_process
from tests.support import RunningProxy, backend, eventually, make_settings, running_proxy

PAYLOAD = b'{"id": 7, "items": [1, 2, 3], "name": "widget"}'
CAP = 256 * 1024
TIMEOUT_S = 0.3


async def _payload(request: web.Request) -> web.Response:
    return web.Response(body=PAYLOAD, content_type="application/json")


def _settings(legacy: str, candidate: str, log_dir: Path, **doc: Any) -> Settings:
    shadow = {"grace_s": 0.5, "timeout_s": TIMEOUT_S, "compare_max_bytes": CAP}
    shadow.update(doc.pop("shadow", {}))
    # These tests classify content: on a loaded machine the candidate can also be over
    # twice as slow, and a timing class would join the one under test.
    compare = {"timing": {"absolute_ms": 600_000, "min_delta_ms": 600_000}}
    compare.update(doc.pop("compare", {}))
    return make_settings(legacy, candidate, log_dir, {"shadow": shadow, "compare": compare, **doc})


async def _one_record(legacy: str, candidate: str, tmp_path: Path, **doc: Any) -> dict[str, Any]:
    """Send one GET through a proxy in front of ``legacy`` and ``candidate``; its JSONL record."""
    async with running_proxy(_settings(legacy, candidate, tmp_path, **doc)) as proxy:
        status, _ = await fetch(proxy.url + "/items/1")
        assert status == 200, "the client always gets legacy's answer"
        (record,) = await exchange_records(tmp_path)
    return record


class TestHugeBody:
    """A 20 MB candidate answer is read up to the cap only."""

    async def _huge(self, tmp_path: Path, chunked: bool) -> None:
        async with backend(_payload) as legacy:
            toxic = Toxic(Fault.HUGE, huge_bytes=20 * MiB, chunked=chunked)
            async with relay_process(toxic) as candidate:
                tracemalloc.start()
                try:
                    record = await _one_record(legacy.url, candidate, tmp_path)
                    _, peak = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
        assert record["verdict"] == "error"
        assert record["candidate"]["error"] == "too_large"
        assert record["differences"] == []
        # Everything the proxy allocated meanwhile, buffers included: a fraction of the body.
        assert peak < 20 * MiB / 4, peak

    async def test_content_length(self, tmp_path: Path) -> None:
        """A declared 20 MB body is not read at all; the record says too_large."""
        await self._huge(tmp_path, chunked=False)

    async def test_chunked(self, tmp_path: Path) -> None:
        """A chunked 20 MB body is read to the cap, then dropped; memory stays bounded."""
        await self._huge(tmp_path, chunked=True)


class TestSlowAndBroken:
    """Hangs, drips, cut bodies, resets and refusals are errors with a reason."""

    async def test_hang_times_out_at_the_candidate_timeout(self, tmp_path: Path) -> None:
        """A candidate that never answers is a ``timeout`` error after shadow.timeout_s."""
        async with backend(_payload) as legacy, relay(toxic=Toxic(Fault.HANG)) as candidate:
            record = await _one_record(legacy.url, candidate.url, tmp_path)
        assert (record["verdict"], record["candidate"]["error"]) == ("error", "timeout")
        assert 1.0 <= record["candidate"]["ms"] / (TIMEOUT_S * 1000) < 3.0

    async def test_slow_drip_is_capped_by_the_total_timeout(self, tmp_path: Path) -> None:
        """A byte every 20 ms never trips the read timeout; the total timeout still ends it."""
        async with backend(_payload) as legacy, backend(_payload) as healthy:
            drip = Toxic(Fault.DRIP, drip_bytes=1, drip_interval_s=0.02)
            async with relay(healthy.url, drip) as candidate:
                record = await _one_record(legacy.url, candidate.url, tmp_path)
        # The whole answer would take over 4 s at this rate.
        assert (record["verdict"], record["candidate"]["error"]) == ("error", "timeout")
        assert record["candidate"]["ms"] / (TIMEOUT_S * 1000) < 3.0

    async def test_close_mid_body_is_incomplete_not_a_difference(self, tmp_path: Path) -> None:
        """A body cut short of its Content-Length is ``incomplete``, never a body difference."""

        async def big(request: web.Request) -> web.Response:
            return web.json_response({"rows": list(range(3000))})

        async with backend(big) as legacy, backend(big) as healthy:
            async with relay(healthy.url, Toxic(Fault.TRUNCATE, keep_bytes=2000)) as candidate:
                async with running_proxy(_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                    status, _ = await fetch(proxy.url + "/rows")
                    (record,) = await exchange_records(tmp_path)
                    errors = proxy.metric(
                        "shadowproxy_upstream_errors_total",
                        upstream="candidate",
                        reason="incomplete",
                    )
        assert status == 200
        assert (record["verdict"], record["candidate"]["error"]) == ("error", "incomplete")
        assert record["differences"] == []
        assert errors == 1

    async def test_reset_and_refused_are_counted(self, tmp_path: Path) -> None:
        """A reset and a refused connection count under their own upstream error reason."""
        async with backend(_payload) as legacy, relay(toxic=Toxic(Fault.RESET)) as candidate:
            async with running_proxy(_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                assert (await fetch(proxy.url + "/a"))[0] == 200
                await eventually(lambda: _errors(proxy, "reset") == 1)
                await candidate.set(Toxic(Fault.REFUSE))
                assert (await fetch(proxy.url + "/b"))[0] == 200
                await eventually(lambda: _errors(proxy, "refused") == 1)
                records = await exchange_records(tmp_path, 2)
        assert sorted(r["candidate"]["error"] for r in records) == ["refused", "reset"]


def _errors(proxy: RunningProxy, reason: str) -> float:
    return proxy.metric("shadowproxy_upstream_errors_total", upstream="candidate", reason=reason)


class TestHostileContent:
    """Content a candidate can get wrong is classified, and the evidence stays valid JSON."""

    async def test_invalid_json_is_structural_with_the_parse_error(self, tmp_path: Path) -> None:
        """A candidate answering broken JSON gives a structural ``parse`` difference."""

        async def broken(request: web.Request) -> web.Response:
            return web.Response(body=b'{"id": 7, "items": [1,', content_type="application/json")

        async with backend(_payload) as legacy, backend(broken) as candidate:
            record = await _one_record(legacy.url, candidate.url, tmp_path)
        assert (record["verdict"], record["classes"]) == ("diverged", ["structural"])
        (difference,) = record["differences"]
        assert (difference["kind"], difference["legacy"]) == ("parse", "object")
        assert difference["candidate"].startswith("invalid JSON: ")

    async def test_non_utf8_header_and_body_keep_the_record_valid(self, tmp_path: Path) -> None:
        """Non-UTF-8 bytes in a compared header and in the body still give valid JSON lines."""

        async def legacy_handler(request: web.Request) -> web.Response:
            return web.Response(
                body=b'{"name": "ok"}', content_type="text/plain", headers={"X-Bin": "ok"}
            )

        body = b'{"name": "\xff\xfe\xc3"}'
        answer = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Bin: \xff\xfe\x80\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        async with backend(legacy_handler) as legacy:
            async with relay(toxic=Toxic(Fault.ANSWER, payload=answer)) as candidate:
                # strict UTF-8 decoding and json.loads of every line happen in exchange_records
                record = await _one_record(
                    legacy.url, candidate.url, tmp_path, compare={"headers": ["x-bin"]}
                )
        assert record["verdict"] == "diverged"
        paths = {d["path"] for d in record["differences"]}
        assert paths == {"x-bin", "$"}

    async def test_garbage_instead_of_http_is_an_error(self, tmp_path: Path) -> None:
        """Random bytes instead of an HTTP answer are an error outcome, not a crash."""
        async with backend(_payload) as legacy, relay(toxic=Toxic(Fault.GARBAGE)) as candidate:
            record = await _one_record(legacy.url, candidate.url, tmp_path)
        assert record["verdict"] == "error"
        assert record["candidate"]["error"] in {"incomplete", "other", "reset"}

    async def test_gzip_bomb_trips_the_decode_cap(self, tmp_path: Path) -> None:
        """A small gzip body inflating past max_decoded_bytes is an error, never a diff."""
        bomb = gzip.compress(b"\0" * (16 * MiB), compresslevel=9)

        async def exploding(request: web.Request) -> web.Response:
            response = web.Response(body=bomb, content_type="application/json")
            response.headers["Content-Encoding"] = "gzip"
            return response

        async with backend(_payload) as legacy, backend(exploding) as candidate:
            record = await _one_record(
                legacy.url, candidate.url, tmp_path, compare={"max_decoded_bytes": MiB}
            )
        assert len(bomb) < CAP
        assert record["verdict"] == "error"
        assert record["note"].startswith("too_large")
        assert record["differences"] == []


class TestEquivalentFraming:
    """The same payload framed or encoded differently is no divergence."""

    async def _compare(self, tmp_path: Path, legacy_handler: Any, candidate_handler: Any) -> float:
        async with backend(legacy_handler) as legacy, backend(candidate_handler) as candidate:
            async with running_proxy(_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                assert (await fetch(proxy.url + "/same"))[0] == 200

                def compared() -> float:
                    return sum(
                        proxy.metric(
                            "shadowproxy_comparisons_total",
                            route="/same",
                            domain="default",
                            verdict=verdict,
                        )
                        for verdict in ("match", "diverged", "noise", "error")
                    )

                await eventually(lambda: compared() == 1)
                return proxy.metric(
                    "shadowproxy_comparisons_total",
                    route="/same",
                    domain="default",
                    verdict="match",
                )

    async def test_gzip_and_identity(self, tmp_path: Path) -> None:
        """gzip from legacy and identity from the candidate compare as equal."""

        async def zipped(request: web.Request) -> web.Response:
            response = web.Response(body=gzip.compress(PAYLOAD), content_type="application/json")
            response.headers["Content-Encoding"] = "gzip"
            return response

        assert await self._compare(tmp_path, zipped, _payload) == 1

    async def test_chunked_and_content_length(self, tmp_path: Path) -> None:
        """A chunked candidate answer equals legacy's Content-Length one."""

        async def chunked(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for start in range(0, len(PAYLOAD), 10):
                await response.write(PAYLOAD[start : start + 10])
            await response.write_eof()
            return response

        assert await self._compare(tmp_path, _payload, chunked) == 1
