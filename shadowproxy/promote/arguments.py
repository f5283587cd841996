"""The flags of ``shadow promote``, ``shadow drill`` and ``shadow cutover``.

Each command takes one or more ``--admin`` URLs (repeat the flag; a name
resolving to several addresses stands for each, see ``replicas``), an
optional ``--replicas N`` that must match how many were found, and
``--token-env`` naming the variable that holds the admin token (never the
token itself on the command line).
"""

from __future__ import annotations

import argparse

from shadowproxy.config import ADMIN_TOKEN_ENV

__all__ = [
    "DEFAULT_ADMIN",
    "add_cutover_arguments",
    "add_drill_arguments",
    "add_promote_arguments",
]

DEFAULT_ADMIN = "http://127.0.0.1:9901"


def _replicas(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--admin",
        action="append",
        metavar="URL",
        help="a replica's admin API; repeat for each replica, or give a name that resolves to"
        f" every replica (a headless Service) (default {DEFAULT_ADMIN})",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        metavar="N",
        help="refuse unless the --admin URLs come to exactly N replicas",
    )
    parser.add_argument(
        "--token-env",
        default=ADMIN_TOKEN_ENV,
        metavar="VAR",
        help=f"environment variable holding the admin bearer token (default {ADMIN_TOKEN_ENV})",
    )


def add_promote_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``shadow promote`` flags to ``parser``."""
    parser.add_argument("--route", required=True, metavar="ROUTE", help="route name")
    _replicas(parser)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="JSONL evidence (as for report)")
    parser.add_argument("--gates", metavar="FILE", help="gates YAML (default: built-in gates)")
    parser.add_argument("--known", metavar="FILE", help="known-differences YAML")


def add_drill_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``shadow drill`` flags to ``parser``."""
    parser.add_argument("--route", required=True, metavar="ROUTE", help="route name")
    _replicas(parser)
    parser.add_argument(
        "--path",
        metavar="PATH",
        help="request path to probe (with --grpc-proxy: the method, default the route)",
    )
    parser.add_argument(
        "--proxy",
        action="append",
        metavar="URL",
        help="a proxy's base URL; repeat for each replica, or give a name that resolves to"
        " every replica: each is probed",
    )
    parser.add_argument(
        "--grpc-proxy",
        action="append",
        metavar="HOST:PORT",
        help="a proxy's gRPC listener, probed with a call of the method instead (repeat for"
        " each replica)",
    )
    parser.add_argument(
        "--grpc-request",
        metavar="FILE",
        help="the probe call's request message, serialized (default: an empty message)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="how long each flip may take to show in answers (default 5)",
    )


def add_cutover_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``shadow cutover`` flags to ``parser``."""
    _replicas(parser)
    parser.add_argument("--route", metavar="ROUTE", help="route to switch (* for the default)")
    parser.add_argument(
        "--mode",
        choices=("shadow", "canary", "candidate", "legacy-only"),
        help="the route's new mode (with --route)",
    )
    parser.add_argument(
        "--percent", type=float, metavar="P", help="canary percent (with --mode canary)"
    )
    parser.add_argument(
        "--force-legacy", choices=("on", "off"), help="switch force-legacy on every replica"
    )
    parser.add_argument("--reason", default="", metavar="TEXT", help="recorded with the change")
