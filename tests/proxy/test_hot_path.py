"""The hot path: the client gets legacy's answer unchanged, whatever the candidate does."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from pathlib import Path

import aiohttp
from aiohttp import web
from yarl import URL

from tests.support import WAIT_S, backend, eventually, json_ok, make_settings, running_proxy


async def _fetch(
    url: str, method: str = "GET", **kwargs: object
) -> tuple[int, list[tuple[str, str]], bytes]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.request(
            method, URL(url, encoded=True), allow_redirects=False, **kwargs
        ) as response:  # type: ignore[arg-type]
            body = await response.read()
            headers = [(k.decode(), v.decode()) for k, v in response.raw_headers]
            return response.status, headers, body


def _values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


class TestPassThrough:
    """Legacy's status, headers and bytes reach the client untouched."""

    async def test_status_body_and_repeated_set_cookie(self, tmp_path: Path) -> None:
        """Status, exact body bytes and two Set-Cookie lines in order reach the client."""
        payload = b'{"b": 1,   "a": "\\u00e9"}'

        async def legacy_handler(request: web.Request) -> web.Response:
            response = web.Response(status=207, body=payload, content_type="application/json")
            response.headers.add("Set-Cookie", "a=1; Path=/")
            response.headers.add("Set-Cookie", "b=2; Path=/")
            return response

        async with backend(legacy_handler) as legacy, backend(json_ok) as candidate:
            async with running_proxy(make_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                status, headers, body = await _fetch(proxy.url + "/x?y=1")
        assert status == 207
        assert body == payload
        assert _values(headers, "Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
        assert _values(headers, "Via") == ["1.1 shadowproxy"]

    async def test_gzip_is_not_decompressed(self, tmp_path: Path) -> None:
        """A gzip body reaches the client compressed, with its Content-Encoding."""
        compressed = gzip.compress(b'{"hello": "world"}' * 50)

        async def legacy_handler(request: web.Request) -> web.Response:
            response = web.Response(body=compressed, content_type="application/json")
            response.headers["Content-Encoding"] = "gzip"
            return response

        async with backend(legacy_handler) as legacy, backend(json_ok) as candidate:
            async with running_proxy(make_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                status, headers, body = await _fetch(proxy.url + "/z")
        assert (status, body) == (200, compressed)
        assert _values(headers, "Content-Encoding") == ["gzip"]

    async def test_redirect_is_not_followed(self, tmp_path: Path) -> None:
        """A 302 goes to the client as is; the proxy never follows it."""

        async def legacy_handler(request: web.Request) -> web.Response:
            if request.path == "/old":
                return web.Response(status=302, headers={"Location": "/new"})
            return web.Response(text="followed")

        async with backend(legacy_handler) as legacy, backend(json_ok) as candidate:
            async with running_proxy(make_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                status, headers, _ = await _fetch(proxy.url + "/old")
        assert status == 302
        assert _values(headers, "Location") == ["/new"]
        assert [s.path for s in legacy.seen] == ["/old"]

    async def test_head_204_and_304_have_no_body(self, tmp_path: Path) -> None:
        """HEAD, 204 and 304 answers carry no body."""

        async def legacy_handler(request: web.Request) -> web.Response:
            if request.path == "/empty":
                return web.Response(status=204)
            if request.path == "/cached":
                return web.Response(status=304, headers={"ETag": '"v1"'})
            return web.Response(text="hello")

        async with backend(legacy_handler) as legacy, backend(json_ok) as candidate:
            async with running_proxy(make_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                head = await _fetch(proxy.url + "/page", "HEAD")
                empty = await _fetch(proxy.url + "/empty")
                cached = await _fetch(proxy.url + "/cached")
        assert (head[0], head[2]) == (200, b"")
        assert _values(head[1], "Content-Length") == ["5"]
        assert (empty[0], empty[2]) == (204, b"")
        assert (cached[0], cached[2]) == (304, b"")
        assert _values(cached[1], "ETag") == ['"v1"']

    async def test_request_body_and_query_reach_legacy(self, tmp_path: Path) -> None:
        """A POST body and the raw query string reach legacy byte for byte."""
        async with backend(json_ok) as legacy, backend(json_ok) as candidate:
            async with running_proxy(make_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                status, _, _ = await _fetch(
                    proxy.url + "/orders?a=%2F&b=1", "POST", data=b"\x00binary\xff"
                )
        assert status == 200
        assert legacy.seen[0].method == "POST"
        assert legacy.seen[0].path == "/orders?a=%2F&b=1"
        assert legacy.seen[0].body == b"\x00binary\xff"

    async def test_chunked_upload_after_an_ordinary_request(self, tmp_path: Path) -> None:
        """On one connection: a GET, then a chunked POST (handed to aiohttp's server), then a GET.

        All three reach legacy whole and get legacy's answers, in order.
        """
        async with backend(json_ok) as legacy, backend(json_ok) as candidate:
            async with running_proxy(make_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                host, port = str(proxy.bound.proxy).rsplit(":", 1)
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(
                    b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
                    b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                    b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                )
                async with asyncio.timeout(WAIT_S):
                    answers = await reader.read(-1)
                writer.close()
        assert [s.split(b" ")[1] for s in answers.split(b"HTTP/1.1")[1:]] == [b"200"] * 3
        assert [(seen.method, seen.path, seen.body) for seen in legacy.seen] == [
            ("GET", "/first", b""),
            ("POST", "/upload", b"hello world"),
            ("GET", "/last", b""),
        ]


class TestConnectionBound:
    """``max_client_connections`` bounds open client connections per worker."""

    async def test_connection_over_the_bound_is_closed_and_counted(self, tmp_path: Path) -> None:
        """With one allowed and one open, the next is closed unread and counted."""
        async with backend(json_ok) as legacy, backend(json_ok) as candidate:
            settings = make_settings(
                legacy.url, candidate.url, tmp_path, {"max_client_connections": 1}
            )
            async with running_proxy(settings) as proxy:
                host, port = str(proxy.bound.proxy).rsplit(":", 1)
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(b"GET /kept HTTP/1.1\r\nHost: a\r\n\r\n")
                async with asyncio.timeout(WAIT_S):
                    assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
                refused_reader, refused_writer = await asyncio.open_connection(host, int(port))
                async with asyncio.timeout(WAIT_S):
                    with contextlib.suppress(ConnectionError):
                        assert await refused_reader.read() == b""
                refused = proxy.metric(
                    "shadowproxy_client_connections_refused_total", reason="max_client_connections"
                )
                writer.close()
                refused_writer.close()
        assert refused == 1
        assert [seen.path for seen in legacy.seen] == ["/kept"]


class TestHopByHop:
    """Hop-by-hop headers are stripped both ways; forwarding headers are added."""

    async def test_request_headers(self, tmp_path: Path) -> None:
        """Connection-named headers, Keep-Alive, TE and Proxy-Authorization never reach legacy."""
        async with backend(json_ok) as legacy, backend(json_ok) as candidate:
            async with running_proxy(make_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                await _fetch(
                    proxy.url + "/h",
                    headers={
                        "Connection": "keep-alive, X-Forwarded-For, X-Private",
                        "X-Forwarded-For": "6.6.6.6",
                        "X-Private": "secret-hop",
                        "Keep-Alive": "timeout=5",
                        "TE": "trailers",
                        "Proxy-Authorization": "Basic Zm9vOmJhcg==",
                        "X-End-To-End": "kept",
                    },
                )
        names = {k.lower(): v for k, v in legacy.seen[0].headers}
        assert "x-private" not in names
        assert "keep-alive" not in names
        assert "te" not in names
        assert "proxy-authorization" not in names
        assert names["x-end-to-end"] == "kept"
        assert names["x-forwarded-for"] == "127.0.0.1"
        assert names["x-forwarded-proto"] == "http"
        assert names["x-forwarded-host"] == proxy.bound.proxy.__str__()
        assert names["via"] == "1.1 shadowproxy"
        assert names["host"] == str(proxy.bound.proxy)

    async def test_response_headers(self, tmp_path: Path) -> None:
        """Headers legacy names in Connection, and Proxy-Authenticate, never reach the client."""

        async def legacy_handler(request: web.Request) -> web.Response:
            return web.Response(
                text="ok",
                headers={
                    "Connection": "X-Legacy-Hop",
                    "X-Legacy-Hop": "internal",
                    "Proxy-Authenticate": "Basic",
                    "X-Kept": "yes",
                },
            )

        async with backend(legacy_handler) as legacy, backend(json_ok) as candidate:
            async with running_proxy(make_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                _, headers, _ = await _fetch(proxy.url + "/r")
        names = {k.lower() for k, _ in headers}
        assert "x-legacy-hop" not in names
        assert "proxy-authenticate" not in names
        assert _values(headers, "X-Kept") == ["yes"]


class TestLegacyFailures:
    """Legacy failures become small JSON errors, never tracebacks."""

    async def test_legacy_down_gives_502(self, tmp_path: Path, closed_port: int) -> None:
        """A refused legacy connection answers 502 naming the upstream; nothing is compared."""
        async with backend(json_ok) as candidate:
            settings = make_settings(f"http://127.0.0.1:{closed_port}", candidate.url, tmp_path)
            async with running_proxy(settings) as proxy:
                status, headers, body = await _fetch(proxy.url + "/a")
                errors = proxy.metric(
                    "shadowproxy_upstream_errors_total", upstream="legacy", reason="refused"
                )
                await eventually(
                    lambda: (
                        proxy.metric("shadowproxy_shadow_skipped_total", reason="legacy_failed")
                        == 1
                    )
                )
                compared = proxy.metric(
                    "shadowproxy_comparisons_total", route="/a", domain="default", verdict="error"
                )
        assert status == 502
        assert _values(headers, "Content-Type")[0].startswith("application/json")
        assert json.loads(body) == {"error": "refused", "upstream": "legacy"}
        assert errors == 1
        assert compared == 0

    async def test_legacy_timeout_gives_504(self, tmp_path: Path) -> None:
        """Legacy slower than its timeout answers 504."""
        import asyncio

        release = asyncio.Event()

        async def stuck(request: web.Request) -> web.Response:
            await release.wait()
            return web.Response(text="late")

        async with backend(stuck) as legacy, backend(json_ok) as candidate:
            settings = make_settings(
                legacy.url, candidate.url, tmp_path, {"legacy": {"timeout_s": 0.2}}
            )
            async with running_proxy(settings) as proxy:
                status, _, body = await _fetch(proxy.url + "/slow")
                release.set()
        assert status == 504
        assert json.loads(body) == {"error": "timeout", "upstream": "legacy"}
