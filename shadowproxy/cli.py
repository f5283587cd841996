"""The command line: ``shadowproxy`` (also installed as ``shadow``).

Subcommands: ``run``, ``check-config``, ``report``, ``promote``, ``drill``,
``cutover``, ``replay``, ``import-har``, ``demo`` and ``demo-backend``.
Anything a user can get wrong exits 2 with one line on stderr naming the
file and key or the flag; no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from shadowproxy import __version__
from shadowproxy.config import ConfigError, Overrides, load_settings

__all__ = ["main"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    from shadowproxy.report.command import add_report_arguments

    parser = _Parser(prog="shadowproxy", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"shadowproxy {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="run the proxy")
    run.add_argument("--config", metavar="FILE", help="YAML configuration file")
    run.add_argument(
        "--listen", metavar="HOST:PORT", help="proxy listener (default 127.0.0.1:8080)"
    )
    run.add_argument("--legacy", metavar="URL", help="legacy base URL (answers every request)")
    run.add_argument("--candidate", metavar="URL", help="candidate base URL (mirrored, compared)")
    run.add_argument(
        "--secondary", metavar="URL", help="second legacy instance for noise detection"
    )
    run.add_argument("--admin", metavar="HOST:PORT", help="admin listener (default 127.0.0.1:9901)")
    run.add_argument(
        "--log-dir", metavar="DIR", help="JSONL evidence directory (default ./shadow-logs)"
    )
    run.add_argument("--workers", metavar="N|auto", help="worker processes sharing the port")
    grpc = run.add_argument_group("gRPC listener (see docs/grpc.md)")
    grpc.add_argument("--grpc-listen", metavar="HOST:PORT", help="serve gRPC on this address")
    grpc.add_argument("--grpc-descriptors", metavar="FILE", help="protoc --descriptor_set_out file")
    grpc.add_argument("--grpc-legacy", metavar="HOST:PORT", help="legacy gRPC server")
    grpc.add_argument("--grpc-candidate", metavar="HOST:PORT", help="candidate gRPC server")
    grpc.add_argument("--grpc-secondary", metavar="HOST:PORT", help="second legacy gRPC server")
    run.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default="auto",
        help="operational log format (default: console on a TTY, else JSON)",
    )

    check = commands.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("file", metavar="FILE")

    report = commands.add_parser("report", help="summarise evidence and evaluate cutover gates")
    add_report_arguments(report)

    from shadowproxy.promote import (
        add_cutover_arguments,
        add_drill_arguments,
        add_promote_arguments,
    )

    promote = commands.add_parser(
        "promote", help="move a route one canary step when its domain's gates pass"
    )
    add_promote_arguments(promote)
    drill = commands.add_parser(
        "drill", help="flip a route to legacy and back, check the answers, record the drill"
    )
    add_drill_arguments(drill)
    cutover = commands.add_parser(
        "cutover", help="show or switch route modes and force-legacy on every replica"
    )
    add_cutover_arguments(cutover)

    from shadowproxy.replay import add_import_har_arguments, add_replay_arguments

    replay = commands.add_parser(
        "replay", help="replay captured requests to legacy and candidate, or against golden answers"
    )
    add_replay_arguments(replay)
    import_har = commands.add_parser("import-har", help="turn a HAR file into a capture file")
    add_import_har_arguments(import_har)

    demo = commands.add_parser(
        "demo", help="run the bundled demo end to end and print the findings"
    )
    demo.add_argument("--requests", type=int, default=200, help="requests to send (default 200)")
    demo.add_argument("--log-dir", metavar="DIR", help="keep the demo's evidence here")

    backend = commands.add_parser("demo-backend", help="serve one bundled demo backend")
    backend.add_argument("which", choices=("legacy", "candidate"))
    backend.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:9000")
    return parser


def _run(args: argparse.Namespace) -> int:
    from shadowproxy.runtime.start import prepare_process
    from shadowproxy.sinks import configure_logging

    overrides = Overrides(
        listen=args.listen,
        admin=args.admin,
        legacy=args.legacy,
        candidate=args.candidate,
        secondary=args.secondary,
        log_dir=args.log_dir,
        workers=args.workers,
        grpc_listen=args.grpc_listen,
        grpc_descriptors=args.grpc_descriptors,
        grpc_legacy=args.grpc_legacy,
        grpc_candidate=args.grpc_candidate,
        grpc_secondary=args.grpc_secondary,
    )
    settings = load_settings(args.config, overrides)
    log_json = {"auto": None, "json": True, "console": False}[args.log_format]
    configure_logging(json=log_json)
    prepare_process()
    if settings.workers > 1:
        from shadowproxy.runtime.supervisor import supervise

        return supervise(settings, config_path=args.config, overrides=overrides, log_json=log_json)
    from shadowproxy.runtime.serve import serve

    return asyncio.run(serve(settings, reload=lambda: load_settings(args.config, overrides)))


def _check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.file)
    print(f"{args.file}: ok ({len(settings.routes)} routes, digest {settings.digest})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``shadowproxy`` and ``shadow`` console scripts."""
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "check-config":
            return _check_config(args)
        if args.command == "report":
            from shadowproxy.report.command import run_report

            return run_report(args)
        if args.command == "promote":
            from shadowproxy.promote import run_promote

            return run_promote(args)
        if args.command == "drill":
            from shadowproxy.promote import run_drill

            return run_drill(args)
        if args.command == "cutover":
            from shadowproxy.promote import run_cutover

            return run_cutover(args)
        if args.command == "replay":
            from shadowproxy.replay import run_replay

            return run_replay(args)
        if args.command == "import-har":
            from shadowproxy.replay import run_import_har

            return run_import_har(args)
        if args.command == "demo":
            from shadowproxy.demo.run import run_demo

            return run_demo(requests=args.requests, log_dir=args.log_dir)
        from shadowproxy.demo.backends import serve_backend

        return serve_backend(args.which, args.listen)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as a shell tool should.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        # Binding a port that is taken, or a log dir that cannot be created.
        print(f"shadowproxy: error: {exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
