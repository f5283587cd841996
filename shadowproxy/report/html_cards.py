"""The report page's card per domain: counts, gates, charts, routes with their cutover.

Owns one domain's card on the HTML page (``render_html`` lays the page
out): its counts with rate and 95% upper bound and how long the rollups
cover the window, the gates that do not pass, the divergence-rate and
per-day charts with their captions, then each shadowed route (its standing,
current phase and readiness for cutover, latency) and the routes not
shadowed (their traffic and skip reasons: what the evidence does not cover).
Every client-controlled string is escaped (``escaped``). Imports the
charts, the verdict and the report's readings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from shadowproxy.report.charts import Gap, activity_svg, days_svg, latency_svg, span_text
from shadowproxy.report.cutover_view import Cutovers, RouteCutover, not_shadowed_why
from shadowproxy.report.summary import DomainSummary
from shadowproxy.report.tabular import Document, format_percent, printable
from shadowproxy.report.timeparse import format_duration, format_instant, parse_record_ts
from shadowproxy.report.verdict import Standing, gates_verdict

__all__ = ["card", "domain_status", "escaped"]

_NOT_SHADOWED = (
    "Never compared by design, so the evidence does not cover them; their requests, and why "
    "they were skipped (method: a write not mirrored; upgrade: a WebSocket or gRPC stream; "
    "mode: legacy-only; mirror_off: mirror: false):"
)


def escaped(text: object) -> str:
    """Client text for HTML: non-printable characters spelled out, then escaped."""
    return escape(printable(str(text)))


def domain_status(domain: str, gates: Sequence[Mapping[str, Any]]) -> str:
    """``pass``, ``fail`` or ``insufficient``: the verdict of the domain's gates."""
    return gates_verdict([g for g in gates if g["domain"] == domain])


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
        + (f"<div>streams<b>{item['streams']}</b></div>" if item["streams"] else "")
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
        f'<li class="fail"><b>{escaped(g["name"])}</b> fails: {escaped(g["reason"])}</li>'
        for g in failed
    ]
    uncovered = [g for g in thin if g["name"] == "coverage"]
    items.extend(
        f'<li class="insufficient"><b>coverage</b> not met: {escaped(g["reason"])}</li>'
        for g in uncovered
    )
    thin = [g for g in thin if g["name"] != "coverage"]
    if thin:
        reason = thin[0]["reason"].removeprefix("insufficient evidence: ")
        names = ", ".join(g["name"] for g in thin)
        items.append(
            f'<li class="insufficient"><b>insufficient evidence</b> for {escaped(names)}: '
            f"{escaped(reason)}</li>"
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


def _stage(cutover: RouteCutover, tag: str = "p", phase: bool = True) -> str:
    """``phase canary 25% · ready for cutover: no · missing: parity, drill``."""
    ready = "yes" if cutover.ready else "no"
    missing = "" if cutover.ready else f" · missing: {escaped(cutover.missing_text)}"
    shown = f"phase <b>{escaped(cutover.phase)}</b> · " if phase else ""
    return (
        f'<{tag} class="stage" data-phase="{escaped(cutover.phase)}" data-ready="{ready}">'
        f"{shown}ready for cutover: "
        f'<b class="{"ready" if cutover.ready else "waiting"}">{ready}</b>{missing}</{tag}>'
    )


def _route_block(route: Mapping[str, Any], line: Standing | None, cutover: RouteCutover) -> str:
    status = line.status if line else "pass"
    latency = route["latency"]
    ratio = latency["p99_ratio"]
    extra = f" · p99 ratio {ratio:.2f}x" if ratio is not None else ""
    if route["streams"]:
        extra += f" · {route['streams']} {'stream' if route['streams'] == 1 else 'streams'}"
    why = f": {escaped(line.why)}" if line else ""
    measured = any(
        v is not None for side in ("legacy", "candidate") for v in latency[side].values()
    )
    chart = latency_svg(route) if measured else "<p>No latency observations.</p>"
    return (
        f'<div class="route" data-status="{status}" data-route="{escaped(route["route"])}">'
        f'<p><span class="badge {status}">{status.upper()}</span> '
        f"<code>{escaped(route['route'])}</code>{why}{extra}</p>{_stage(cutover)}{chart}</div>"
    )


def _not_shadowed(item: Mapping[str, Any], cutovers: Cutovers) -> str:
    """The domain's routes never compared by design: what its evidence does not cover."""
    listed = item["not_shadowed"]
    if not listed:
        return ""
    rows = "".join(
        f'<li data-route="{escaped(n["route"])}" data-requests="{n["requests"]}">'
        f"<code>{escaped(n['route'])}</code>: {escaped(not_shadowed_why(n))} · "
        f"{_stage(cutovers[(item['domain'], n['route'])], 'span', phase=False)}</li>"
        for n in listed
    )
    return (
        f'<h3>Not shadowed</h3><p class="note">{_NOT_SHADOWED}</p>'
        f'<ul class="not-shadowed">{rows}</ul>'
    )


def _no_series(doc: Document) -> str:
    if doc["source"] == "prometheus":
        return "Fleet mode reads totals over the window from Prometheus: no timeline to draw."
    return "No rollups in the window: nothing to draw."


def card(
    domain: str,
    doc: Document,
    summary: DomainSummary | None,
    lines: Sequence[Standing],
    cutovers: Cutovers,
    until: float,
) -> str:
    """The card of ``domain``: ``summary`` carries its chart series (None: none to draw)."""
    status = domain_status(domain, doc["gates"])
    item = next((d for d in doc["domains"] if d["domain"] == domain), None)
    parts = [
        f'<article class="card {status}" data-domain="{escaped(domain)}">',
        f'<h2>{escaped(domain)} <span class="badge {status}">{status.upper()}</span></h2>',
    ]
    if item is not None:
        parts.append(_counts(item))
    parts.append(_gates(domain, doc["gates"]))
    if item is not None and summary is not None and summary.activity:
        # The document's instants, both to the millisecond: a 14d window reads 14d.
        since = parse_record_ts(item["since"])
        parts.append(
            f"<figure>{activity_svg(domain, summary.activity, since, until, _gaps(item))}"
            f"<figcaption>{escaped(_activity_caption(summary, since, until))}</figcaption></figure>"
        )
        parts.append(
            f"<figure>{days_svg(item, summary.days, until)}<figcaption>Compared per 24 hours "
            f"of the {span_text(until - since)} gate window; red: a structural divergence that "
            "day; empty frame: no evidence.</figcaption></figure>"
        )
    elif item is not None:
        parts.append(f"<p>{escaped(_no_series(doc))}</p>")
    # Routes in the order of their standing: what blocks first.
    rank = {(line.domain, line.route): i for i, line in enumerate(lines)}
    routes = sorted(
        (r for r in doc["routes"] if r["domain"] == domain and r["status"] != "NOT_SHADOWED"),
        key=lambda r: rank.get((domain, r["route"]), len(rank)),
    )
    if routes:
        by_route = {(line.domain, line.route): line for line in lines}
        parts.append(
            '<h3>Routes <span class="legend"><span class="legacy"></span>legacy'
            '<span class="candidate"></span>candidate</span></h3>'
        )
        parts.extend(
            _route_block(r, by_route.get((domain, r["route"])), cutovers[(domain, r["route"])])
            for r in routes
        )
    if item is not None:
        parts.append(_not_shadowed(item, cutovers))
    parts.append("</article>")
    return "".join(parts)
