"""The comparison worker process: exchanges in on stdin, verdicts out on stdout.

Owns the process's main loop; ``wire`` owns what crosses the pipe. The
process ignores SIGINT, SIGHUP and SIGTERM (the proxy worker owns those) and
exits when its stdin closes, which also happens when the proxy worker dies. It
keeps freed memory mapped, as the proxy workers do (``allocator``).

``comparisons`` starts it with ``python -c`` and its own import path; ``python
-m shadowproxy.shadow.compare_worker`` runs it too.
"""

from __future__ import annotations

import pickle
import signal
import sys
from typing import BinaryIO

from shadowproxy.compare import Comparator
from shadowproxy.compare.rules import CompareRules
from shadowproxy.memo import ByValue
from shadowproxy.shadow.allocator import keep_freed_memory
from shadowproxy.shadow.flat import exchange_of, flat_verdict
from shadowproxy.shadow.wire import HEADER_BYTES, RULES_KEPT, SharedBodies, frame

__all__ = ["main", "serve"]


def serve(source: BinaryIO, sink: BinaryIO) -> None:
    """Answer requests from ``source`` on ``sink`` until ``source`` ends."""
    comparator = Comparator()
    bodies = SharedBodies()
    known: ByValue[bytes, CompareRules] = ByValue(RULES_KEPT)
    while len(header := source.read(HEADER_BYTES)) == HEADER_BYTES:
        flat, pickled_rules, slots = pickle.loads(source.read(int.from_bytes(header, "big")))
        exchange = bodies.unpack(exchange_of(flat), slots)
        reply: tuple[bool, object]
        try:
            rules = known.get(pickled_rules)
            if rules is None:
                rules = known.keep(pickled_rules, pickle.loads(pickled_rules))
            reply = (True, flat_verdict(comparator.compare(exchange, rules)))
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
    keep_freed_memory()
    serve(sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
