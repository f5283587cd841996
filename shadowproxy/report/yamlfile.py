"""Reading the report's small YAML inputs (gates, known differences) safely.

Owns turning the bounded reader's problems (``shadowproxy.yamlfile``: a file
missing, not regular, too large, too deep, with a key given twice, not
YAML) into one-line ``ReportInputError``s that name the file and the key.
"""

from __future__ import annotations

from shadowproxy.report.errors import ReportInputError
from shadowproxy.yamlfile import YamlFileError, load_yaml_file

__all__ = ["load_yaml"]


def load_yaml(path: str) -> object:
    """The parsed document in ``path``; ReportInputError when unreadable, unsound or not YAML."""
    try:
        return load_yaml_file(path)
    except YamlFileError as exc:
        raise ReportInputError(path, str(exc)) from None
