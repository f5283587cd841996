"""The comparison worker process: exchanges in on stdin, verdicts out on stdout.

Owns the wire between a proxy worker and its comparison process, and the
process's main loop. Each message is an 8-byte big-endian length and a pickle;
requests are ``(exchange, rules)``, replies ``(True, verdict)`` or ``(False,
message)`` when the comparison raised. Replies come in request order. Pickle is
safe here: both ends are the same program, connected by a private pipe. The
process ignores SIGINT, SIGHUP and SIGTERM (the proxy worker owns those) and
exits when its stdin closes, which also happens when the proxy worker dies.

``comparisons`` starts it with ``python -c`` and its own import path; ``python
-m shadowproxy.shadow.compare_worker`` runs it too.
"""

from __future__ import annotations

import pickle
import signal
import sys
from dataclasses import replace
from typing import BinaryIO

from shadowproxy.compare import Comparator
from shadowproxy.model import Verdict

__all__ = ["HEADER_BYTES", "frame", "main"]

HEADER_BYTES = 8
"""Bytes of the length that precedes every message."""


def frame(message: object) -> tuple[bytes, bytes]:
    """The length header and the pickled body of one message."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(body).to_bytes(HEADER_BYTES, "big"), body


def _portable(verdict: Verdict) -> Verdict:
    # A read-only mapping view does not pickle; the proxy side makes it read-only again.
    return replace(verdict, equivalences=dict(verdict.equivalences))


def serve(source: BinaryIO, sink: BinaryIO) -> None:
    """Answer requests from ``source`` on ``sink`` until ``source`` ends."""
    comparator = Comparator()
    while len(header := source.read(HEADER_BYTES)) == HEADER_BYTES:
        exchange, rules = pickle.loads(source.read(int.from_bytes(header, "big")))
        reply: tuple[bool, object]
        try:
            reply = (True, _portable(comparator.compare(exchange, rules)))
        except Exception as exc:
            # A bug in the engine costs one comparison, reported to the proxy
            # worker (which logs it), not the process and its learned noise.
            reply = (False, f"{type(exc).__name__}: {exc}")
        sink.writelines(frame(reply))
        sink.flush()


def main() -> int:
    """The process entry point."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
