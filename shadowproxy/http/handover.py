"""Quiet, safe logging of malformed client requests.

aiohttp logs every request it cannot parse at error level with a traceback
that quotes part of the offending line. A client can cause that at will, and
the quoted bytes may carry anything the client sent. This filter turns those
records into one warning line naming only the kind of error.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["MalformedRequestFilter", "install"]

_SERVER_LOGGER = "aiohttp.server"


class MalformedRequestFilter(logging.Filter):
    """Rewrites aiohttp's parse-error records as a one-line warning without details."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno = logging.WARNING
            record.levelname = "WARNING"
            record.msg = "rejected malformed request: %s"
            record.args = (type(exc).__name__,)
            record.exc_info = None
            record.exc_text = None
        return True


def install() -> None:
    """Attach the filter to aiohttp's server logger (idempotent)."""
    logger = logging.getLogger(_SERVER_LOGGER)
    if not any(isinstance(f, MalformedRequestFilter) for f in logger.filters):
        logger.addFilter(MalformedRequestFilter())
