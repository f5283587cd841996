"""``listen_tls`` and ``upstreams.tls``: certificate and key files, loaded once at validation.

Each file is loaded here, with the context it will be used in, so that a file
that cannot be read, or a key that does not fit its certificate, is reported
as one line naming its key rather than failing later at start-up.
"""

from __future__ import annotations

from shadowproxy.config.reader import Reader
from shadowproxy.settings import ListenTLS, UpstreamTLS
from shadowproxy.tls import TLSSetupError, client_context, server_context

__all__ = ["listen_tls", "upstream_tls"]


def listen_tls(reader: Reader) -> ListenTLS | None:
    """``listen_tls``, its files loaded once so that a bad one is reported here."""
    cert_file = reader.string("cert_file", None)
    key_file = reader.string("key_file", None)
    reader.finish()
    if cert_file is None:
        if key_file is not None:
            raise reader.error("needs cert_file, the certificate it belongs to", "key_file")
        return None
    tls = ListenTLS(cert_file, key_file)
    try:
        server_context(tls)
    except TLSSetupError as exc:
        raise reader.error(str(exc), exc.key) from None
    return tls


def upstream_tls(reader: Reader) -> UpstreamTLS:
    """``upstreams.tls``, its files loaded once so that a bad one is reported here."""
    tls = UpstreamTLS(
        ca_file=reader.string("ca_file", None),
        cert_file=reader.string("cert_file", None),
        key_file=reader.string("key_file", None),
    )
    reader.finish()
    if tls.key_file is not None and tls.cert_file is None:
        raise reader.error("needs cert_file, the certificate it belongs to", "key_file")
    if tls != UpstreamTLS():
        try:
            client_context(tls)
        except TLSSetupError as exc:
            raise reader.error(str(exc), exc.key) from None
    return tls
