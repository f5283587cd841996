"""Reading the report's small YAML inputs (gates, known differences) safely.

Owns turning "file missing", "not YAML" and "wrong shape" into one-line
``ReportInputError``s that name the file and the key. Imports PyYAML.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from shadowproxy.report.errors import ReportInputError

__all__ = ["load_yaml"]


def load_yaml(path: str) -> object:
    """The parsed document in ``path``; ReportInputError when unreadable or not YAML."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ReportInputError(path, f"cannot read ({reason})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ReportInputError(path, f"not valid YAML{where}") from None
