"""``shadow report``: per-domain parity summaries and cutover gates from evidence.

Reads only files (JSONL evidence, gates and known-differences YAML, the
tracker CSV) and, in fleet mode, Prometheus over HTTP; never the proxy.
Layout, inward: ``command`` -> ``fleet`` | ``parallel`` -> ``aggregate``
(reading through ``sources`` and ``identity``, filling ``differences``,
``coverage``, ``damage`` and ``series``) | renderers (``render_summary``,
``render_text``, ``render_html`` with its ``html_cards`` and ``charts``,
reading the document through ``verdict``, ``cutover_view`` and ``tabular``)
-> ``document`` -> ``gates`` (thresholds
from ``thresholds``, windows from ``windows``) -> ``known`` -> ``summary`` ->
``stats``; files are written through ``outfile``.
"""

from shadowproxy.report.command import add_report_arguments, run_report
from shadowproxy.report.errors import ReportInputError

__all__ = ["ReportInputError", "add_report_arguments", "run_report"]
