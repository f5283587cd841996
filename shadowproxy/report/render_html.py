"""The report as one self-contained HTML page that tells the story at a glance.

Owns the HTML format: one file, no scripts, no external assets, and its
style sheet. A verdict banner (pass, fail or insufficient, naming the
routes that block and why, how many routes are ready for cutover and the
routes not shadowed), then a card per domain (``html_cards``), then details
on demand in collapsible sections: fingerprints with examples, documented
and undocumented differences, gates and the other tables. Every
client-controlled string is escaped (``printable``, then HTML). Imports the
cards, the verdict and the shared sections.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TextIO

from shadowproxy.report.cutover_view import Cutovers
from shadowproxy.report.html_cards import card, domain_status, escaped
from shadowproxy.report.summary import DomainSummary
from shadowproxy.report.tabular import Document, Section, sections, window_line
from shadowproxy.report.timeparse import parse_record_ts
from shadowproxy.report.verdict import Standing, standings, verdict, verdict_sentence

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
p.stage,span.stage{color:#57606a;overflow-wrap:anywhere} p.stage{margin:0 0 4px}
.stage b.ready{color:var(--pass)} .stage b.waiting{color:var(--insufficient)}
ul.not-shadowed{margin:4px 0;padding-left:18px} ul.not-shadowed li{overflow-wrap:anywhere}
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
    "the route; beside each route, its current phase and whether it is ready for cutover "
    "(parity, the canary gates at 100 % and a recent drill), or what it still misses. Routes "
    "never compared by design are listed as not shadowed. Hover a bar for its numbers; the "
    "details at the end hold every table."
)


def _standing_item(line: Standing) -> str:
    where = (
        f"<code>{escaped(line.route)}</code> ({escaped(line.domain)})"
        if line.route
        else f"domain <code>{escaped(line.domain)}</code>"
    )
    return (
        f'<li class="{line.status}" data-route="{escaped(line.route)}" '
        f'data-domain="{escaped(line.domain)}">'
        f'<span class="status">{line.status.upper()}</span>'
        f"<span>{where}: {escaped(line.why)}</span></li>"
    )


def _readiness(doc: Document, cutovers: Cutovers) -> str:
    """How many routes are ready for cutover; then the routes not shadowed, by name."""
    if doc["source"] != "files":
        ready = "Fleet mode has no phases or drills: readiness for cutover needs the files."
    else:
        count = sum(1 for c in cutovers.values() if c.ready)
        ready = (
            f"Ready for cutover (parity, the canary gates at 100 % and a recent drill; not part "
            f"of the verdict): {count} of {len(cutovers)} "
            f"{'route' if len(cutovers) == 1 else 'routes'}."
        )
    listed = [(d["domain"], n) for d in doc["domains"] for n in d["not_shadowed"]]
    if not listed:
        return f'<p class="readiness">{escaped(ready)}</p>'
    names = ", ".join(
        f"<code>{escaped(n['route'])}</code> ({escaped(domain)}, {n['requests']} requests)"
        for domain, n in listed
    )
    return (
        f'<p class="readiness">{escaped(ready)}</p><p class="not-shadowed">Not shadowed by '
        f"design, so the evidence does not cover them: {names}</p>"
    )


def _banner(doc: Document, lines: Sequence[Standing], cutovers: Cutovers) -> str:
    word = verdict(doc)
    blocking = [line for line in lines if line.status != "pass"]
    items = "".join(_standing_item(line) for line in blocking)
    notes = _readiness(doc, cutovers)
    notes += "".join(f"<p>note: {escaped(note)}</p>" for note in doc["notes"])
    damaged = len(doc["inputs"]["problems"])
    if damaged:
        notes = (
            f'<p class="unreadable">{damaged} {"file has" if damaged == 1 else "files have"} '
            "evidence that could not be read: it keeps gates from passing (details below, "
            "“Evidence that could not be read”).</p>" + notes
        )
    return (
        f'<header class="banner {word}" id="verdict" data-verdict="{word}">'
        f"<h1>shadow report {escaped(verdict_sentence(doc, lines))}</h1>"
        f"<p>{escaped(window_line(doc))}; generated {escaped(doc['generated_at'])}</p>"
        f'<ul class="blocking">{items}</ul>{notes}</header>'
    )


def _cell(text: str) -> str:
    # Cells wrap between words; one with a word too long to sit in a column (a long
    # route or example, client text) may break anywhere, so it cannot widen the page.
    long = any(len(word) > _LONG_WORD for word in text.split())
    return ('<td class="long">' if long else "<td>") + f"{escaped(text)}</td>"


def _table(columns: Iterable[str], rows: Iterable[Sequence[str]], styles: Iterable[str]) -> str:
    head = "".join(f"<th>{escaped(c)}</th>" for c in columns)
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
    return f'<details class="{kind}"><summary>{escaped(summary)}</summary>{body}</details>'


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


def render_html(
    doc: Document, out: TextIO, cutovers: Cutovers, domains: Sequence[DomainSummary] = ()
) -> None:
    """Write the report as one self-contained HTML page to ``out``.

    ``cutovers`` says each route's phase and what its readiness misses;
    ``domains`` carries the chart series (``DomainSummary.activity`` and
    ``days``), which the JSON document does not.
    """
    lines = standings(doc)
    until = parse_record_ts(doc["window"]["until"])
    series = {d.domain: d for d in domains}
    names = sorted({d["domain"] for d in doc["domains"]} | {g["domain"] for g in doc["gates"]})
    order = {"fail": 0, "insufficient": 1, "pass": 2}
    names.sort(key=lambda name: order[domain_status(name, doc["gates"])])
    out.write('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">')
    out.write('<meta name="viewport" content="width=device-width, initial-scale=1">')
    out.write(f"<title>shadow report: {verdict(doc).upper()}</title><style>{_CSS}</style>")
    out.write("</head><body>")
    out.write(_banner(doc, lines, cutovers))
    out.write(f'<main><p class="howto">{_HOWTO}</p><section class="cards">')
    for name in names:
        if name != "*":
            out.write(card(name, doc, series.get(name), lines, cutovers, until))
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
