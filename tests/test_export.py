"""``/export.csv``: exactly the view, quoted safely, streamed from a server-side cursor."""

from __future__ import annotations

import asyncio
import csv
import io
import tracemalloc
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import asyncpg
import pytest

from tests.tabledata import NOW, Client, add_shop, api_ids, open_client, scan, ship
from tracker.engine.attention import FLAGS
from tracker.web.export import COLUMNS

EXPORT_QUERY = "/* CSV export */%"


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[Client]:
    async with open_client(pool) as test_client:
        yield test_client


@pytest.fixture
async def shop(pool: asyncpg.Pool) -> int:
    return await add_shop(pool)


async def export(client: Client, query: str = "") -> list[dict[str, str]]:
    response = await client.get("/export.csv" + query)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/csv"
    assert response.charset == "utf-8"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="shipments-')
    data = await response.read()
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == COLUMNS
    return list(reader)


async def export_backend(pool: asyncpg.Pool) -> asyncpg.Record:
    """The backend running the export, once it waits, mid-query, for the reader."""
    for _ in range(400):
        row = await pool.fetchrow(
            "SELECT pid, state, xact_start FROM pg_stat_activity"
            " WHERE query LIKE $1 AND pid <> pg_backend_pid()",
            EXPORT_QUERY,
        )
        if row is not None and row["state"] == "idle in transaction":
            return row
        await asyncio.sleep(0.05)
    raise AssertionError("the export never waited for its reader")


async def test_the_export_is_the_view_in_its_order(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    statuses = [None, "in_transit", "delivered", "failure", "out_for_delivery"]
    for n in range(40):
        await ship(
            pool,
            shop,
            f"#B{n:03d}",
            status=statuses[n % 5],
            attention=FLAGS[n % 3] if n % 4 == 0 else None,
            estimated_delivery_at=NOW + timedelta(hours=n % 6) if n % 3 else None,
            fulfilled_at=NOW - timedelta(days=n % 5),
            customer_name=f"Customer {n}",
        )
    await ship(pool, shop, "#B999", retired_reason="order cancelled")
    for query in (
        "",
        "?tab=in_transit",
        "?sort=eta&dir=desc",
        "?sort=transit&attention=not_found,returned_or_failed",
        "?q=customer%201",
        "?status=none,delivered&sort=order&dir=desc",
        "?include_inactive=1&sort=shipped",
    ):
        ids = await api_ids(client, query + ("&" if query else "?") + "limit=500")
        rows = await export(client, query)
        assert [int(row["shipment_id"]) for row in rows] == ids, query
        assert ids, query
    # Cursor and page size are not part of the view: the export starts at the top, whole.
    cursor = (await (await client.get("/api/shipments?limit=2")).json())["next_cursor"]
    assert len(await export(client, f"?limit=2&cursor={cursor}")) == 40


async def test_cells_are_quoted_and_formulas_are_defused(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    shipment = await ship(
        pool,
        shop,
        "@SUM(A1:A9)",
        order_id="gid://shopify/Order/42",
        customer_name='=HYPERLINK("http://evil.example","click")',
        customer_email="+1@example.com",
        tracking_company='Jörg, "quoted"\nand more',
        carrier_message="-2+3",
        carrier_state="carrier_error",
        status="in_transit",
        fulfilled_at=NOW - timedelta(days=2, hours=1),
    )
    await scan(pool, shipment, NOW - timedelta(hours=1), message="\tTab first", city="Zürich")

    [row] = await export(client)
    assert row["order"] == "'@SUM(A1:A9)"
    assert row["customer_name"] == '\'=HYPERLINK("http://evil.example","click")'
    assert row["customer_email"] == "'+1@example.com"
    assert row["carrier_message"] == "'-2+3"
    assert row["last_scan_message"] == "'\tTab first"
    assert row["tracking_company"] == 'Jörg, "quoted"\nand more'
    assert row["last_scan_place"] == "Zürich"
    assert row["order_url"] == "https://admin.shopify.com/store/acme/orders/42"
    assert row["days_in_transit"] == "2"
    assert row["status"] == "in_transit"
    assert row["writeback_written"] == "1"
    assert row["shipped_at"].endswith("Z")


async def test_the_export_streams_through_a_cursor_in_bounded_memory(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    rows = 6000
    await pool.execute(
        """
        INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id, tracking_number,
                               customer_name, status, status_at)
        SELECT $1, 'gid://shopify/Order/' || g, '#' || g, 'gid://shopify/Fulfillment/' || g,
               'TRK' || g, repeat('x', 4000), 'in_transit', now() - g * interval '1 second'
        FROM generate_series(1, $2::int) AS g
        """,
        shop,
        rows,
    )
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        response = await client.get("/export.csv?sort=order")
        assert response.status == 200
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in response.headers
        header = await response.content.readline()
        assert header.startswith(b"\xef\xbb\xbfshipment_id,")
        # The reader has the first line only; the export is mid-query, waiting for it.
        backend = await export_backend(pool)
        assert backend["xact_start"] is not None
        size, lines = len(header), 1
        async for chunk in response.content.iter_chunked(1 << 16):
            size += len(chunk)
            lines += chunk.count(b"\n")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert lines == rows + 1
    assert size > rows * 4000
    # Holding the rows (or the CSV) at once would take at least the export's size.
    assert peak < size / 3, (peak, size)
    still_open = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1 AND state <> 'idle'",
        EXPORT_QUERY,
    )
    assert still_open == 0


async def test_an_export_cut_off_by_the_database_never_looks_complete(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    await pool.execute(
        """
        INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id, tracking_number,
                               customer_name)
        SELECT $1, 'o' || g, '#' || g, 'f' || g, 'T' || g, repeat('y', 4000)
        FROM generate_series(1, 3000) AS g
        """,
        shop,
    )
    response = await client.get("/export.csv")
    assert response.status == 200
    await response.content.readline()
    backend = await export_backend(pool)
    assert await pool.fetchval("SELECT pg_terminate_backend($1)", backend["pid"])
    with pytest.raises(aiohttp.ClientPayloadError):
        async for _chunk in response.content.iter_chunked(1 << 16):
            pass


async def test_a_bad_view_is_refused_before_any_csv(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    await ship(pool, shop, "#1")
    response = await client.get("/export.csv?sort=sideways")
    assert response.status == 400
    assert response.content_type == "text/html"
    assert "unknown sort" in await response.text()
    head = await client.head("/export.csv?sort=eta")
    assert head.status == 200
    assert head.content_type == "text/csv"
