"""``GET /analytics?days=7|30|90``: the figures of :mod:`tracker.web.analytics` as SVG charts.

Each chart comes with its numbers as a table (under "The numbers"), so nothing depends on
reading a bar's length; the period is in the URL (default 30 days; anything else but 7, 30 or
90 is a 400).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web
from markupsafe import Markup
from multidict import MultiMapping

from tracker.web.analytics import (
    DEFAULT_RANGE,
    RANGES,
    STATUS_GROUPS,
    Backlog,
    Deliveries,
    Exceptions,
    Period,
    Report,
    fetch_report,
)
from tracker.web.charts import Series, grouped_bars, number, stacked_columns

if TYPE_CHECKING:
    from tracker.web.app import Pages

ALL = "All carriers"
ALL_SHOPS = "All shops"


@dataclass(frozen=True, slots=True)
class Table:
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Chart:
    key: str
    svg: Markup
    table: Table


def days_text(days: float) -> str:
    """``2.4 d``; under a day in hours (``5.5 h``), so short transits do not all read 0.0 d."""
    return f"{days:.1f} d" if days >= 1 else f"{days * 24:.1f} h"


def parse_days(query: MultiMapping[str]) -> int:
    """The ``days`` parameter: 7, 30 or 90 (blank or absent: 30); 400 otherwise."""
    raw = query.get("days", "").strip()
    if not raw:
        return DEFAULT_RANGE
    if raw not in {str(days) for days in RANGES}:
        raise web.HTTPBadRequest(
            reason="days must be " + ", ".join(map(str, RANGES[:-1])) + f" or {RANGES[-1]}"
        )
    return int(raw)


def duration_words(seconds: float | None) -> str:
    """``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``; an em dash for None."""
    if seconds is None:
        return "—"
    seconds = max(seconds, 0)
    if seconds < 60:
        return f"{int(seconds)} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _days(value: float | None) -> str:
    return "—" if value is None else days_text(value)


def _share(part: int, whole: int, pct: float | None) -> str:
    return "—" if pct is None or not whole else f"{pct:g}% ({part:,} of {whole:,})"


def _carrier(name: str | None) -> str:
    return ALL if name is None else name


def status_chart(report: Report) -> Chart:
    period = report.period
    labels = [day.strftime("%b %d") for day in period.dates]
    series = [
        Series(g.name, g.color, tuple(float(n) for n in report.status_by_day[g.key]))
        for g in STATUS_GROUPS
    ]
    totals = {g.name: sum(report.status_by_day[g.key]) for g in STATUS_GROUPS}
    first, last = period.dates[0], period.dates[-1]
    desc = (
        f"One column per UTC day from {first:%Y-%m-%d} to {last:%Y-%m-%d}; its segments count "
        "the shipments whose last scan that day left them in each status. Totals: "
        + "; ".join(f"{name} {count:,}" for name, count in totals.items())
        + "."
    )
    svg = stacked_columns(
        chart_id="status-by-day",
        title=f"Shipments by status, per day (last {period.days} days)",
        desc=desc,
        labels=labels,
        series=series,
        y_title="Shipments",
        x_title="Day (UTC)",
    )
    rows = [
        (f"{day:%Y-%m-%d}", *(f"{report.status_by_day[g.key][i]:,}" for g in STATUS_GROUPS))
        for i, day in enumerate(period.dates)
        if any(report.status_by_day[g.key][i] for g in STATUS_GROUPS)
    ]
    return Chart("status-by-day", svg, Table(("Day", *(g.name for g in STATUS_GROUPS)), rows))


def transit_chart(report: Report, rows: list[Deliveries]) -> Chart:
    timed = [r for r in rows if r.timed]
    labels = [_carrier(r.carrier) for r in timed]
    desc = "; ".join(
        f"{_carrier(r.carrier)}: median {_days(r.median_days)}, 90th percentile "
        f"{_days(r.p90_days)} over {r.timed:,} deliveries"
        for r in timed
    )
    svg = grouped_bars(
        chart_id="transit-days",
        title=f"Transit days per carrier (delivered in the last {report.period.days} days)",
        desc=desc or "No deliveries in this range.",
        labels=labels,
        series=[
            Series("Median", "#4a90d9", tuple(r.median_days for r in timed)),
            Series("90th percentile", "#0b4a8b", tuple(r.p90_days for r in timed)),
        ],
        x_title="Days from the first carrier scan (else fulfilment) to delivery",
        value_text=days_text,
    )
    table = Table(
        ("Carrier", "Deliveries", "Median", "90th percentile"),
        [
            (_carrier(r.carrier), f"{r.timed:,}", _days(r.median_days), _days(r.p90_days))
            for r in timed
        ],
    )
    return Chart("transit-days", svg, table)


def on_time_chart(report: Report, rows: list[Deliveries]) -> Chart:
    known = [r for r in rows if r.with_eta]
    texts = tuple(_share(r.on_time, r.with_eta, r.on_time_pct) for r in known)
    svg = grouped_bars(
        chart_id="on-time",
        title=f"On time against the first ETA (delivered in the last {report.period.days} days)",
        desc="; ".join(f"{_carrier(r.carrier)}: {t}" for r, t in zip(known, texts, strict=True))
        or "No deliveries with an ETA in this range.",
        labels=[_carrier(r.carrier) for r in known],
        series=[Series("On time", "#2da44e", tuple(r.on_time_pct for r in known), texts)],
        x_title="Delivered on or before the day (UTC) of the carrier's first ETA",
        value_text=lambda v: f"{v:g}%",
        top=100,
    )
    table = Table(
        ("Carrier", "Delivered with an ETA", "On time", "Share"),
        [
            (_carrier(r.carrier), f"{r.with_eta:,}", f"{r.on_time:,}", f"{r.on_time_pct:g}%")
            for r in known
        ],
    )
    return Chart("on-time", svg, table)


def exceptions_chart(report: Report, rows: list[Exceptions]) -> Chart:
    failed = tuple(_share(r.failed, r.shipments, r.failed_pct) for r in rows)
    attempted = tuple(_share(r.attempted, r.shipments, r.attempted_pct) for r in rows)
    svg = grouped_bars(
        chart_id="exceptions",
        title=f"Exception rate per carrier (shipped in the last {report.period.days} days)",
        desc="; ".join(
            f"{_carrier(r.carrier)}: failed or returned {f}, delivery attempt failed {a}"
            for r, f, a in zip(rows, failed, attempted, strict=True)
        )
        or "No shipments in this range.",
        labels=[_carrier(r.carrier) for r in rows],
        series=[
            Series("Failed or returned", "#cf222e", tuple(r.failed_pct for r in rows), failed),
            Series(
                "Delivery attempt failed",
                "#bf8700",
                tuple(r.attempted_pct for r in rows),
                attempted,
            ),
        ],
        x_title="Share of the shipments fulfilled in the period",
        value_text=lambda v: f"{v:g}%",
    )
    table = Table(
        ("Carrier", "Shipments", "Failed or returned", "Delivery attempt failed"),
        [
            (_carrier(r.carrier), f"{r.shipments:,}", f, a)
            for r, f, a in zip(rows, failed, attempted, strict=True)
        ],
    )
    return Chart("exceptions", svg, table)


def backlog_chart(rows: list[Backlog]) -> Chart:
    def shop(row: Backlog) -> str:
        return ALL_SHOPS if row.shop is None else row.shop

    waiting = tuple(
        f"{r.pending:,} pending · oldest {duration_words(r.oldest_seconds)}" for r in rows
    )
    svg = grouped_bars(
        chart_id="writeback-backlog",
        title="Write-back backlog (now)",
        desc="; ".join(
            f"{shop(r)}: {r.pending:,} pending, {r.sending:,} sending, oldest waiting "
            f"{duration_words(r.oldest_seconds)}"
            for r in rows
        ),
        labels=[shop(r) for r in rows],
        series=[
            Series("Pending", "#bf8700", tuple(float(r.pending) for r in rows), waiting),
            Series("Sending", "#4a90d9", tuple(float(r.sending) for r in rows)),
        ],
        x_title="Tracking events not yet written to Shopify",
        value_text=number,
        whole=True,
    )
    table = Table(
        ("Shop", "Pending", "Sending", "Oldest waiting"),
        [
            (shop(r), f"{r.pending:,}", f"{r.sending:,}", duration_words(r.oldest_seconds))
            for r in rows
        ],
    )
    return Chart("writeback-backlog", svg, table)


def build_charts(report: Report) -> list[Chart]:
    """Every chart of the page, in page order."""
    return [
        status_chart(report),
        transit_chart(report, report.deliveries),
        on_time_chart(report, report.deliveries),
        exceptions_chart(report, report.exceptions),
        backlog_chart(report.backlog),
    ]


@dataclass(frozen=True)
class AnalyticsPage:
    pool: asyncpg.Pool
    pages: Pages

    async def handle(self, request: web.Request) -> web.Response:
        days = parse_days(request.query)
        report = await fetch_report(self.pool, Period.last(days))
        return self.pages.render(
            "analytics.html",
            charts=build_charts(report),
            period=report.period,
            ranges=RANGES,
        )


def install_analytics(app: web.Application, pool: asyncpg.Pool, pages: Pages) -> None:
    """Serve ``GET /analytics`` on ``app``."""
    page = AnalyticsPage(pool, pages)
    app.router.add_get("/analytics", page.handle, name="analytics")
