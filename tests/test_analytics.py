"""The analytics page: figures computed in PostgreSQL, drawn as SVG on the server."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from multidict import MultiDict

from tests.webdata import NOW, Client, add_event, add_shipment, add_shop
from tracker.config import Config
from tracker.web import build_app
from tracker.web.analytics import Period, fetch_report
from tracker.web.analytics_page import build_charts, duration_words, parse_days
from tracker.web.charts import Series, grouped_bars, nice_ticks, stacked_columns

SVG = "{http://www.w3.org/2000/svg}"
ATTACK = "<script>alert(1)</script>"


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(pool, Config()), host="127.0.0.1")) as test_client:
        yield test_client


def at(period: Period, days_ago: int, hour: int = 12) -> datetime:
    """``hour`` o'clock UTC ``days_ago`` days before the period's last day."""
    day = period.dates[-1] - timedelta(days=days_ago)
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


# --- charts, without a server -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("top", "ticks"),
    [
        (37, [0, 10, 20, 30, 40]),
        (5, [0, 1, 2, 3, 4, 5]),
        (100, [0, 20, 40, 60, 80, 100]),
        (0.6, [0, 0.2, 0.4, 0.6]),
        (0, [0, 1]),
        (1234, [0, 250, 500, 750, 1000, 1250]),
    ],
)
def test_ticks_are_round_and_reach_the_top(top: float, ticks: list[float]) -> None:
    assert nice_ticks(top) == pytest.approx(ticks)


def test_counts_get_whole_ticks() -> None:
    assert nice_ticks(11) == pytest.approx([0, 2.5, 5, 7.5, 10, 12.5])
    assert nice_ticks(11, whole=True) == [0, 5, 10, 15]
    assert nice_ticks(3, whole=True) == [0, 1, 2, 3]
    assert nice_ticks(0.4, whole=True) == [0, 1]


def test_a_chart_is_well_formed_svg_with_title_desc_axes_and_legend() -> None:
    svg = stacked_columns(
        chart_id="demo",
        title="Parcels per day",
        desc="Two days of parcels.",
        labels=["Mar 01", "Mar 02"],
        series=[
            Series("In transit", "#4a90d9", (3.0, 1.0)),
            Series("Delivered", "#2da44e", (0.0, 4.0)),
        ],
        y_title="Shipments",
        x_title="Day (UTC)",
    )
    root = ET.fromstring(str(svg))
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "demo-title demo-desc"
    assert root.find(f"{SVG}title").text == "Parcels per day"
    assert root.find(f"{SVG}desc").text == "Two days of parcels."
    texts = [t.text for t in root.iter(f"{SVG}text")]
    for words in ("Parcels per day", "In transit", "Delivered", "Shipments", "Day (UTC)"):
        assert words in texts
    assert "Mar 01" in texts
    assert "Mar 02" in texts
    assert "5" in texts  # the total above the second column
    tips = [t.text for t in root.iter(f"{SVG}title")]
    assert "Mar 02 · Delivered: 4" in tips
    assert "Mar 01 · Delivered: 0" not in tips  # empty segments are not drawn


def test_every_text_in_a_chart_is_escaped() -> None:
    svg = grouped_bars(
        chart_id="evil",
        title=f"Title {ATTACK}",
        desc=f'Desc "{ATTACK}"',
        labels=[ATTACK],
        series=[Series(f"Series {ATTACK}", "#cf222e", (2.0,), (f"{ATTACK} text",))],
        x_title=ATTACK,
    )
    assert "<script" not in svg
    root = ET.fromstring(str(svg))
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert ATTACK in texts
    assert f"{ATTACK} text" in texts


def test_colours_and_ids_cannot_carry_markup() -> None:
    with pytest.raises(ValueError, match="#rrggbb"):
        Series("x", 'red" onload="alert(1)', (1.0,))
    with pytest.raises(ValueError, match="chart id"):
        grouped_bars(chart_id='a"b', title="t", desc="d", labels=[], series=[], x_title="x")


def test_an_empty_chart_says_so() -> None:
    svg = grouped_bars(chart_id="none", title="t", desc="d", labels=[], series=[], x_title="x")
    assert "No data in this range." in svg
    ET.fromstring(str(svg))


def test_days_parameter_and_durations() -> None:
    assert parse_days(MultiDict()) == 30
    assert parse_days(MultiDict(days="7")) == 7
    assert parse_days(MultiDict(days=" 90 ")) == 90
    assert [duration_words(s) for s in (None, 5, 125, 3 * 3600 + 300, 50 * 3600)] == [
        "—",
        "5 s",
        "2 min",
        "3 h 5 min",
        "2 d 2 h",
    ]


# --- the figures, from SQL ----------------------------------------------------------------------


async def seed(pool: asyncpg.Pool, period: Period) -> dict[str, int]:
    """Six shipments whose figures are worked out by hand in the tests below."""
    shop = await add_shop(pool)
    other_shop = await add_shop(pool, "other.myshopify.com")
    ids: dict[str, int] = {}

    # dhl: picked up 4 days ago, delivered 2 days ago (2.0 d), on the first ETA's day.
    a = ids["a"] = await add_shipment(
        pool,
        shop,
        "#A",
        status="delivered",
        status_at=at(period, 2),
        first_eta=at(period, 2, hour=8),
    )
    pending = await add_event(pool, a, at(period, 4), "carrier_picked_up")
    await add_event(pool, a, at(period, 4, hour=18), "in_transit")
    await add_event(pool, a, at(period, 2), "delivered")
    # dhl: label 5 days ago (pre-transit: not the start), moving 4 days ago, delivered 1 day
    # ago (3.0 d), a day after its first ETA.
    b = ids["b"] = await add_shipment(
        pool, shop, "#B", status="delivered", status_at=at(period, 1), first_eta=at(period, 2)
    )
    await add_event(pool, b, at(period, 5), "label_purchased")
    await add_event(pool, b, at(period, 4), "in_transit")
    await add_event(pool, b, at(period, 1), "delivered")
    await add_event(pool, b, at(period, 1, hour=13), None)  # a scan without a status
    # dhl: delivered six hours after its first scan (0.25 d), no ETA.
    c = ids["c"] = await add_shipment(
        pool, shop, "#C", status="delivered", status_at=at(period, 3, hour=18)
    )
    await add_event(pool, c, at(period, 3), "in_transit")
    await add_event(pool, c, at(period, 3, hour=18), "delivered")
    # ups: failed.
    d = ids["d"] = await add_shipment(
        pool, shop, "#D", carrier="ups", status="failure", status_at=at(period, 2)
    )
    await add_event(pool, d, at(period, 3), "in_transit")
    await add_event(pool, d, at(period, 2), "failure")
    # ups: a failed delivery attempt, still out there.
    e = ids["e"] = await add_shipment(
        pool, other_shop, "#E", carrier="ups", status="attempted_delivery", status_at=at(period, 1)
    )
    await add_event(pool, e, at(period, 2), "in_transit")
    sending = await add_event(pool, e, at(period, 1), "attempted_delivery")
    # ups: only the delivery scan; transit counts from fulfilment (2.0 d); on time.
    f = ids["f"] = await add_shipment(
        pool,
        shop,
        "#F",
        carrier="ups",
        status="delivered",
        status_at=at(period, 1),
        fulfilled_at=at(period, 3),
        first_eta=at(period, 0),
    )
    await add_event(pool, f, at(period, 1), "delivered")
    # Outside the period or without a carrier: counted nowhere.
    old = await add_shipment(
        pool,
        shop,
        "#OLD",
        status="delivered",
        status_at=at(period, 20),
        fulfilled_at=at(period, 25),
    )
    await add_event(pool, old, at(period, 22), "in_transit")
    await add_event(pool, old, at(period, 20), "delivered")
    await add_shipment(pool, shop, "#NONE", carrier=None)

    # Write-back: one pending for 3 hours, one sending for 10 minutes, one pending elsewhere.
    await pool.execute(
        "UPDATE tracking_events SET writeback_state = 'pending',"
        " discovered_at = now() - interval '3 hours' WHERE id = $1",
        pending,
    )
    await pool.execute(
        "UPDATE tracking_events SET writeback_state = 'sending',"
        " discovered_at = now() - interval '10 minutes' WHERE id = $1",
        sending,
    )
    await add_event(pool, f, at(period, 0, hour=1), None, writeback_state="pending")
    return ids


async def test_status_by_day_counts_each_shipment_once_a_day_by_its_last_scan(
    pool: asyncpg.Pool,
) -> None:
    period = Period.last(7, NOW)
    await seed(pool, period)
    report = await fetch_report(pool, period)

    def day(days_ago: int) -> dict[str, int]:
        index = len(period.dates) - 1 - days_ago
        return {key: counts[index] for key, counts in report.status_by_day.items() if counts[index]}

    assert day(5) == {"pre_transit": 1}
    assert day(4) == {"in_transit": 2}
    assert day(3) == {"in_transit": 1, "delivered": 1}
    assert day(2) == {"delivered": 1, "failure": 1, "in_transit": 1}
    assert day(1) == {"delivered": 2, "attention": 1}
    assert day(0) == {}
    assert len(report.status_by_day["delivered"]) == 7


async def test_transit_days_on_time_and_exception_rates_per_carrier(pool: asyncpg.Pool) -> None:
    period = Period.last(7, NOW)
    await seed(pool, period)
    report = await fetch_report(pool, period)
    deliveries = {row.carrier: row for row in report.deliveries}
    assert set(deliveries) == {"dhl", "ups", None}

    dhl, ups, everyone = deliveries["dhl"], deliveries["ups"], deliveries[None]
    assert (dhl.delivered, dhl.timed) == (3, 3)
    assert dhl.median_days == pytest.approx(2.0)
    assert dhl.p90_days == pytest.approx(2.8)  # 0.25, 2, 3: 2 + 0.8 * (3 - 2)
    assert ups.median_days == pytest.approx(2.0)
    assert ups.p90_days == pytest.approx(2.0)
    assert everyone.median_days == pytest.approx(2.0)
    assert everyone.p90_days == pytest.approx(2.7)

    assert (dhl.with_eta, dhl.on_time, dhl.on_time_pct) == (2, 1, 50.0)
    assert (ups.with_eta, ups.on_time, ups.on_time_pct) == (1, 1, 100.0)
    assert (everyone.with_eta, everyone.on_time, everyone.on_time_pct) == (3, 2, 66.7)

    exceptions = {row.carrier: row for row in report.exceptions}
    assert set(exceptions) == {"dhl", "ups", None}
    assert (exceptions["dhl"].shipments, exceptions["dhl"].failed) == (3, 0)
    ups_x = exceptions["ups"]
    assert (ups_x.shipments, ups_x.failed, ups_x.attempted) == (3, 1, 1)
    assert (ups_x.failed_pct, ups_x.attempted_pct) == (33.3, 33.3)
    assert (exceptions[None].shipments, exceptions[None].failed_pct) == (6, 16.7)


async def test_write_back_backlog_per_shop_with_the_oldest_wait(pool: asyncpg.Pool) -> None:
    period = Period.last(7, NOW)
    await seed(pool, period)
    backlog = {row.shop: row for row in (await fetch_report(pool, period)).backlog}

    acme, other, everyone = (
        backlog["acme.myshopify.com"],
        backlog["other.myshopify.com"],
        backlog[None],
    )
    assert (acme.pending, acme.sending) == (2, 0)
    assert (other.pending, other.sending) == (0, 1)
    assert (everyone.pending, everyone.sending) == (2, 1)
    assert acme.oldest_seconds is not None
    assert 3 * 3600 <= acme.oldest_seconds < 4 * 3600
    assert everyone.oldest_seconds == acme.oldest_seconds


async def test_nothing_to_show_is_an_empty_report_not_an_error(pool: asyncpg.Pool) -> None:
    report = await fetch_report(pool, Period.last(90, NOW))
    assert report.deliveries == []
    assert report.exceptions == []
    [total] = report.backlog
    assert (total.shop, total.pending, total.sending, total.oldest_seconds) == (None, 0, 0, None)
    for chart in build_charts(report):
        ET.fromstring(str(chart.svg))


# --- the page -----------------------------------------------------------------------------------


async def test_page_draws_five_labelled_charts_with_their_numbers(
    client: Client, pool: asyncpg.Pool
) -> None:
    await seed(pool, Period.last(7, NOW))
    response = await client.get("/analytics?days=7")
    assert response.status == 200
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    page = await response.text()

    charts = re.findall(r"<svg .*?</svg>", page, flags=re.S)
    assert len(charts) == 5
    titles = [ET.fromstring(svg).find(f"{SVG}title").text for svg in charts]
    assert titles == [
        "Shipments by status, per day (last 7 days)",
        "Transit days per carrier (delivered in the last 7 days)",
        "On time against the first ETA (delivered in the last 7 days)",
        "Exception rate per carrier (shipped in the last 7 days)",
        "Write-back backlog (now)",
    ]
    assert "<script" not in page
    assert 'aria-current="page" class="current">Last 7 days' in page
    # The numbers beside the charts.
    assert "<td>2.8 d</td>" in page
    assert "50% (1 of 2)" in page
    assert "33.3% (1 of 3)" in page
    assert "<td>3 h 0 min</td>" in page or "<td>3 h</td>" in page


@pytest.mark.parametrize("days", ["7", "30", "90", ""])
async def test_each_period_renders(client: Client, pool: asyncpg.Pool, days: str) -> None:
    await seed(pool, Period.last(7, NOW))
    response = await client.get(f"/analytics?days={days}")
    assert response.status == 200, await response.text()
    shown = days or "30"
    assert f"(last {shown} days)" in await response.text()


@pytest.mark.parametrize("days", ["15", "abc", "-7", "7.0", "0", "1" * 30, "%00"])
async def test_other_periods_are_400(client: Client, days: str) -> None:
    response = await client.get(f"/analytics?days={days}")
    assert response.status == 400
    page = await response.text()
    assert "Bad request" in page
    assert "days must be 7, 30 or 90" in page


async def test_carrier_and_shop_names_are_shown_as_text(client: Client, pool: asyncpg.Pool) -> None:
    shop = await add_shop(pool, ATTACK)
    period = Period.last(7, NOW)
    shipment = await add_shipment(
        pool, shop, "#X", carrier=ATTACK, status="delivered", status_at=at(period, 1)
    )
    await add_event(pool, shipment, at(period, 2), "in_transit", writeback_state="pending")
    await add_event(pool, shipment, at(period, 1), "failure")
    await add_event(pool, shipment, at(period, 1, hour=14), "delivered")

    page = await (await client.get("/analytics?days=7")).text()
    assert ATTACK not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for svg in re.findall(r"<svg .*?</svg>", page, flags=re.S):
        texts = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]
        assert all("<script" not in (text or "") or text == ATTACK for text in texts)
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 6


async def test_header_links_to_analytics(client: Client) -> None:
    page = await (await client.get("/analytics")).text()
    assert '<a class="nav" href="/analytics">Analytics</a>' in page
    assert "Sign out" not in page  # no login on loopback without web.auth


def test_period_is_whole_utc_days_ending_tonight() -> None:
    period = Period.last(7, datetime(2026, 3, 10, 23, 59, tzinfo=UTC))
    assert period.start == datetime(2026, 3, 4, tzinfo=UTC)
    assert period.end == datetime(2026, 3, 11, tzinfo=UTC)
    assert period.dates[0].isoformat() == "2026-03-04"
    assert period.dates[-1].isoformat() == "2026-03-10"
    assert period.end - period.start == timedelta(days=7)
