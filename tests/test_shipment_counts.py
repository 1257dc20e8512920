"""``shipment_counts``: the tabs' counts kept by triggers, and the pages planned from them.

Real PostgreSQL. Every way shipments change (insert, upsert, update, delete, COPY, truncate,
a rolled-back transaction, two at once) must leave the counts equal to a count of the rows;
counts and pages read through them must be what reading every shipment gives.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import asyncpg
import pytest

from tests.tabledata import NOW, add_shop, ship, varied_shipments
from tracker.web import queries
from tracker.web.counts import compact_counts, fetch_counts
from tracker.web.queries import fetch_page, page_statement
from tracker.web.selection import SORTS, TABS, Params, ShipmentFilter, conditions_sql

GROUPS = (
    "shop_id, status, carrier_state, attention, active, stopped_reason, carrier, retired_reason"
)


async def assert_counts_true(pool: asyncpg.Pool) -> None:
    truth = await pool.fetch(
        f"SELECT {GROUPS}, count(*) AS n FROM shipments GROUP BY {GROUPS} ORDER BY {GROUPS}"
    )
    kept = await pool.fetch(
        f"SELECT {GROUPS}, sum(n)::bigint AS n FROM shipment_counts"
        f" GROUP BY {GROUPS} HAVING sum(n) <> 0 ORDER BY {GROUPS}"
    )
    assert [tuple(r) for r in kept] == [tuple(r) for r in truth]


async def test_counts_follow_every_kind_of_change_to_shipments(pool: asyncpg.Pool) -> None:
    shop = await add_shop(pool)
    await pool.execute(
        """
        INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id, tracking_number)
        SELECT $1, 'o' || g, '#' || g, 'f' || g, 't' || g FROM generate_series(1, 40) g
        """,
        shop,
    )
    await assert_counts_true(pool)
    await pool.execute(
        "UPDATE shipments SET status = 'in_transit', carrier_state = 'found' WHERE id % 3 = 0"
    )
    await pool.execute("UPDATE shipments SET next_poll_at = now()")  # moves no row
    await assert_counts_true(pool)
    # The sync's upsert: new rows inserted, existing ones updated, in one statement.
    await pool.execute(
        """
        INSERT INTO shipments AS s (shop_id, order_id, order_name, fulfillment_id, tracking_number)
        SELECT $1, 'o' || g, '#' || g, 'f' || g, 't' || g FROM generate_series(35, 50) g
        ON CONFLICT (shop_id, fulfillment_id, tracking_number)
        DO UPDATE SET retired_reason = 'fulfillment or order cancelled', active = false
        """,
        shop,
    )
    await assert_counts_true(pool)
    await pool.copy_records_to_table(
        "shipments",
        records=[(shop, "o-copy", "#copy", "f-copy", "t-copy", "ups")],
        columns=(
            "shop_id",
            "order_id",
            "order_name",
            "fulfillment_id",
            "tracking_number",
            "carrier",
        ),
    )
    await pool.execute("DELETE FROM shipments WHERE id % 5 = 0")
    await assert_counts_true(pool)

    async with pool.acquire() as conn:
        rollback = conn.transaction()
        await rollback.start()
        await conn.execute("UPDATE shipments SET status = 'delivered'")
        await rollback.rollback()
    await assert_counts_true(pool)

    async def change(status: str, remainder: int) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE shipments SET status = $1, attention = 'stalled' WHERE id % 2 = $2",
                status,
                remainder,
            )
            await asyncio.sleep(0.05)  # both transactions open at once

    await asyncio.gather(change("delayed", 0), change("failure", 1))
    await assert_counts_true(pool)

    groups = await pool.fetchval(f"SELECT count(*) FROM (SELECT DISTINCT {GROUPS} FROM shipments)")
    assert await pool.fetchval("SELECT count(*) FROM shipment_counts") > groups
    assert await compact_counts(pool)
    assert await pool.fetchval("SELECT count(*) FROM shipment_counts") == groups
    await assert_counts_true(pool)

    await pool.execute("TRUNCATE shipments CASCADE")
    assert await pool.fetchval("SELECT count(*) FROM shipment_counts") == 0


VIEWS = [
    ShipmentFilter(),
    ShipmentFilter(include_inactive=True),
    ShipmentFilter(tab="active", statuses=("in_transit", "delivered"), no_status=True),
    ShipmentFilter(carrier="unknown"),
    ShipmentFilter(carrier="dhl", attention=("stalled", "not_found")),
    ShipmentFilter(store="b.myshopify.com", tab="problems"),
    ShipmentFilter(statuses=("delivered",), carrier="unknown"),  # no row at all
    ShipmentFilter(shipped_from=NOW - timedelta(days=2), shipped_before=NOW),
    ShipmentFilter(search="#a00"),
    ShipmentFilter(last_scan_before=NOW - timedelta(hours=7)),
    ShipmentFilter(carrier="dhl", last_scan_before=NOW - timedelta(hours=2), include_inactive=True),
    ShipmentFilter(last_scan_before=NOW - timedelta(hours=7), search="#a00"),
]


async def two_stores(pool: asyncpg.Pool) -> None:
    await varied_shipments(pool, await add_shop(pool, "a.myshopify.com"), 40)
    other = await add_shop(pool, "b.myshopify.com")
    await varied_shipments(pool, other, 17)
    await ship(pool, other, "#B1", carrier=None, carrier_state="no_adapter")
    await ship(pool, other, "#B2", retired_reason="fulfillment or order cancelled", active=False)


@pytest.mark.parametrize("where", VIEWS)
async def test_tab_counts_are_the_rows_each_tab_shows(
    pool: asyncpg.Pool, where: ShipmentFilter
) -> None:
    await two_stores(pool)
    counts = await fetch_counts(pool, where)
    for tab in TABS:
        param = Params()
        conditions = conditions_sql(replace(where, tab=tab), param)
        rows = await pool.fetchval(
            f"SELECT count(*) FROM shipments s WHERE {conditions}",
            *param.values,
        )
        assert counts.tabs[tab] == rows, tab


PLANS = {
    "walk-then-read": {},
    "short-walk-then-read": {"WALK": 3},
    "walk-the-index": {"MATERIALIZE_BELOW": 0},
}


@pytest.mark.parametrize("plan", list(PLANS))
@pytest.mark.parametrize("where", VIEWS)
async def test_pages_planned_from_the_counts_are_the_pages_of_every_row(
    pool: asyncpg.Pool, where: ShipmentFilter, plan: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await two_stores(pool)
    for name, value in PLANS[plan].items():
        monkeypatch.setattr(queries, name, value)
    for tab in TABS:
        view = replace(where, tab=tab)
        for sort, spec in SORTS.items():
            got: list[int] = []
            after = None
            while True:  # every page, 20 rows each
                page = await fetch_page(pool, view, sort, spec.descending, after, 20)
                got.extend(row["id"] for row in page.rows)
                after = page.next
                if after is None:
                    break
            sql, args = page_statement(view, sort, spec.descending, None, 1000)
            expected = [row["id"] for row in await pool.fetch(sql, *args)]
            assert got == expected, (tab, sort)
