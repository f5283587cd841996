"""``listen_tls``: the client-facing listener serves HTTPS, on the lean path and aiohttp's."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import trustme

from shadowproxy.http import server as server_module
from tests.support import WAIT_S, backend, json_ok, make_settings, proxy_process, running_proxy


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def _listener_files(ca: trustme.CA, tmp_path: Path) -> dict[str, str]:
    """``listen_tls`` for a certificate ``ca`` signed for 127.0.0.1."""
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "listener.pem", tmp_path / "listener.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    return {"cert_file": str(cert_file), "key_file": str(key_file)}


async def _chunks() -> AsyncIterator[bytes]:
    """A body aiohttp sends chunked: a request the lean server hands over."""
    yield b"a"
    yield b"b"


def _trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


class TestHttpsListener:
    async def test_lean_and_handed_over_requests_over_https(
        self, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """A GET (lean server) and a chunked POST (aiohttp's) are answered over TLS, and
        legacy learns the client spoke https."""
        document = {"listen_tls": _listener_files(ca, tmp_path)}
        async with (
            backend(json_ok) as legacy,
            backend(json_ok) as candidate,
            running_proxy(make_settings(legacy.url, candidate.url, tmp_path, document)) as proxy,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=_trusting(ca))) as session,
        ):
            base = proxy.url.replace("http://", "https://")
            async with session.get(base + "/lean") as response:
                assert response.status == 200
            async with session.post(base + "/handed-over", data=_chunks()) as response:
                assert response.status == 200
            await candidate.wait_for(lambda seen: len(seen) == 1)
        forwarded = [dict(seen.headers).get("X-Forwarded-Proto") for seen in legacy.seen]
        assert [seen.path for seen in legacy.seen] == ["/lean", "/handed-over"]
        assert forwarded == ["https", "https"]

    async def test_plain_http_to_the_https_port_gets_no_answer(
        self, ca: trustme.CA, tmp_path: Path
    ) -> None:
        document = {"listen_tls": _listener_files(ca, tmp_path)}
        async with (
            backend(json_ok) as legacy,
            backend(json_ok) as candidate,
            running_proxy(make_settings(legacy.url, candidate.url, tmp_path, document)) as proxy,
            aiohttp.ClientSession() as session,
        ):
            with pytest.raises(aiohttp.ClientError):
                async with session.get(proxy.url + "/x"):
                    pass
        assert legacy.seen == []

    async def test_stalled_handshake_is_cut_off(
        self, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A client that connects and never starts its handshake is disconnected."""
        monkeypatch.setattr(server_module, "TLS_HANDSHAKE_TIMEOUT_S", 0.2)
        document = {"listen_tls": _listener_files(ca, tmp_path)}
        async with (
            backend(json_ok) as legacy,
            backend(json_ok) as candidate,
            running_proxy(make_settings(legacy.url, candidate.url, tmp_path, document)) as proxy,
        ):
            address = proxy.bound.proxy
            reader, writer = await asyncio.open_connection(address.host, address.port)
            async with asyncio.timeout(WAIT_S):
                assert await reader.read() == b""
            writer.close()

    async def test_process_announces_https(self, ca: trustme.CA, tmp_path: Path) -> None:
        """``shadowproxy run`` with listen_tls says so in its listening line, and serves."""
        files = _listener_files(ca, tmp_path)
        config = tmp_path / "c.yaml"
        config.write_text(
            f"listen_tls: {{cert_file: '{files['cert_file']}', key_file: '{files['key_file']}'}}\n"
            "shadow: {max_loop_lag_ms: 60000}\n"
        )
        async with (
            backend(json_ok) as legacy,
            backend(json_ok) as candidate,
            proxy_process(
                "--config",
                str(config),
                "--legacy",
                legacy.url,
                "--candidate",
                candidate.url,
                "--log-dir",
                str(tmp_path / "logs"),
            ) as proxy,  # fmt: skip
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=_trusting(ca))) as session,
            session.get(proxy.url + "/x") as response,
        ):
            assert proxy.url.startswith("https://")
            assert response.status == 200
