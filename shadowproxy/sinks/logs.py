"""Operational logging: structlog configured once, JSON lines or console, secrets scrubbed.

Owns ``configure_logging`` (structlog and the standard library's root logger,
so aiohttp's own log records get the same format and scrubbing), the
``ScrubSecrets`` processor that is the last line of defence against a secret
in a log line, and the merge of contextvars (the hot path binds ``request_id``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from shadowproxy.settings import RedactSettings
from shadowproxy.sinks.redact import Redactor

__all__ = ["ScrubSecrets", "configure_logging"]

_HANDLER_NAME = "shadowproxy"


class ScrubSecrets:
    """Processor replacing secret-looking keys and credentials in strings.

    See ``Redactor.mapping`` for what counts as secret.
    """

    __slots__ = ("_redactor",)

    def __init__(self, redactor: Redactor | None = None) -> None:
        self._redactor = redactor or Redactor(RedactSettings())

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        scrubbed = self._redactor.mapping(event_dict)
        # ProcessorFormatter's bookkeeping objects must pass through untouched.
        for key in ("_record", "_from_structlog"):
            if key in event_dict:
                scrubbed[key] = event_dict[key]
        return scrubbed


def configure_logging(
    json: bool | None = None,
    level: str = "info",
    *,
    redact: RedactSettings | None = None,
    stream: TextIO | None = None,
) -> None:
    """Send structlog and standard-library logs to ``stream`` (stderr) at ``level``.

    ``json=None`` picks JSON lines unless the stream is a TTY. Calling it again
    replaces the previous configuration. Raises ValueError for an unknown level.
    """
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    out = stream if stream is not None else sys.stderr
    use_json = not _isatty(out) if json is None else json
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(serializer=_dumps)
        if use_json
        else structlog.dev.ConsoleRenderer(
            colors=_isatty(out), exception_formatter=structlog.dev.plain_traceback
        )
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            ScrubSecrets(Redactor(redact or RedactSettings())),
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def _dumps(obj: MutableMapping[str, Any], **_: Any) -> str:
    """orjson for log lines; anything it cannot encode is written as ``str``."""
    return orjson.dumps(obj, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _isatty(stream: TextIO) -> bool:
    """``stream.isatty()``, False for streams that cannot say."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
