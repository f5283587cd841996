"""The report as one self-contained HTML page that tells the story at a glance.

Owns the HTML format: one file, no scripts, no external assets. A verdict
banner (pass, fail or insufficient, naming the routes that block and why),
then a card per domain (counts, the gates that do not pass, the divergence
rate over the evidence present, per-day bars over the gate window with the
clean streak, each route's latency), then details on demand in collapsible
sections: fingerprints with examples, documented and undocumented
differences, gates and the other tables. Every client-controlled string is
escaped (``printable``, then HTML). Imports the charts, the verdict and the
shared sections.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any, TextIO

from shadowproxy.report.charts import Gap, activity_svg, days_svg, latency_svg, span_text
from shadowproxy.report.summary import DomainSummary
from shadowproxy.report.tabular import (
    Document,
    Section,
    format_percent,
    printable,
    sections,
    window_line,
)
from shadowproxy.report.timeparse import format_duration, format_instant, parse_record_ts
from shadowproxy.report.verdict import (
    Standing,
    gates_verdict,
    standings,
    verdict,
    verdict_sentence,
)

__all__ = ["render_html"]

_CSS = """
:root{--fail:#b3261e;--insufficient:#8a5a00;--pass:#17803d;--legacy:#4e79a7;--candidate:#e07b24}
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1f2328;background:#f6f7f9}
main{padding:0 24px 24px}
.banner{padding:16px 24px;color:#fff}
.banner.fail{background:var(--fail)} .banner.insufficient{background:var(--insufficient)}
.banner.pass{background:var(--pass)}
.banner h1{margin:0;font-size:22px} .banner p{margin:4px 0}
.banner ul{margin:8px 0 0;padding:0;list-style:none;display:grid;
grid-template-columns:max-content minmax(0,1fr);gap:3px 14px}
.banner li{display:contents} .banner li span{overflow-wrap:anywhere}
.banner code{background:rgba(255,255,255,.18);padding:0 4px;border-radius:3px}
.banner .status{font-weight:700}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(560px,100%),1fr));
gap:16px;margin:16px 0}
.scroll{overflow-x:auto}
.card{background:#fff;border:1px solid #d0d7de;border-top:6px solid #888;border-radius:6px;
padding:10px 16px;min-width:0}
.card.fail{border-top-color:var(--fail)} .card.insufficient{border-top-color:var(--insufficient)}
.card.pass{border-top-color:var(--pass)}
.card h2{margin:0 0 6px;font-size:18px;overflow-wrap:anywhere}
.card h3{margin:12px 0 4px;font-size:14px}
.badge{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;font-weight:700;
color:#fff;vertical-align:middle}
.badge.fail{background:var(--fail)} .badge.insufficient{background:var(--insufficient)}
.badge.pass{background:var(--pass)}
.counts{display:grid;grid-template-columns:repeat(5,minmax(0,1fr));gap:4px 12px;margin:6px 0}
.counts div{font-size:12px;color:#57606a} .counts b{display:block;font-size:15px;color:#1f2328}
.counts small{display:block;font-size:11px}
.howto{font-size:13px;color:#57606a;max-width:70em}
ul.gates{margin:6px 0;padding-left:18px} ul.gates li{overflow-wrap:anywhere}
li.fail::marker{color:var(--fail)} li.insufficient::marker{color:var(--insufficient)}
figure{margin:8px 0} figcaption{font-size:12px;color:#57606a;overflow-wrap:anywhere}
.route{border-top:1px solid #eaeef2;padding:6px 0}
.route p{margin:0 0 4px;overflow-wrap:anywhere}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
.legend .legacy{background:var(--legacy)} .legend .candidate{background:var(--candidate)}
svg{max-width:100%;height:auto;display:block}
svg text{font:11px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;fill:#333}
rect.window{fill:#e6e8eb} rect.evidence-span{fill:#1f2328} rect.uncovered{fill:var(--fail)}
rect.rate{fill:#d4a72c} rect.rate.structural{fill:var(--fail)} rect.rate.none{fill:#c8c8c8}
rect.rate.zero{fill:var(--pass)} rect.gap{fill:#eceef1}
rect.day.clean{fill:var(--pass)} rect.day.structural{fill:var(--fail)}
rect.day.empty{fill:#f6f7f9;stroke:#b0b0b0;stroke-dasharray:3 2}
rect.streak{fill:var(--pass)}
rect.bar.legacy{fill:var(--legacy)} rect.bar.candidate{fill:var(--candidate)}
line.axis{stroke:#888} line.grid{stroke:#ccc;stroke-dasharray:2 2}
details{background:#fff;border:1px solid #d0d7de;border-radius:6px;margin:8px 0;padding:6px 12px}
summary{cursor:pointer;font-weight:600}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}
th,td{border:1px solid #d8dee4;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f3f4f6} td.long{overflow-wrap:anywhere}
tr.pass td:first-child{border-left:4px solid var(--pass)}
tr.fail td:first-child{border-left:4px solid var(--fail)}
tr.warn td:first-child{border-left:4px solid var(--insufficient)}
p.note{color:#57606a}
"""


_LONG_WORD = 24
_HOWTO = (
    "Each domain's card: its counts (rate and 95% upper bound), the gates that do not pass, "
    "then two charts. The first shows the share of compared exchanges that diverged (red "
    "when structural; any rate above zero is at least 4 px tall, and thin green marks show "
    "where nothing diverged) over the evidence present only, grey where it has a gap; "
    "the strip above it places that evidence in the gate window, with the gaps that keep the "
    "window from being covered underlined in red. The second has one bar per "
    "24 hours of the gate window up to the report's end: its height is the number compared, "
    "red when a structural divergence happened, an empty frame when there was no evidence; "
    "the green line above it is the clean streak. Latency bars are per route, to scale within "
    "the route. Hover a bar for its numbers; the details at the end hold every table."
)


def _e(text: object) -> str:
    return escape(printable(str(text)))


def _domain_status(domain: str, gates: Sequence[Mapping[str, Any]]) -> str:
    return gates_verdict([g for g in gates if g["domain"] == domain])


def _standing_item(line: Standing) -> str:
    where = (
        f"<code>{_e(line.route)}</code> ({_e(line.domain)})"
        if line.route
        else f"domain <code>{_e(line.domain)}</code>"
    )
    return (
        f'<li class="{line.status}" data-route="{_e(line.route)}" data-domain="{_e(line.domain)}">'
        f'<span class="status">{line.status.upper()}</span>'
        f"<span>{where}: {_e(line.why)}</span></li>"
    )


def _banner(doc: Document, lines: Sequence[Standing]) -> str:
    word = verdict(doc)
    blocking = [line for line in lines if line.status != "pass"]
    items = "".join(_standing_item(line) for line in blocking)
    notes = "".join(f"<p>note: {_e(note)}</p>" for note in doc["notes"])
    damaged = len(doc["inputs"]["problems"])
    if damaged:
        notes = (
            f'<p class="unreadable">{damaged} {"file has" if damaged == 1 else "files have"} '
            "evidence that could not be read: it keeps gates from passing (details below, "
            "“Evidence that could not be read”).</p>" + notes
        )
    return (
        f'<header class="banner {word}" id="verdict" data-verdict="{word}">'
        f"<h1>shadow report {_e(verdict_sentence(doc, lines))}</h1>"
        f"<p>{_e(window_line(doc))}; generated {_e(doc['generated_at'])}</p>"
        f'<ul class="blocking">{items}</ul>{notes}</header>'
    )


def _count(name: str, item: Mapping[str, Any]) -> str:
    rate = item["rates"][name]
    share = (
        ""
        if rate["rate"] is None
        else f"<small>{format_percent(rate['rate'])} (≤{format_percent(rate['upper95'])})</small>"
    )
    return f"<div>{name}<b>{item[name]}</b>{share}</div>"


def _counts(item: Mapping[str, Any]) -> str:
    return (
        '<div class="counts">'
        + f"<div>compared<b>{item['compared']}</b></div>"
        + "".join(_count(name, item) for name in ("structural", "semantic", "timing", "errors"))
        + _count("noise", item)
        + f"<div>skipped<b>{item['skipped']}</b></div>"
        + f"<div>clean for<b>{format_duration(item.get('clean_for_s'))}</b></div>"
        + _covered(item)
        + "</div>"
    )


def _covered(item: Mapping[str, Any]) -> str:
    """How much of the window the rollups cover, and the gaps over ``max_gap``."""
    coverage = item.get("coverage")
    if coverage is None:
        return ""
    gaps = coverage["gaps_total"]
    detail = "no gap" if not gaps else f"{gaps} {'gap' if gaps == 1 else 'gaps'}"
    return (
        f"<div>covered<b>{format_duration(coverage['covered_s'])}</b>"
        f"<small>{detail} over {format_duration(coverage['max_gap_s'])}</small></div>"
    )


def _gates(domain: str, gates: Sequence[Mapping[str, Any]]) -> str:
    """Failed gates one by one; the insufficient ones on one line, with the first reason."""
    mine = [g for g in gates if g["domain"] == domain]
    failed = [g for g in mine if g["status"] == "fail"]
    thin = [g for g in mine if g["status"] == "insufficient"]
    if not failed and not thin:
        return f"<p>All {len(mine)} gates pass.</p>"
    items = [
        f'<li class="fail"><b>{_e(g["name"])}</b> fails: {_e(g["reason"])}</li>' for g in failed
    ]
    uncovered = [g for g in thin if g["name"] == "coverage"]
    items.extend(
        f'<li class="insufficient"><b>coverage</b> not met: {_e(g["reason"])}</li>'
        for g in uncovered
    )
    thin = [g for g in thin if g["name"] != "coverage"]
    if thin:
        reason = thin[0]["reason"].removeprefix("insufficient evidence: ")
        names = ", ".join(g["name"] for g in thin)
        items.append(
            f'<li class="insufficient"><b>insufficient evidence</b> for {_e(names)}: '
            f"{_e(reason)}</li>"
        )
    return '<ul class="gates">' + "".join(items) + "</ul>"


def _gaps(item: Mapping[str, Any]) -> list[Gap]:
    """The longest gaps the coverage gate found, for the chart's strip."""
    coverage = item.get("coverage") or {}
    return [
        (
            parse_record_ts(g["start"]),
            parse_record_ts(g["end"]),
            f"not covered ({g['where']}{', ' + g['worker'] if g['worker'] else ''}): "
            f"{g['start']} to {g['end']} ({format_duration(g['seconds'])})",
        )
        for g in coverage.get("gaps", ())
    ]


def _activity_caption(summary: DomainSummary, since: float, until: float) -> str:
    points = summary.activity
    first, last = points[0].start, max(p.end for p in points)
    return (
        f"Evidence from {format_instant(first)} to {format_instant(last)} "
        f"({span_text(last - first)}): it starts {span_text(first - since)} after the "
        f"{span_text(until - since)} gate window opens and ends "
        f"{span_text(until - last)} before it closes."
    )


def _route_block(route: Mapping[str, Any], line: Standing | None) -> str:
    status = line.status if line else "pass"
    latency = route["latency"]
    ratio = latency["p99_ratio"]
    extra = f" · p99 ratio {ratio:.2f}x" if ratio is not None else ""
    why = f": {_e(line.why)}" if line else ""
    measured = any(
        v is not None for side in ("legacy", "candidate") for v in latency[side].values()
    )
    chart = latency_svg(route) if measured else "<p>No latency observations.</p>"
    return (
        f'<div class="route" data-status="{status}"><p><span class="badge {status}">'
        f"{status.upper()}</span> <code>{_e(route['route'])}</code>{why}{extra}</p>"
        f"{chart}</div>"
    )


def _card(
    domain: str,
    doc: Document,
    summary: DomainSummary | None,
    lines: Sequence[Standing],
    until: float,
) -> str:
    status = _domain_status(domain, doc["gates"])
    item = next((d for d in doc["domains"] if d["domain"] == domain), None)
    parts = [
        f'<article class="card {status}" data-domain="{_e(domain)}">',
        f'<h2>{_e(domain)} <span class="badge {status}">{status.upper()}</span></h2>',
    ]
    if item is not None:
        parts.append(_counts(item))
    parts.append(_gates(domain, doc["gates"]))
    if item is not None and summary is not None and summary.activity:
        # The document's instants, both to the millisecond: a 14d window reads 14d.
        since = parse_record_ts(item["since"])
        parts.append(
            f"<figure>{activity_svg(domain, summary.activity, since, until, _gaps(item))}"
            f"<figcaption>{_e(_activity_caption(summary, since, until))}</figcaption></figure>"
        )
        parts.append(
            f"<figure>{days_svg(item, summary.days, until)}<figcaption>Compared per 24 hours "
            f"of the {span_text(until - since)} gate window; red: a structural divergence that "
            "day; empty frame: no evidence.</figcaption></figure>"
        )
    elif item is not None:
        parts.append(f"<p>{_e(_no_series(doc))}</p>")
    # Routes in the order of their standing: what blocks first.
    rank = {(line.domain, line.route): i for i, line in enumerate(lines)}
    routes = sorted(
        (r for r in doc["routes"] if r["domain"] == domain),
        key=lambda r: rank.get((domain, r["route"]), len(rank)),
    )
    if routes:
        by_route = {(line.domain, line.route): line for line in lines}
        parts.append(
            '<h3>Routes <span class="legend"><span class="legacy"></span>legacy'
            '<span class="candidate"></span>candidate</span></h3>'
        )
        parts.extend(_route_block(r, by_route.get((domain, r["route"]))) for r in routes)
    parts.append("</article>")
    return "".join(parts)


def _no_series(doc: Document) -> str:
    if doc["source"] == "prometheus":
        return "Fleet mode reads totals over the window from Prometheus: no timeline to draw."
    return "No rollups in the window: nothing to draw."


def _cell(text: str) -> str:
    # Cells wrap between words; one with a word too long to sit in a column (a long
    # route or example, client text) may break anywhere, so it cannot widen the page.
    long = any(len(word) > _LONG_WORD for word in text.split())
    return ('<td class="long">' if long else "<td>") + f"{_e(text)}</td>"


def _table(columns: Iterable[str], rows: Iterable[Sequence[str]], styles: Iterable[str]) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        f'<tr class="{style}">' + "".join(_cell(c) for c in row) + "</tr>"
        for row, style in zip(rows, styles, strict=True)
    )
    # A wide table scrolls inside its box on a narrow screen instead of spilling out.
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _details(summary: str, body: str, kind: str) -> str:
    return f'<details class="{kind}"><summary>{_e(summary)}</summary>{body}</details>'


def _section(section: Section) -> str:
    body = _table(section.columns, section.rows, section.styles) if section.rows else "<p>none</p>"
    kind = section.title.split(" ")[0].lower()
    return _details(f"{section.title} ({len(section.rows)} rows)", body, kind)


def _differences(doc: Document) -> str:
    documented = [f for f in doc["fingerprints"] if f["documented"]]
    undocumented = [f for f in doc["fingerprints"] if not f["documented"]]
    body = "<h3>Undocumented</h3>" + (
        _table(
            ("Count", "Route", "Class", "Kind", "Path", "Example"),
            [
                (str(f["count"]), f["route"], f["class"], f["kind"], f["path"], f["example"])
                for f in undocumented
            ],
            ["warn" if f["class"] == "semantic" else "" for f in undocumented],
        )
        if undocumented
        else "<p>none</p>"
    )
    body += "<h3>Documented (known differences)</h3>" + (
        _table(
            ("Count", "Route", "Class", "Kind", "Path", "Reason", "Owner"),
            [
                (
                    str(f["count"]),
                    f["route"],
                    f["class"],
                    f["kind"],
                    f["path"],
                    f["reason"] or "",
                    f["owner"] or "",
                )
                for f in documented
            ],
            ["" for _ in documented],
        )
        if documented
        else "<p>none</p>"
    )
    return _details(
        f"Differences: {len(undocumented)} undocumented, {len(documented)} documented",
        body,
        "differences",
    )


def render_html(doc: Document, out: TextIO, domains: Sequence[DomainSummary] = ()) -> None:
    """Write the report as one self-contained HTML page to ``out``.

    ``domains`` carries the chart series (``DomainSummary.activity`` and
    ``days``), which the JSON document does not.
    """
    lines = standings(doc)
    until = parse_record_ts(doc["window"]["until"])
    series = {d.domain: d for d in domains}
    names = sorted({d["domain"] for d in doc["domains"]} | {g["domain"] for g in doc["gates"]})
    order = {"fail": 0, "insufficient": 1, "pass": 2}
    names.sort(key=lambda name: order[_domain_status(name, doc["gates"])])
    out.write('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">')
    out.write('<meta name="viewport" content="width=device-width, initial-scale=1">')
    out.write(f"<title>shadow report: {verdict(doc).upper()}</title><style>{_CSS}</style>")
    out.write("</head><body>")
    out.write(_banner(doc, lines))
    out.write(f'<main><p class="howto">{_HOWTO}</p><section class="cards">')
    for name in names:
        if name != "*":
            out.write(_card(name, doc, series.get(name), lines, until))
    out.write('</section><section class="details"><h2>Details</h2>')
    tables = sections(doc)
    # Fingerprints and differences first: the gates' story is already told above.
    fingerprints = [s for s in tables if s.title.startswith("Top divergence fingerprints")]
    for section in fingerprints:
        out.write(_section(section))
        out.write(_differences(doc))
    for section in tables:
        if section not in fingerprints:
            out.write(_section(section))
    out.write("</section></main></body></html>\n")
