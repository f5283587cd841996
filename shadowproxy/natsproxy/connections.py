"""The proxy's NATS connections: requesters', legacy's and the candidate's, each its own.

Owns connecting with a server's URLs and credentials (the password and the
token are read from the environment variables the configuration names;
they never reach a log or a record) and the error callback: a subscription
whose pending messages overflow (``max_pending``) makes nats-py drop the
message and report a slow consumer, which is counted per route here
(``on_dropped``). The candidate always gets a connection of its own, even
on the requesters' server, so nothing it sends (floods, oversized or
malformed replies) can reach the connection requesters are answered on.
Connections reconnect on their own for as long as the proxy runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import nats
import nats.errors
import structlog
from nats.aio.client import Client

from shadowproxy.settings import NatsServer

__all__ = ["connect"]

log = structlog.get_logger(__name__)

_CONNECT_TIMEOUT_S = 5
_RECONNECT_WAIT_S = 1


async def connect(
    server: NatsServer,
    *,
    name: str,
    on_dropped: Callable[[str], None],
    env: Mapping[str, str] | None = None,
) -> Client:
    """A connection to ``server``; ``on_dropped(subject)`` counts each message a subscription drops.

    Raises ``nats.errors.NoServersError`` (or ``OSError``) when no server answers.
    """
    secrets = os.environ if env is None else env

    async def errors(exc: Exception) -> None:
        if isinstance(exc, nats.errors.SlowConsumerError):
            on_dropped(exc.subject)
            return
        log.warning("nats connection error", connection=name, error=type(exc).__name__)

    options: dict[str, Any] = {
        "servers": list(server.urls),
        "name": f"shadowproxy-{name}",
        "error_cb": errors,
        "connect_timeout": _CONNECT_TIMEOUT_S,
        "reconnect_time_wait": _RECONNECT_WAIT_S,
        "max_reconnect_attempts": -1,
    }
    if server.user is not None:
        options["user"] = server.user
    if server.password_env is not None:
        options["password"] = secrets.get(server.password_env, "")
    if server.token_env is not None:
        options["token"] = secrets.get(server.token_env, "")
    if server.creds_file is not None:
        options["user_credentials"] = server.creds_file
    return await nats.connect(**options)
