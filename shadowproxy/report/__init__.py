"""``shadow report``: per-domain parity summaries and cutover gates from evidence.

Reads only files (JSONL evidence, gates and known-differences YAML, the
tracker CSV) and, in fleet mode, Prometheus over HTTP; never the proxy.
Layout, inward: ``command`` -> ``fleet`` | ``aggregate`` (-> ``series``) |
renderers (``render_summary``, ``render_text``, ``render_html`` and its
``charts``, reading the document through ``verdict`` and ``tabular``) ->
``document`` -> ``gates`` -> ``known`` -> ``summary`` -> ``stats``.
"""

from shadowproxy.report.command import add_report_arguments, run_report
from shadowproxy.report.errors import ReportInputError

__all__ = ["ReportInputError", "add_report_arguments", "run_report"]
