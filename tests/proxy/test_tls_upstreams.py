"""https upstreams with ``upstreams.tls``: a private CA, a client certificate; TLS config errors."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from shadowproxy.cli import main
from shadowproxy.settings import UpstreamTLS
from shadowproxy.tls import TLSSetupError, client_context
from tests.support import backend, config_error, make_settings, running_proxy

UPSTREAMS = "upstreams: {legacy: 'https://a:1', candidate: 'https://b:2', tls: %s}\n"
LISTEN = "upstreams: {legacy: 'http://a:1', candidate: 'http://b:2'}\nlisten_tls: %s\n"


@dataclass(frozen=True)
class Files:
    """A private CA's bundle and a client certificate it signed, as PEM files."""

    ca: trustme.CA
    ca_file: Path
    cert_file: Path
    key_file: Path


@pytest.fixture
def files(tmp_path: Path) -> Files:
    ca = trustme.CA()
    client = ca.issue_cert("shadowproxy.client.test")
    paths = Files(ca, tmp_path / "ca.pem", tmp_path / "client.pem", tmp_path / "client.key")
    ca.cert_pem.write_to_path(str(paths.ca_file))
    client.cert_chain_pems[0].write_to_path(str(paths.cert_file))
    client.private_key_pem.write_to_path(str(paths.key_file))
    return paths


def _server(ca: trustme.CA) -> ssl.SSLContext:
    """An https server context that requires a client certificate ``ca`` signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


async def _json(request: web.Request) -> web.Response:
    return web.json_response(
        {"peer": bool(request.transport and request.transport.get_extra_info("peercert"))}
    )


class TestProxy:
    """The configured trust and certificate reach every upstream pool."""

    async def test_client_certificate_presented_to_legacy_and_candidate(
        self, files: Files, tmp_path: Path
    ) -> None:
        tls = {"ca_file": str(files.ca_file), "cert_file": str(files.cert_file)}
        tls["key_file"] = str(files.key_file)
        server = _server(files.ca)
        async with (
            backend(_json, server) as legacy,
            backend(_json, server) as candidate,
            running_proxy(
                make_settings(legacy.url, candidate.url, tmp_path, {"upstreams": {"tls": tls}})
            ) as proxy,
            aiohttp.ClientSession() as session,
            session.get(proxy.url + "/x") as response,
        ):
            assert response.status == 200
            assert await response.json() == {"peer": True}
            await candidate.wait_for(lambda seen: len(seen) == 1)
        assert len(legacy.seen) == 1

    async def test_without_the_certificate_legacy_refuses_and_the_client_gets_502(
        self, files: Files, tmp_path: Path
    ) -> None:
        """The same servers, trust only: the handshake fails, the client gets a JSON 502."""
        server = _server(files.ca)
        document = {"upstreams": {"tls": {"ca_file": str(files.ca_file)}}}
        async with (
            backend(_json, server) as legacy,
            backend(_json, server) as candidate,
            running_proxy(make_settings(legacy.url, candidate.url, tmp_path, document)) as proxy,
            aiohttp.ClientSession() as session,
            session.get(proxy.url + "/x") as response,
        ):
            assert response.status == 502
            assert response.content_type == "application/json"
        assert legacy.seen == []


class TestClientContext:
    """Each unusable file is named by its key, with the reason."""

    def test_trust_and_certificate(self, files: Files) -> None:
        context = client_context(
            UpstreamTLS(str(files.ca_file), str(files.cert_file), str(files.key_file))
        )
        assert context.check_hostname and context.verify_mode is ssl.CERT_REQUIRED
        assert [c["subject"] for c in context.get_ca_certs()] == [
            c["subject"] for c in _loaded(files.ca_file)
        ]

    def test_key_inside_the_certificate_file(self, files: Files, tmp_path: Path) -> None:
        both = tmp_path / "both.pem"
        both.write_bytes(files.cert_file.read_bytes() + files.key_file.read_bytes())
        client_context(UpstreamTLS(cert_file=str(both)))

    @pytest.mark.parametrize(
        ("field", "content", "key", "reason"),
        [
            ("ca_file", None, "ca_file", "cannot read: No such file"),
            ("ca_file", b"not a certificate\n", "ca_file", "cannot load CA certificates"),
            ("key_file", None, "key_file", "cannot read: No such file"),
            ("cert_file", None, "cert_file", "cannot read: No such file"),
            ("key_file", b"garbage\n", "cert_file", "certificate and its key"),
        ],
    )
    def test_unusable_file_named(
        self, files: Files, tmp_path: Path, field: str, content: bytes | None, key: str, reason: str
    ) -> None:
        bad = tmp_path / "bad.pem"
        if content is not None:
            bad.write_bytes(content)
        given = {"ca_file": str(files.ca_file), "cert_file": str(files.cert_file)}
        given["key_file"] = str(files.key_file)
        given[field] = str(bad)
        with pytest.raises(TLSSetupError) as failure:
            client_context(UpstreamTLS(**given))
        assert failure.value.key == key
        assert reason in str(failure.value)

    def test_mismatched_key_named(self, files: Files, tmp_path: Path) -> None:
        other = tmp_path / "other.key"
        files.ca.issue_cert("other.test").private_key_pem.write_to_path(str(other))
        with pytest.raises(TLSSetupError) as failure:
            client_context(UpstreamTLS(cert_file=str(files.cert_file), key_file=str(other)))
        assert failure.value.key == "cert_file"

    def test_encrypted_key_refused_without_a_prompt(self, files: Files, tmp_path: Path) -> None:
        """OpenSSL would otherwise ask for a passphrase on the terminal and block start-up."""
        key = serialization.load_pem_private_key(files.key_file.read_bytes(), password=None)
        encrypted = tmp_path / "encrypted.key"
        encrypted.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            )
        )
        with pytest.raises(TLSSetupError) as failure:
            client_context(UpstreamTLS(cert_file=str(files.cert_file), key_file=str(encrypted)))
        assert failure.value.key == "key_file"
        assert "encrypted keys are not supported" in str(failure.value)


def _loaded(bundle: Path) -> list[dict[str, object]]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(bundle))
    return context.get_ca_certs()


class TestConfig:
    """``check-config`` reports a bad ``upstreams.tls`` or ``listen_tls`` in one line, exit 2."""

    @pytest.mark.parametrize(
        ("document", "expected"),
        [
            (UPSTREAMS % "{key_file: /k.pem}", "upstreams.tls.key_file: needs cert_file"),
            (
                UPSTREAMS % "{ca_file: /nonexistent/ca.pem}",
                "upstreams.tls.ca_file: cannot read: No such file or directory",
            ),
            (UPSTREAMS % "{cert_file: /nonexistent/c.pem}", "upstreams.tls.cert_file: cannot read"),
            (UPSTREAMS % "{cafile: /ca.pem}", "upstreams.tls.cafile: unknown key"),
            (LISTEN % "{key_file: /k.pem}", "listen_tls.key_file: needs cert_file"),
            (LISTEN % "{cert_file: /nonexistent/c.pem}", "listen_tls.cert_file: cannot read"),
            (LISTEN % "{cert: /c.pem}", "listen_tls.cert: unknown key"),
        ],
    )
    def test_bad_tls_exits_2_with_one_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], document: str, expected: str
    ) -> None:
        assert config_error(document, tmp_path, capsys).startswith(expected)

    def test_good_tls_accepted(self, files: Files, tmp_path: Path) -> None:
        path = tmp_path / "good.yaml"
        tls = f"{{ca_file: '{files.ca_file}', cert_file: '{files.cert_file}'"
        path.write_text(UPSTREAMS % f"{tls}, key_file: '{files.key_file}'}}")
        assert main(["check-config", str(path)]) == 0
