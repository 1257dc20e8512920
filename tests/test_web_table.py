"""The status table's tabs, filters, sorts and keyset pages, as the page and the API show them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from tests.tabledata import (
    Client,
    add_shop,
    api_ids,
    get_json,
    microseconds,
    open_client,
    page_text,
    row_ids,
    ship,
    varied_shipments,
)
from tracker.domain import URGENCY, Status
from tracker.engine.attention import FLAGS
from tracker.web.queries import page_statement
from tracker.web.selection import SORTS, Position, ShipmentFilter

CARRIER_PROBLEMS = ("not_found", "invalid_number", "carrier_error", "unavailable", "no_adapter")
BIG = 2**63 - 1


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[Client]:
    async with open_client(pool) as test_client:
        yield test_client


@pytest.fixture
async def shop(pool: asyncpg.Pool) -> int:
    return await add_shop(pool)


def urgency(attention: str | None, carrier_state: str, status: str | None) -> int:
    """The table's first sort key, from the Python definitions of flags and urgency."""
    if attention is not None:
        return FLAGS.index(attention) + 1 if attention in FLAGS else 0
    if carrier_state in CARRIER_PROBLEMS:
        return 20
    known = Status(status) if status in {s.value for s in Status} else None
    return 21 + URGENCY[known]


def sort_key(sort: str, row: asyncpg.Record) -> tuple[Any, ...]:
    """What the table sorts ``row`` by, in SQL's ascending order (as the indexes hold it)."""
    if sort == "status":
        at = microseconds(row["status_at"])
        rank = urgency(row["attention"], row["carrier_state"], row["status"])
        return (rank, BIG if at is None else -at, row["id"])
    if sort == "order":
        return (row["order_name"], row["id"])
    column, missing = {
        "last_scan": ("last_scan_at", -BIG),
        "eta": ("estimated_delivery_at", BIG),
        "transit": ("fulfilled_at", -BIG),
        "shipped": ("fulfilled_at", -BIG),
    }[sort]
    value = microseconds(row[column])
    return (missing if value is None else value, row["id"])


# Days in transit, descending (most days first), is the oldest shipping date first.
KEYS_FALL_WHEN = {"status": "desc", "order": "desc", "last_scan": "desc", "eta": "desc",
                  "transit": "asc", "shipped": "desc"}  # fmt: skip
DEFAULT_DIRECTION = {"status": "asc", "order": "asc", "last_scan": "asc", "eta": "asc",
                     "transit": "desc", "shipped": "desc"}  # fmt: skip


async def expected_order(pool: asyncpg.Pool, sort: str, direction: str) -> list[int]:
    rows = await pool.fetch("SELECT * FROM shipments WHERE retired_reason IS NULL")
    falling = KEYS_FALL_WHEN[sort] == direction
    ordered = sorted(rows, key=lambda row: sort_key(sort, row), reverse=falling)
    return [row["id"] for row in ordered]


# --- order and pages ------------------------------------------------------------------------


async def test_rank_in_the_database_is_the_python_order(pool: asyncpg.Pool) -> None:
    states = ["pending", "found", *CARRIER_PROBLEMS, "untracked"]
    statuses = [None, "mystery", *(s.value for s in Status)]
    combos = [(a, c, s) for a in [None, "unheard_of", *FLAGS] for c in states for s in statuses]
    ranks = await pool.fetch(
        "SELECT shipment_rank(a, c, s) FROM unnest($1::text[], $2::text[], $3::text[]) AS"
        " x(a, c, s)",
        [a for a, _, _ in combos],
        [c for _, c, _ in combos],
        [s for _, _, s in combos],
    )
    assert [r[0] for r in ranks] == [urgency(*combo) for combo in combos]


@pytest.mark.parametrize("sort", list(SORTS))
@pytest.mark.parametrize("direction", ["asc", "desc"])
async def test_every_sort_pages_through_every_row_once_both_ways(
    client: Client, pool: asyncpg.Pool, shop: int, sort: str, direction: str
) -> None:
    await varied_shipments(pool, shop)
    expected = await expected_order(pool, sort, direction)
    base = f"?sort={sort}&dir={direction}&limit=4"

    pages: list[list[int]] = []
    body = await get_json(client, "/api/shipments" + base)
    while True:
        pages.append([row["id"] for row in body["shipments"]])
        if body["next_cursor"] is None:
            break
        assert len(pages) < 10
        body = await get_json(client, f"/api/shipments{base}&cursor={body['next_cursor']}")
    assert [i for page in pages for i in page] == expected
    assert [len(page) for page in pages] == [4, 4, 4, 4, 4, 3]

    # Back again, page by page, from the last one.
    back: list[list[int]] = []
    while body["prev_cursor"] is not None:
        assert len(back) < 10
        body = await get_json(client, f"/api/shipments{base}&cursor={body['prev_cursor']}")
        back.append([row["id"] for row in body["shipments"]])
    assert back == pages[-2::-1]

    html_ids = row_ids(await page_text(client, f"/{base.replace('limit=4', 'limit=500')}"))
    assert html_ids == expected


async def test_a_column_sorts_the_way_a_reader_expects_first(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    await varied_shipments(pool, shop)
    assert set(DEFAULT_DIRECTION) == set(SORTS)
    for sort, direction in DEFAULT_DIRECTION.items():
        assert await api_ids(client, f"?sort={sort}&limit=500") == await expected_order(
            pool, sort, direction
        ), sort
    # Most days in transit first, among parcels still travelling.
    rows = await get_json(client, "/api/shipments?sort=transit&tab=active&limit=500")
    travelling = [r for r in rows["shipments"] if r["status"] != "delivered"]
    days = [r["days_in_transit"] for r in travelling if r["days_in_transit"] is not None]
    assert len(days) > 5
    assert days == sorted(days, reverse=True)


async def test_new_rows_do_not_repeat_or_hide_rows_of_the_next_page(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    await varied_shipments(pool, shop, 12)
    before = await expected_order(pool, "status", "asc")
    first = await get_json(client, "/api/shipments?limit=5")
    assert [row["id"] for row in first["shipments"]] == before[:5]
    # More urgent than everything: they belong on page one, which was already read.
    for n in range(3):
        await ship(pool, shop, f"#NEW{n}", status="failure", attention="returned_or_failed")
    rest: list[int] = []
    cursor = first["next_cursor"]
    while cursor is not None:
        body = await get_json(client, f"/api/shipments?limit=5&cursor={cursor}")
        rest.extend(row["id"] for row in body["shipments"])
        cursor = body["next_cursor"]
    assert rest == before[5:]


@pytest.mark.parametrize("sort", list(SORTS))
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("where", ["first", "after", "before"])
async def test_every_page_is_an_index_range_scan(
    pool: asyncpg.Pool, shop: int, sort: str, descending: bool, where: str
) -> None:
    await varied_shipments(pool, shop, 30)
    spec = SORTS[sort]
    keys = tuple("#A004" if kind == "text" else 0 for kind in spec.key_types)
    after = None if where == "first" else Position(keys, 10, before=where == "before")
    sql, args = page_statement(ShipmentFilter(), sort, descending, after, 100)
    index = {"transit": "shipments_by_shipped"}.get(sort) or {
        "status": "shipments_by_urgency",
        "order": "shipments_by_order_name",
        "last_scan": "shipments_by_last_scan",
        "eta": "shipments_by_eta",
        "shipped": "shipments_by_shipped",
    }[sort]
    async with pool.acquire() as conn, conn.transaction():
        # Tiny tables are cheaper to sort; forbid that, so only a matching index can serve.
        await conn.execute("SET LOCAL enable_sort = off; SET LOCAL enable_seqscan = off")
        plan = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args))

    def limited_scans(node: dict[str, Any]) -> list[dict[str, Any]]:
        found = []
        if node["Node Type"] == "Limit":
            found.extend(p for p in node.get("Plans", []) if p["Node Type"] == "Index Scan")
        for child in node.get("Plans", []):
            found.extend(limited_scans(child))
        return found

    [page_scan] = limited_scans(plan[0]["Plan"])
    assert page_scan["Index Name"] == index
    if after is not None:
        assert "ROW(" in page_scan["Index Cond"]  # the cursor bounds the scan itself


async def test_a_cursor_of_another_sort_or_direction_is_refused(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    await varied_shipments(pool, shop, 6)
    cursor = (await get_json(client, "/api/shipments?sort=eta&limit=2"))["next_cursor"]
    assert await api_ids(client, f"?sort=eta&limit=2&cursor={cursor}")
    for query in (f"cursor={cursor}", f"sort=eta&dir=desc&cursor={cursor}"):
        response = await client.get(f"/api/shipments?{query}")
        assert response.status == 400
        assert "another sort order" in (await response.json())["error"]
