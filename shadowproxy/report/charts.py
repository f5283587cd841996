"""The HTML page's charts as inline SVG, drawn so that they cannot mislead.

Owns three charts:

- ``activity_svg``: the divergence rate over the evidence actually present
  (the x axis runs from the first rollup's start to the last one's end,
  never over empty days), above a strip of the whole gate window showing
  where that evidence lies; every non-zero rate is at least 2 px tall;
- ``days_svg``: one bar per 24 hours of the gate window (compared count,
  red when a structural divergence happened that day, an empty frame when
  there was no evidence), and a bracket over the clean streak;
- ``latency_svg``: one route's legacy and candidate p50/p95/p99 side by
  side, values written beside the bars on rows of their own.

Text sits in reserved bands or on its own row so labels never overlap; the
browser tests measure that. Every string drawn is escaped. Standard library
and the report's values only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from shadowproxy.report.summary import Counts, SeriesPoint
from shadowproxy.report.tabular import format_percent, printable
from shadowproxy.report.timeparse import format_duration

__all__ = ["Gap", "activity_svg", "days_svg", "latency_svg", "span_text"]

_W = 520
_PAD_L, _PAD_R = 44, 12
_PLOT_W = _W - _PAD_L - _PAD_R
_CHAR_PX = 7.0
"""A generous width of one character at the charts' 11 px monospace font."""
_MIN_BAR_PX = 2.0
_MIN_RATE_PX = 4.0
"""The least height of a non-zero rate: tall enough to tell from a zero mark (2 px)."""
_MAX_DAY_BARS = 60


def _safe(text: str) -> str:
    """Client text for SVG: non-printable characters spelled out, then HTML-escaped."""
    return escape(printable(text))


def _svg(kind: str, height: float, title: str, body: str, extra: str = "") -> str:
    return (
        f'<svg class="chart {kind}" width="{_W}" height="{height:.0f}" '
        f'viewBox="0 0 {_W} {height:.0f}" xmlns="http://www.w3.org/2000/svg" '
        f'role="img"{extra}><title>{_safe(title)}</title>{body}</svg>'
    )


def _text(x: float, y: float, text: str, anchor: str = "start", cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{klass}>{_safe(text)}</text>'


def _instant(epoch: float, span: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    if span < 10:
        return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    return moment.strftime("%Y-%m-%d %H:%M:%S" if span < 86400 else "%Y-%m-%d %H:%M")


def span_text(seconds: float) -> str:
    """A duration for captions: ``0.34 s`` below a minute, else ``3d 4h``, ``14d``, ``5h 12m``."""
    if seconds < 60:
        return f"{seconds:.3g} s"
    text = format_duration(seconds)
    return text.removesuffix(" 0h").removesuffix(" 0m").removesuffix(" 0s")


def _nice_top(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (capped at 100%)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value - 1e-12:
            return min(1.0, step * power)
    return 1.0


def _counts_title(counts: Counts) -> str:
    return (
        f"{counts.compared} compared, {counts.diverged} diverged, "
        f"{counts.structural} structural, {counts.semantic} semantic, "
        f"{counts.timing} timing, {counts.errors} errors"
    )


def _runs(points: Sequence[SeriesPoint]) -> list[tuple[float, float]]:
    """Stretches of continuous evidence: points joined unless a gap is a real absence.

    A gap counts when it is wider than twice the median point and 1% of the
    evidence's span; shorter ones are the spacing of rollups.
    """
    widths = sorted(p.end - p.start for p in points)
    span = max(p.end for p in points) - points[0].start
    threshold = max(2 * widths[len(widths) // 2], span / 100)
    runs = [(points[0].start, points[0].end)]
    for point in points[1:]:
        start, end = runs[-1]
        if point.start - end > threshold:
            runs.append((point.start, point.end))
        else:
            runs[-1] = (start, max(end, point.end))
    return runs


Gap = tuple[float, float, str]
"""A stretch of the gate window the evidence does not cover: start, end, what it is."""


def _strip(
    runs: Sequence[tuple[float, float]],
    gaps: Sequence[Gap],
    since: float,
    until: float,
    y: float,
) -> str:
    """The whole gate window, the stretches of evidence on it and, underlined in red, the
    gaps the coverage gate found (each at least 2 px)."""
    whole = max(until - since, 1e-9)
    label = f"the {span_text(until - since)} gate window: evidence in black"
    parts = [
        _text(_PAD_L, y - 8, label + ("; not covered in red" if gaps else "")),
        f'<rect class="window" x="{_PAD_L}" y="{y}" width="{_PLOT_W}" height="8"/>',
    ]
    for cls, top, height, stretches in (
        ("evidence-span", y - 2, 12, [(start, end, "") for start, end in runs]),
        ("uncovered", y + 11, 4, gaps),
    ):
        for start, end, what in stretches:
            lo = _PAD_L + (start - since) / whole * _PLOT_W
            width = max(_MIN_BAR_PX, (end - start) / whole * _PLOT_W)
            title = f"<title>{_safe(what)}</title>" if what else ""
            parts.append(
                f'<rect class="{cls}" x="{min(lo, _PAD_L + _PLOT_W - width):.2f}" '
                f'y="{top}" width="{width:.2f}" height="{height}">{title}</rect>'
            )
    return "".join(parts)


def _rate_bar(point: SeriesPoint, x0: float, x1: float, base: float, scale: float) -> str:
    counts = point.counts
    rate = counts.diverged / counts.compared if counts.compared else 0.0
    if not counts.compared:
        height, cls = _MIN_BAR_PX, "rate none"
    elif not rate:
        height, cls = _MIN_BAR_PX, "rate zero"
    else:
        height = max(_MIN_RATE_PX, rate * scale)
        cls = "rate structural" if counts.structural else "rate"
    span = point.end - point.start
    label = f"{_instant(point.start, span)} to {_instant(point.end, span)} UTC: " + (
        f"{_counts_title(counts)} ({format_percent(rate)} diverged)"
        if counts.compared
        else "nothing compared"
    )
    width = max(_MIN_BAR_PX, x1 - x0)
    return (
        f'<rect class="{cls}" data-rate="{rate:.6g}" data-compared="{counts.compared}" '
        f'x="{min(x0, _PAD_L + _PLOT_W - width):.2f}" y="{base - height:.2f}" '
        f'width="{width:.2f}" height="{height:.2f}">'
        f"<title>{_safe(label)}</title></rect>"
    )


def activity_svg(
    domain: str,
    points: Sequence[SeriesPoint],
    since: float,
    until: float,
    gaps: Sequence[Gap] = (),
) -> str:
    """The divergence rate over the evidence present, where it sits in the gate window, and
    the ``gaps`` in the window's coverage."""
    title = f"Divergence rate over the evidence: {domain}"
    if not points:
        return _svg("activity", 60, title, _text(_W / 2, 34, "no rollups in the window", "middle"))
    first, last = points[0].start, max(p.end for p in points)
    span = max(last - first, 0.001)
    plot_top, plot_h = 52.0, 110.0
    base = plot_top + plot_h
    top = _nice_top(
        max(p.counts.diverged / p.counts.compared for p in points if p.counts.compared)
        if any(p.counts.compared for p in points)
        else 0.0
    )

    def x(t: float) -> float:
        return _PAD_L + (t - first) / span * _PLOT_W

    runs = _runs(points)
    parts = [
        _strip(runs, gaps, since, until, 20.0),
        _text(_PAD_L - 4, plot_top + 4, format_percent(top), "end"),
        _text(_PAD_L - 4, base, "0%", "end"),
        f'<line class="axis" x1="{_PAD_L}" y1="{base}" x2="{_PAD_L + _PLOT_W}" y2="{base}"/>',
        f'<line class="grid" x1="{_PAD_L}" y1="{plot_top}" x2="{_PAD_L + _PLOT_W}" '
        f'y2="{plot_top}"/>',
    ]
    for (_, end), (start, _) in itertools.pairwise(runs):
        label = f"no evidence from {_instant(end, span)} to {_instant(start, span)} UTC"
        parts.append(
            f'<rect class="gap" x="{x(end):.2f}" y="{plot_top}" width="{x(start) - x(end):.2f}" '
            f'height="{plot_h}"><title>{label}</title></rect>'
        )
    for i, point in enumerate(points):
        stop = min(point.end, points[i + 1].start) if i + 1 < len(points) else point.end
        parts.append(_rate_bar(point, x(point.start), x(stop), base, plot_h / top))
    parts.append(_text(_PAD_L, base + 16, _instant(first, span)))
    parts.append(_text(_PAD_L + _PLOT_W, base + 16, _instant(last, span), "end"))
    return _svg("activity", base + 24, title, "".join(parts), f' data-domain="{_safe(domain)}"')


def _grouped(days: Sequence[SeriesPoint]) -> list[SeriesPoint]:
    """At most ``_MAX_DAY_BARS`` bars: consecutive days summed when the window is longer."""
    size = max(1, math.ceil(len(days) / _MAX_DAY_BARS))
    if size == 1:
        return list(days)
    groups = []
    for i in range(len(days) % size or size, len(days) + 1, size):
        chunk = days[max(0, i - size) : i]
        total = Counts()
        for day in chunk:
            total = total + day.counts
        groups.append(SeriesPoint(chunk[0].start, chunk[-1].end, total))
    return groups


def days_svg(domain: Mapping[str, Any], days: Sequence[SeriesPoint], until: float) -> str:
    """Per-day compared counts over the window, structural days in red, the clean streak marked."""
    name = domain["domain"]
    title = f"Day by day over the gate window: {name}"
    if not days:
        return _svg("days", 60, title, _text(_W / 2, 34, "no rollups in the window", "middle"))
    bars = _grouped(days)
    since = bars[0].start
    whole = max(until - since, 1e-9)
    streak_y, plot_top, plot_h = 14.0, 40.0, 80.0
    base = plot_top + plot_h
    peak = max(b.counts.compared for b in bars) or 1

    def x(t: float) -> float:
        return _PAD_L + (t - since) / whole * _PLOT_W

    parts = [
        _text(_PAD_L - 4, plot_top + 4, str(peak), "end"),
        _text(_PAD_L - 4, base, "0", "end"),
        f'<line class="axis" x1="{_PAD_L}" y1="{base}" x2="{_PAD_L + _PLOT_W}" y2="{base}"/>',
    ]
    slot = _PLOT_W / len(bars)
    every = max(1, math.ceil(_CHAR_PX * 6 / slot))
    for i, bar in enumerate(bars):
        x0, x1 = x(bar.start), x(bar.end)
        gap = min(3.0, (x1 - x0) * 0.2)
        counts = bar.counts
        if counts.compared:
            height = max(3.0, counts.compared / peak * plot_h)
            cls = "day structural" if counts.structural else "day clean"
            top = base - height
        else:
            height, cls, top = plot_h, "day empty", plot_top
        label = f"{_instant(bar.start, 86400)} to {_instant(bar.end, 86400)} UTC: " + (
            _counts_title(counts) if counts.compared else "no evidence"
        )
        parts.append(
            f'<rect class="{cls}" data-compared="{counts.compared}" '
            f'data-structural="{counts.structural}" x="{x0 + gap / 2:.2f}" y="{top:.2f}" '
            f'width="{max(1.0, x1 - x0 - gap):.2f}" height="{height:.2f}">'
            f"<title>{_safe(label)}</title></rect>"
        )
        if (len(bars) - 1 - i) % every == 0:
            day = datetime.fromtimestamp(bar.end - 1e-3, UTC).strftime("%m-%d")
            parts.append(_text((x0 + x1) / 2, base + 14, day, "middle"))
    parts.append(_streak(domain, since, until, x, days, streak_y))
    return _svg("days", base + 22, title, "".join(parts), f' data-domain="{_safe(name)}"')


def _streak(
    domain: Mapping[str, Any],
    since: float,
    until: float,
    x: Callable[[float], float],
    days: Sequence[SeriesPoint],
    y: float,
) -> str:
    clean = domain.get("clean_for_s")
    if clean is None:
        return _text(_PAD_L, y, "no evidence in the window")
    start = max(since, until - clean)
    width = max(_MIN_BAR_PX, x(until) - x(start))
    empty = sum(1 for d in days if d.end > start and not d.counts.compared)
    words = (
        f"clean for {format_duration(clean)} since the last structural"
        if domain.get("last_structural")
        else f"no structural divergence in {format_duration(clean)}"
    )
    if empty:
        words += f"; {empty} {'day lacks' if empty == 1 else 'days lack'} evidence"
    return (
        f'<rect class="streak" x="{x(until) - width:.2f}" y="{y + 6}" '
        f'width="{width:.2f}" height="4"/>'
        + _text(_PAD_L + _PLOT_W, y, words, "end", "streak-label")
    )


def latency_svg(route: Mapping[str, Any]) -> str:
    """Legacy and candidate p50/p95/p99 of one route, each value beside its bar."""
    latency = route["latency"]
    values = [
        (q, side, latency[side][q])
        for q in ("p50", "p95", "p99")
        for side in ("legacy", "candidate")
    ]
    known = [v for _, _, v in values if v is not None]
    top = max(known, default=0.0) or 1.0
    row, gap, label_w = 15.0, 6.0, 72.0
    bar_room = _PLOT_W - label_w
    parts = []
    y = 4.0
    for i, (q, side, value) in enumerate(values):
        if i % 2 == 0:
            parts.append(_text(_PAD_L - 6, y + row + 1, q, "end"))
        length = 0.0 if value is None else max(_MIN_BAR_PX, value / top * bar_room)
        text = "no data" if value is None else f"{value:.3g} ms"
        parts.append(
            f'<rect class="bar {side}" x="{_PAD_L}" y="{y:.1f}" width="{length:.2f}" '
            f'height="{row - 4}"><title>{_safe(route["route"])} {q} {side}: '
            f"{text}</title></rect>"
        )
        parts.append(_text(_PAD_L + length + 4, y + row - 5, text, cls=f"value {side}"))
        y += row + (gap if i % 2 else 0)
    return _svg(
        "latency",
        y + 2,
        f"Latency of {route['route']}: legacy vs candidate",
        "".join(parts),
        f' data-route="{_safe(route["route"])}"',
    )
