"""The TLS client context for https upstreams, built from ``upstreams.tls``.

The configuration builds it once to validate the files (a bad one exits 2
naming its key); each worker builds it again for its connection pools. One
context serves every https upstream: the sidecar has one identity, as a
workload in a mesh has one certificate. Imports the standard library only.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from shadowproxy.settings import UpstreamTLS

__all__ = ["TLSSetupError", "client_context"]


class TLSSetupError(ValueError):
    """A file of ``upstreams.tls`` that cannot be used; ``key`` names it."""

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


def _check_readable(tls: UpstreamTLS) -> None:
    # OpenSSL's errors for a missing file do not say which file; these do.
    for key in ("ca_file", "cert_file", "key_file"):
        path = getattr(tls, key)
        if path is None:
            continue
        try:
            with Path(path).open("rb"):
                pass
        except OSError as exc:
            raise TLSSetupError(key, f"cannot read: {_reason(exc)}") from None


def client_context(tls: UpstreamTLS) -> ssl.SSLContext:
    """TLS with hostname checking, trusting ``ca_file`` (else the system), with ``cert_file``."""
    _check_readable(tls)
    try:
        context = ssl.create_default_context(cafile=tls.ca_file)
    except ssl.SSLError as exc:
        raise TLSSetupError("ca_file", f"cannot load CA certificates: {_reason(exc)}") from None
    if tls.cert_file is None:
        return context
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file, password=_no_passphrase)
    except ssl.SSLError as exc:
        raise TLSSetupError(
            "cert_file", f"cannot load the certificate and its key: {_reason(exc)}"
        ) from None
    return context
