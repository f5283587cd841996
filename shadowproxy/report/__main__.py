"""``python -m shadowproxy.report``: the report command without the main CLI."""

from __future__ import annotations

import argparse
import sys

from shadowproxy.report.command import add_report_arguments, run_report

__all__: list[str] = []


def main() -> int:
    """Parse the command line and run the report."""
    parser = argparse.ArgumentParser(
        prog="shadow report", description="Parity summaries and cutover gates from evidence."
    )
    add_report_arguments(parser)
    return run_report(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
