"""TLS contexts: the client one for https upstreams, the server one for an HTTPS listener.

The configuration builds each once to validate the files (a bad one exits
2 naming its key); each worker builds them again for its connection pools
and its listener. One client context serves every https upstream: the
sidecar has one identity, as a workload in a mesh has one certificate.
Imports the standard library only.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from shadowproxy.settings import ListenTLS, UpstreamTLS

__all__ = ["TLSSetupError", "client_context", "server_context"]


class TLSSetupError(ValueError):
    """A TLS file that cannot be used; ``key`` names it within its section."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key


def _no_passphrase() -> str:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key.
    raise TLSSetupError("key_file", "encrypted keys are not supported; give an unencrypted key")


def _reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        # OpenSSL's reason code (NO_CERTIFICATE_OR_CRL_FOUND) without its source location.
        return exc.reason.lower().replace("_", " ")
    return exc.strerror or str(exc)


def _check_readable(files: dict[str, str | None]) -> None:
    # OpenSSL's errors for a missing file do not say which file; these do.
    for key, path in files.items():
        if path is None:
            continue
        try:
            with Path(path).open("rb"):
                pass
        except OSError as exc:
            raise TLSSetupError(key, f"cannot read: {_reason(exc)}") from None


def _load_chain(context: ssl.SSLContext, cert_file: str, key_file: str | None) -> None:
    try:
        context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
    except ssl.SSLError as exc:
        raise TLSSetupError(
            "cert_file", f"cannot load the certificate and its key: {_reason(exc)}"
        ) from None


def client_context(tls: UpstreamTLS) -> ssl.SSLContext:
    """TLS with hostname checking, trusting ``ca_file`` (else the system), with ``cert_file``."""
    _check_readable({"ca_file": tls.ca_file, "cert_file": tls.cert_file, "key_file": tls.key_file})
    try:
        context = ssl.create_default_context(cafile=tls.ca_file)
    except ssl.SSLError as exc:
        raise TLSSetupError("ca_file", f"cannot load CA certificates: {_reason(exc)}") from None
    if tls.cert_file is not None:
        _load_chain(context, tls.cert_file, tls.key_file)
    return context


def server_context(tls: ListenTLS) -> ssl.SSLContext:
    """The listener's TLS: its certificate, HTTP/1.1 by ALPN, the ssl module's safe defaults."""
    _check_readable({"cert_file": tls.cert_file, "key_file": tls.key_file})
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # Only HTTP/1.1 is served: a client offering h2 must not pick it.
    context.set_alpn_protocols(["http/1.1"])
    _load_chain(context, tls.cert_file, tls.key_file)
    return context
