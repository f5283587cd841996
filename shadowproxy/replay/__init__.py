"""``shadow replay`` and ``shadow import-har``: captured traffic replayed, compared, judged.

``captures`` reads capture and HAR files and credentials, ``runner`` replays
them through the proxy's own comparison and evidence, ``golden`` keeps
legacy's answers for checks with no legacy, ``command`` is the CLI. A
wiring-level package beside ``promote``: it imports the data plane's client
and the report, and nothing imports it but the CLI.
"""

from shadowproxy.replay.command import (
    add_import_har_arguments,
    add_replay_arguments,
    run_import_har,
    run_replay,
)

__all__ = ["add_import_har_arguments", "add_replay_arguments", "run_import_har", "run_replay"]
