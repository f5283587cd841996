"""Operational logging: structlog configured once, JSON lines or console, secrets scrubbed.

Owns ``configure_logging`` (structlog and the standard library's root logger,
so aiohttp's own log records get the same format and scrubbing), the
``ScrubSecrets`` processor that is the last line of defence against a secret
in a log line, and the processors that read the request bound to the context
(``shadowproxy.sinks.binding``, re-exported here): its id, shown on every
line, and its own secrets, scrubbed from every line and never shown.
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
from shadowproxy.sinks.binding import RequestBinding, bind_request, bound_request, unbind_request
from shadowproxy.sinks.redact import Redactor
from shadowproxy.sinks.secrets import known_secrets

__all__ = [
    "RequestBinding",
    "ScrubSecrets",
    "bind_request",
    "configure_logging",
    "unbind_request",
]

_HANDLER_NAME = "shadowproxy"


class ScrubSecrets:
    """Processor replacing secret-looking keys, credentials and the request's own secrets.

    See ``Redactor.mapping`` for what counts as secret; the secrets of the
    request bound with ``bind_request`` are scrubbed too.
    """

    __slots__ = ("_redactor",)

    def __init__(self, redactor: Redactor | None = None) -> None:
        self._redactor = redactor or Redactor(RedactSettings())

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        bound = bound_request()
        secrets = () if bound is None else bound[1]
        scrubbed = self._redactor.mapping(event_dict, known_secrets(secrets))
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
        _add_request_id,
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


def _add_request_id(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """The bound request's id on the line (unless the line names one itself)."""
    bound = bound_request()
    if bound is not None:
        event_dict.setdefault("request_id", bound[0])
    return event_dict


def _dumps(obj: MutableMapping[str, Any], **_: Any) -> str:
    """orjson for log lines; anything it cannot encode is written as ``str``."""
    return orjson.dumps(obj, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _isatty(stream: TextIO) -> bool:
    """``stream.isatty()``, False for streams that cannot say."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
