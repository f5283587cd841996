"""A self-contained HTML rendering with inline SVG charts.

Owns the HTML format: one file, no scripts, no external assets; a
divergence-rate-over-time chart per domain, a legacy-against-candidate
latency chart, then the same tables as the other formats. Standard library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any, TextIO

from shadowproxy.report.tabular import Document, headline, sections

__all__ = ["render_html"]

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.3em} h1.pass{color:#17803d} h1.fail{color:#b3261e}
table{border-collapse:collapse;margin:.5em 0 1.5em} th,td{border:1px solid #ccc;padding:2px 6px;
text-align:left;vertical-align:top} th{background:#f3f3f3}
tr.pass td:first-child{border-left:4px solid #17803d} tr.fail td:first-child{border-left:4px solid
#b3261e} tr.warn td:first-child{border-left:4px solid #c98a00}
.charts{display:flex;flex-wrap:wrap;gap:1.5em} svg{background:#fafafa;border:1px solid #ddd}
.rate{fill:none;stroke:#b3261e;stroke-width:2} .legacy{fill:#6b8fb8} .candidate{fill:#d9822b}
svg text{font-size:11px;fill:#333}
"""
_W, _H, _PAD = 560, 180, 40


def _timeline_svg(domain: Mapping[str, Any]) -> str:
    points = domain["timeline"]
    name = escape(domain["domain"])
    rates = [p["diverged"] / p["compared"] if p["compared"] else None for p in points]
    known = [r for r in rates if r is not None]
    top = max(known, default=0.0) or 1.0
    step = (_W - 2 * _PAD) / max(1, len(points) - 1)
    coords = [
        f"{_PAD + i * step:.1f},{_H - _PAD - (r / top) * (_H - 2 * _PAD):.1f}"
        for i, r in enumerate(rates)
        if r is not None
    ]
    start = escape(points[0]["start"]) if points else ""
    end = escape(points[-1]["start"]) if points else ""
    line = (
        f'<polyline class="rate" points="{" ".join(coords)}"/>'
        if coords
        else (
            f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle">no rollups in the window</text>'
        )
    )
    return (
        f'<svg class="chart timeline" data-domain="{name}" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" xmlns="http://www.w3.org/2000/svg" role="img">'
        f"<title>Divergence rate over time: {name}</title>"
        f'<text x="{_PAD}" y="16">Divergence rate over time: {name}</text>'
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#999"/>'
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#999"/>'
        f'<text x="4" y="{_PAD + 4}">{top:.2%}</text><text x="4" y="{_H - _PAD}">0%</text>'
        f'<text x="{_PAD}" y="{_H - 12}">{start}</text>'
        f'<text x="{_W - _PAD}" y="{_H - 12}" text-anchor="end">{end}</text>'
        f"{line}</svg>"
    )


def _latency_svg(domains: Sequence[Mapping[str, Any]]) -> str:
    bars: list[tuple[str, str, float | None]] = []
    for d in domains:
        for q in ("p50", "p95", "p99"):
            bars.append((d["domain"], q, d["latency"]["legacy"][q]))
            bars.append((d["domain"], q, d["latency"]["candidate"][q]))
    top = max((v for _, _, v in bars if v is not None), default=0.0) or 1.0
    height = _H + 20
    slot = (_W - 2 * _PAD) / max(1, len(bars))
    parts = []
    for i, (domain, q, value) in enumerate(bars):
        side = "legacy" if i % 2 == 0 else "candidate"
        h = 0.0 if value is None else value / top * (height - 2 * _PAD)
        x = _PAD + i * slot
        label = f"{escape(domain)} {q} {side}: {'-' if value is None else f'{value:.3g} ms'}"
        parts.append(
            f'<rect class="bar {side}" x="{x:.1f}" y="{height - _PAD - h:.1f}" '
            f'width="{max(1.0, slot - 2):.1f}" height="{h:.1f}"><title>{label}</title></rect>'
        )
        if side == "legacy":
            parts.append(f'<text x="{x:.1f}" y="{height - _PAD + 14}">{escape(domain)} {q}</text>')
    return (
        f'<svg class="chart latency" width="{_W}" height="{height}" '
        f'viewBox="0 0 {_W} {height}" xmlns="http://www.w3.org/2000/svg" role="img">'
        "<title>Latency: legacy vs candidate</title>"
        f'<text x="{_PAD}" y="16">Latency (ms): legacy vs candidate, max {top:.3g} ms</text>'
        f'<rect class="legacy" x="{_W - 200}" y="6" width="10" height="10"/>'
        f'<text x="{_W - 186}" y="15">legacy</text>'
        f'<rect class="candidate" x="{_W - 120}" y="6" width="10" height="10"/>'
        f'<text x="{_W - 106}" y="15">candidate</text>'
        f"{''.join(parts)}</svg>"
    )


def render_html(doc: Document, out: TextIO) -> None:
    """Write the report as one self-contained HTML page to ``out``."""
    verdict = "pass" if doc["passed"] else "fail"
    out.write('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">')
    out.write(f"<title>{escape(headline(doc))}</title><style>{_CSS}</style></head><body>")
    out.write(f'<h1 class="{verdict}" id="headline">{escape(headline(doc))}</h1>')
    out.write('<h2>Charts</h2><div class="charts">')
    for domain in doc["domains"]:
        out.write(_timeline_svg(domain))
    out.write(_latency_svg(doc["domains"]))
    out.write("</div>")
    for section in sections(doc):
        out.write(f"<h2>{escape(section.title)}</h2>")
        out.write("<table><thead><tr>")
        out.write("".join(f"<th>{escape(c)}</th>" for c in section.columns))
        out.write("</tr></thead><tbody>")
        for row, style in zip(section.rows, section.styles, strict=True):
            out.write(f'<tr class="{style}">' + "".join(f"<td>{escape(c)}</td>" for c in row))
            out.write("</tr>")
        out.write("</tbody></table>")
    for note in doc["notes"]:
        out.write(f'<p class="note">note: {escape(note)}</p>')
    out.write("</body></html>\n")
