"""What a row of the status table says and links to; links that keep the view; live refresh."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import asyncpg
import pytest

from tests.tabledata import (
    NOW,
    Client,
    add_shop,
    get_json,
    href,
    open_client,
    page_text,
    scan,
    ship,
    varied_shipments,
)


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[Client]:
    async with open_client(pool) as test_client:
        yield test_client


@pytest.fixture
async def shop(pool: asyncpg.Pool) -> int:
    return await add_shop(pool)


# --- what a row says ------------------------------------------------------------------------


async def test_row_links_to_shopify_and_the_carrier_and_shows_the_customer(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    dhl = await ship(
        pool,
        shop,
        "#1001",
        order_id="gid://shopify/Order/820982911946154508",
        tracking_number="JJD0099",
        customer_name="Jane <b>Doe</b>",
        customer_email="jane@example.com",
        fulfilled_at=NOW - timedelta(days=3, hours=2),
        status="in_transit",
        tracking_url="https://example.com/should-not-win",
    )
    own = await ship(
        pool,
        shop,
        "#1002",
        carrier=None,
        tracking_number="XYZ1",
        tracking_url="https://track.example.com/XYZ1?a=1&b=2",
    )
    bad = await ship(
        pool,
        shop,
        "#1003",
        carrier=None,
        tracking_number="XYZ2",
        tracking_url="javascript:alert(1)",
    )
    delivered = await ship(
        pool,
        shop,
        "#1004",
        status="delivered",
        status_at=NOW - timedelta(days=1),
        fulfilled_at=NOW - timedelta(days=6),
    )
    await scan(pool, dhl, NOW - timedelta(hours=3), message="Arrived", city="Leipzig", country="DE")

    page = await page_text(client, "/?limit=500")
    assert ('href="https://admin.shopify.com/store/acme/orders/820982911946154508"') in page
    assert 'href="https://www.dhl.com/' in page
    assert "tracking-id=JJD0099" in page
    assert "should-not-win" not in page
    assert 'href="https://track.example.com/XYZ1?a=1&amp;b=2"' in page
    assert "javascript:" not in page
    assert "Jane &lt;b&gt;Doe&lt;/b&gt;" in page
    assert "jane@example.com" in page
    assert "Arrived" in page
    assert "Leipzig, DE" in page
    assert "3 h ago" in page

    rows = {row["id"]: row for row in (await get_json(client, "/api/shipments"))["shipments"]}
    assert rows[dhl]["order_url"] == (
        "https://admin.shopify.com/store/acme/orders/820982911946154508"
    )
    assert rows[dhl]["customer"] == {"name": "Jane <b>Doe</b>", "email": "jane@example.com"}
    assert rows[dhl]["tracking_url"].startswith("https://www.dhl.com/")
    assert rows[own]["tracking_url"] == "https://track.example.com/XYZ1?a=1&b=2"
    assert rows[bad]["tracking_url"] is None
    assert rows[dhl]["days_in_transit"] == 3
    assert rows[delivered]["days_in_transit"] == 5  # fulfilment to delivery, not to now

    detail = await page_text(client, f"/shipments/{dhl}")
    assert "Jane &lt;b&gt;Doe&lt;/b&gt;" in detail
    assert "https://admin.shopify.com/store/acme/orders/820982911946154508" in detail
    assert "tracking-id=JJD0099" in detail
    assert re.search(r"<dt>Days in transit</dt><dd>3", detail)


async def test_every_link_on_the_page_keeps_the_whole_view(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    await varied_shipments(pool, shop, 12)
    view = {
        "tab": "all",
        "status": "in_transit,failure,none,delivered,out_for_delivery,label_printed",
        "q": "#A0",
        "last_scan_before": "1h",
        "sort": "eta",
        "dir": "desc",
        "limit": "2",
    }
    query = "&".join(f"{k}={v}" for k, v in view.items()).replace("#", "%23")
    page = await page_text(client, f"/?{query}")
    next_link = href(page, "next")
    assert next_link is not None
    nxt = dict(parse_qsl(urlsplit(next_link).query))
    assert nxt.pop("cursor")
    assert nxt == {k: v for k, v in view.items() if k != "tab"}
    second = await page_text(client, next_link)
    assert href(second, "prev") is not None
    first = href(second, "First page")
    assert first is not None
    assert "cursor" not in first
    export = re.search(r'<a href="(/export.csv[^"]*)"', second)
    assert export is not None
    exported = dict(parse_qsl(urlsplit(export.group(1).replace("&amp;", "&")).query))
    assert exported == {k: v for k, v in view.items() if k not in ("tab", "limit")}
    sort_by_order = re.search(r'<a href="([^"]+)">Order</a>', page)
    assert sort_by_order is not None
    order_query = dict(parse_qsl(urlsplit(sort_by_order.group(1).replace("&amp;", "&")).query))
    assert order_query["sort"] == "order"
    assert order_query["q"] == "#A0"
    assert "cursor" not in order_query


async def test_live_refresh_is_one_inline_script_allowed_by_its_hash(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    await ship(pool, shop, "#1", status="in_transit")
    response = await client.get("/")
    page = await response.text()
    scripts = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
    assert len(scripts) == 1
    assert "<script " not in page
    assert "src=" not in page
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    policy = response.headers["Content-Security-Policy"]
    assert f"script-src 'sha256-{digest}'" in policy
    assert "unsafe-inline" not in policy
    # What the script swaps in place is in the page itself, so the page works without it.
    for part in ("tabs", "rows", "pager", "notices"):
        assert re.search(rf'id="{part}" data-live', page), part
    assert 'data-live-seconds="15"' in page
