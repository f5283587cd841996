"""The request bound to the current context: its id, on every log line, and its own secrets.

``bind_request`` and ``unbind_request`` run on every request, so they live
apart from the logging configuration (``shadowproxy.sinks.logs``, whose
processors read ``bound_request`` only when a line is logged) and are
compiled with the hot path.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

__all__ = ["RequestBinding", "bind_request", "bound_request", "unbind_request"]

_REQUEST: ContextVar[tuple[str, tuple[str, ...]] | None] = ContextVar(
    "shadowproxy_request", default=None
)
"""The request being served in this context: its id and its own secrets."""

RequestBinding = Token[tuple[str, tuple[str, ...]] | None]
"""What ``bind_request`` changed, for ``unbind_request`` to restore."""


def bind_request(request_id: str, secrets: tuple[str, ...] = ()) -> RequestBinding:
    """Bind a request to the current context: its id on every log line, its secrets scrubbed.

    One context variable for both, read by the log processors only when a line
    is logged: structlog's own ``bind_contextvars`` costs several times more
    per request, and nearly every request logs nothing.
    """
    return _REQUEST.set((request_id, secrets))


def unbind_request(binding: RequestBinding) -> None:
    """Restore what ``bind_request`` replaced."""
    _REQUEST.reset(binding)


def bound_request() -> tuple[str, tuple[str, ...]] | None:
    """The bound request's id and secrets, or None outside a request."""
    return _REQUEST.get()
