"""Attention flags and carrier circuits, computed and kept in PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tracker.config import AttentionConfig
from tracker.engine.attention import refresh_attention, stalled_on_or_before
from tracker.engine.circuit import open_circuits, record_failure, record_success


@pytest.mark.parametrize(
    ("start", "end", "weekdays"),
    [
        ("2026-11-27 10:00Z", "2026-11-30 10:00Z", 1),  # Friday to Monday: only Monday
        ("2026-11-23 10:00Z", "2026-11-27 10:00Z", 4),  # Monday to Friday
        ("2026-11-27 10:00Z", "2026-11-29 23:00Z", 0),  # the weekend does not count
        ("2026-11-27 10:00Z", "2026-11-27 09:00Z", 0),
    ],
)
async def test_business_days(conn, start, end, weekdays):
    assert (
        await conn.fetchval(
            "SELECT business_days_between($1::timestamptz, $2::timestamptz)",
            datetime.fromisoformat(start.replace("Z", "+00:00")),
            datetime.fromisoformat(end.replace("Z", "+00:00")),
        )
        == weekdays
    )


async def test_stalled_cutoff_agrees_with_business_days_between(conn):
    # Every last-scan day of the 6 weeks before each day of a fortnight, for 1 to 8 weekdays:
    # the refresh's date cutoff flags exactly those the SQL definition counts as stalled.
    rows = await conn.fetch(
        """
        SELECT today::date AS today, scan::date AS scan, n,
               business_days_between(scan + interval '13 hours', today + interval '9 hours') AS bd
        FROM generate_series(date '2026-11-16', date '2026-11-29', interval '1 day') AS today,
             generate_series(today - interval '42 days', today, interval '1 day') AS scan,
             generate_series(1, 8) AS n
        """
    )
    assert len(rows) == 14 * 43 * 8
    wrong = [
        dict(r)
        for r in rows
        if (r["scan"] <= stalled_on_or_before(r["today"], r["n"])) != (r["bd"] >= r["n"])
    ]
    assert not wrong, wrong[:5]


async def add(conn, name: str, **columns) -> int:
    shop = await conn.fetchval(
        "INSERT INTO shops (domain, api_version) VALUES ('a.myshopify.com', '2026-10')"
        " ON CONFLICT (domain) DO UPDATE SET api_version = EXCLUDED.api_version RETURNING id"
    )
    values = {"carrier": "dhl", "carrier_state": "found", **columns}
    names = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(6, 6 + len(values)))
    return await conn.fetchval(
        f"INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id, tracking_number,"
        f" {names}) VALUES ($1, $2, $3, $4, $5, {params}) RETURNING id",
        shop,
        f"gid://shopify/Order/{name}",
        name,
        f"gid://shopify/Fulfillment/{name}",
        f"N{name}",
        *values.values(),
    )


async def test_each_shipment_carries_its_most_urgent_flag(conn, pool):
    now = datetime.now(UTC)
    long_ago = now - timedelta(days=14)
    ids = {
        "failed": await add(conn, "failed", status="failure", last_scan_at=now),
        "attempt": await add(conn, "attempt", status="attempted_delivery", last_scan_at=now),
        "missing": await add(
            conn, "missing", carrier_state="not_found", not_found_since=now - timedelta(days=4)
        ),
        "missing_new": await add(
            conn, "missing_new", carrier_state="not_found", not_found_since=now - timedelta(days=1)
        ),
        "expired": await add(
            conn,
            "expired",
            status="in_transit",
            stopped_reason="expired",
            active=False,
            last_scan_at=now - timedelta(days=31),
        ),
        "stalled": await add(conn, "stalled", status="in_transit", last_scan_at=long_ago),
        "moving": await add(conn, "moving", status="in_transit", last_scan_at=now),
        "late": await add(
            conn, "late", status="in_transit", last_scan_at=now, first_eta=now - timedelta(days=3)
        ),
        "pickup": await add(
            conn,
            "pickup",
            status="ready_for_pickup",
            last_scan_at=now,
            status_at=now - timedelta(days=6),
        ),
        "untracked": await add(
            conn, "untracked", carrier=None, carrier_state="untracked", active=False
        ),
        "unknown": await add(conn, "unknown", carrier=None, carrier_state="no_adapter"),
        "done": await add(
            conn, "done", status="delivered", last_scan_at=long_ago, first_eta=long_ago
        ),
        "retired": await add(
            conn, "retired", status="failure", retired_reason="fulfillment or order cancelled"
        ),
    }
    assert await refresh_attention(pool, AttentionConfig()) == 9
    rows = await conn.fetch("SELECT order_name, attention, attention_since FROM shipments")
    flags = {r["order_name"]: r["attention"] for r in rows}
    assert flags == {
        "failed": "returned_or_failed",
        "attempt": "delivery_attempt_failed",
        "missing": "not_found",
        "missing_new": None,
        "expired": "expired",
        "stalled": "stalled",
        "moving": None,
        "late": "late",
        "pickup": "waiting_at_pickup",
        "untracked": "no_tracking_number",
        "unknown": "carrier_not_tracked",
        "done": None,
        "retired": None,
    }
    assert all((r["attention"] is None) == (r["attention_since"] is None) for r in rows)
    # Delivered at last: the flag goes; a second run changes nothing more.
    await conn.execute("UPDATE shipments SET status = 'delivered' WHERE id = $1", ids["late"])
    assert await refresh_attention(pool, AttentionConfig()) == 1
    assert await refresh_attention(pool, AttentionConfig()) == 0


async def test_thresholds_are_configurable(conn, pool):
    await add(
        conn, "stalled", status="in_transit", last_scan_at=datetime.now(UTC) - timedelta(days=14)
    )
    assert await refresh_attention(pool, AttentionConfig(stalled_in_transit_business_days=30)) == 0
    assert await refresh_attention(pool, AttentionConfig()) == 1


async def test_not_found_threshold_may_be_a_fraction_of_a_day(conn, pool):
    # The demo runs parcels on a fast clock: its "3 days not found" are seconds.
    now = datetime.now(UTC)
    for name, hours in (("long", 13), ("short", 11)):
        await add(
            conn, name, carrier_state="not_found", not_found_since=now - timedelta(hours=hours)
        )
    assert await refresh_attention(pool, AttentionConfig(not_found_days=0.5)) == 1
    flags = dict(await conn.fetch("SELECT order_name, attention FROM shipments"))
    assert flags == {"long": "not_found", "short": None}


async def test_a_failing_carrier_opens_its_circuit_and_a_success_closes_it(pool):
    for _ in range(4):
        assert not await record_failure(
            pool, "dhl", "HTTP 503", threshold=5, open_for=timedelta(minutes=10)
        )
    assert await open_circuits(pool) == {}
    assert await record_failure(
        pool, "dhl", "HTTP 503", threshold=5, open_for=timedelta(minutes=10)
    )
    assert set(await open_circuits(pool)) == {"dhl"}
    await record_failure(pool, "ups", "timeout", threshold=5, open_for=timedelta(minutes=10))
    assert set(await open_circuits(pool)) == {"dhl"}  # other carriers unaffected
    await record_success(pool, "dhl")
    assert await open_circuits(pool) == {}


async def scans(conn, shipment_id: int, *scans: tuple[str | None, timedelta]) -> None:
    """Stored scans of a shipment: (status, how long ago)."""
    now = datetime.now(UTC)
    for n, (status, ago) in enumerate(scans):
        await conn.execute(
            "INSERT INTO tracking_events (shipment_id, status, happened_at, dedupe_key,"
            " writeback_state) VALUES ($1, $2, $3, $4, 'skipped')",
            shipment_id,
            status,
            now - ago,
            f"k{n}",
        )


async def test_waiting_at_a_pickup_point_counts_from_the_arrival_and_is_not_stalled(conn, pool):
    """Issue 5: waiting at a pickup point more than 5 days. A carrier's reminder scan (the same
    status again) does not restart the count, and a parcel there for ten days, with no scan
    since it arrived, is waiting for its recipient, not stalled in transit or late."""
    day = timedelta(days=1)
    cases = {
        # name: (scans, days since the newest scan, first ETA days ago)
        "reminded": ([("in_transit", 9 * day), ("ready_for_pickup", 8 * day),
                      ("ready_for_pickup", 2 * day)], 2, 9),
        "quiet": ([("in_transit", 11 * day), ("ready_for_pickup", 10 * day)], 10, 11),
        "fresh": ([("in_transit", 4 * day), ("ready_for_pickup", 3 * day)], 3, 4),
        # Sent on to another point: the wait there began two days ago.
        "moved": ([("ready_for_pickup", 9 * day), ("in_transit", 3 * day),
                   ("ready_for_pickup", 2 * day), (None, 1 * day)], 1, 10),
    }  # fmt: skip
    now = datetime.now(UTC)
    for name, (history, newest, eta) in cases.items():
        shipment = await add(
            conn,
            name,
            status="ready_for_pickup",
            status_at=now - [ago for status, ago in history if status][-1],
            last_scan_at=now - newest * day,
            first_eta=now - eta * day,
        )
        await scans(conn, shipment, *history)
    await refresh_attention(pool, AttentionConfig())
    flags = dict(await conn.fetch("SELECT order_name, attention FROM shipments"))
    assert flags == {
        "reminded": "waiting_at_pickup",
        "quiet": "waiting_at_pickup",
        "fresh": None,
        "moved": None,
    }


async def test_shipments_of_a_carrier_no_longer_configured_are_flagged_not_tracked(conn, pool):
    """Issue 5: carrier unknown or disabled. UPS taken out of the configuration: its shipments
    are polled no more, and say so, whether they were polled before or never."""
    now = datetime.now(UTC)
    await add(conn, "ups_pending", carrier="ups", carrier_state="pending")
    await add(conn, "ups_moving", carrier="ups", status="in_transit", last_scan_at=now)
    await add(conn, "dhl_moving", carrier="dhl", status="in_transit", last_scan_at=now)
    assert await refresh_attention(pool, AttentionConfig()) == 0  # no carrier list: no judgement
    assert await refresh_attention(pool, AttentionConfig(), tracked=["dhl"]) == 2
    flags = dict(await conn.fetch("SELECT order_name, attention FROM shipments"))
    assert flags == {
        "ups_pending": "carrier_not_tracked",
        "ups_moving": "carrier_not_tracked",
        "dhl_moving": None,
    }
