"""The status table's tabs, store tabs, filters and search: the page and the API agree."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

import asyncpg
import pytest

from tests.tabledata import (
    NOW,
    Client,
    add_shop,
    api_ids,
    get_json,
    open_client,
    page_text,
    row_ids,
    ship,
    tab_counts,
)
from tracker.web.selection import TABS


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[Client]:
    async with open_client(pool) as test_client:
        yield test_client


@pytest.fixture
async def shop(pool: asyncpg.Pool) -> int:
    return await add_shop(pool)


# --- tabs and filters -----------------------------------------------------------------------


async def test_tabs_hold_what_they_say_and_count_it(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    made = {
        "flagged": await ship(pool, shop, "#1", status="in_transit", attention="late"),
        "label": await ship(pool, shop, "#2", status="label_printed"),
        "no_scan": await ship(pool, shop, "#3"),
        "moving": await ship(pool, shop, "#4", status="delayed"),
        "last_mile": await ship(pool, shop, "#5", status="ready_for_pickup"),
        "delivered": await ship(pool, shop, "#6", status="delivered", active=False),
        "failed": await ship(pool, shop, "#7", status="failure", active=False),
        "expired": await ship(pool, shop, "#8", stopped_reason="expired", active=False),
        "lost": await ship(pool, shop, "#9", status="in_transit", carrier_state="not_found"),
        "untracked": await ship(
            pool,
            shop,
            "#10",
            tracking_number="",
            carrier=None,
            carrier_state="untracked",
            active=False,
        ),
    }
    await ship(pool, shop, "#11", status="in_transit", retired_reason="order cancelled")
    want = {
        "all": set(made),
        "attention": {"flagged"},
        "active": {"flagged", "label", "no_scan", "moving", "last_mile", "lost"},
        "pre_transit": {"label", "no_scan", "expired"},
        "in_transit": {"flagged", "moving", "lost"},
        "out_for_delivery": {"last_mile"},
        "delivered": {"delivered"},
        "problems": {"failed", "expired", "lost"},
        "untracked": {"untracked"},
    }
    assert set(want) == set(TABS)
    counts = await get_json(client, "/api/counts")
    assert counts == {
        "tabs": {tab: len(names) for tab, names in want.items()},
        "stores": {"acme.myshopify.com": len(made)},
    }
    assert tab_counts(await page_text(client, "/")) == counts["tabs"]
    for tab, names in want.items():
        assert set(await api_ids(client, f"?tab={tab}")) == {made[n] for n in names}, tab
        page = await page_text(client, f"/?tab={tab}")
        assert set(row_ids(page)) == {made[n] for n in names}, tab
        assert f'data-tab="{tab}" title' in page
        assert re.search(rf'data-tab="{tab}"[^>]*class="current"', page)
    # Counts follow the other filters (here: the search), each tab counted under them.
    searched = await get_json(client, "/api/counts?q=%231")  # #1, #10, #11 (retired: hidden)
    assert searched["tabs"]["all"] == 2
    assert searched["tabs"]["untracked"] == 1


async def test_several_stores_get_store_tabs_that_keep_the_view(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    other = await add_shop(pool, "other-shop.myshopify.com")
    mine = await ship(pool, shop, "#1", status="delivered")
    theirs = [await ship(pool, other, f"#{n}", status="delivered") for n in (2, 3)]
    await ship(pool, other, "#4", status="in_transit")

    page = await page_text(client, "/?tab=delivered")
    stores = dict(re.findall(r'data-store="([^"]*)"[^>]*>[^<]*<span class="count">(\d+)<', page))
    assert stores == {"": "3", "acme.myshopify.com": "1", "other-shop.myshopify.com": "2"}
    link = re.search(r'<a href="([^"]+)" data-store="other-shop.myshopify.com"', page)
    assert link is not None
    query = dict(parse_qsl(urlsplit(link.group(1).replace("&amp;", "&")).query))
    assert query == {"tab": "delivered", "store": "other-shop.myshopify.com"}
    assert sorted(await api_ids(client, "?tab=delivered&store=other-shop.myshopify.com")) == theirs
    assert await api_ids(client, "?store=acme.myshopify.com") == [mine]
    assert await api_ids(client, "?store=nowhere.myshopify.com") == []
    counts = await get_json(client, "/api/counts?store=other-shop.myshopify.com")
    assert counts["tabs"]["all"] == 3
    assert counts["stores"] == {"acme.myshopify.com": 1, "other-shop.myshopify.com": 3}


async def test_filters_attention_shipped_between_last_scan_and_carrier(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    day = datetime(2025, 3, 10, 12, tzinfo=NOW.tzinfo)
    early = await ship(pool, shop, "#1", fulfilled_at=day - timedelta(days=2), attention="late")
    mid = await ship(pool, shop, "#2", fulfilled_at=day, last_scan_at=NOW - timedelta(days=5))
    late = await ship(
        pool,
        shop,
        "#3",
        fulfilled_at=day + timedelta(days=1),
        carrier="ups",
        last_scan_at=NOW - timedelta(hours=2),
        attention="stalled",
    )
    unknown = await ship(pool, shop, "#4", carrier=None, last_scan_at=NOW - timedelta(days=40))

    async def ids(query: str) -> set[int]:
        return set(await api_ids(client, "?" + query))

    assert await ids("attention=late") == {early}
    assert await ids("attention=late,stalled") == {early, late}
    assert await ids("attention=stalled&attention=late") == {early, late}
    assert await ids("shipped_from=2025-03-10&shipped_to=2025-03-10") == {mid}
    assert await ids("shipped_from=2025-03-10") == {mid, late}
    assert await ids("shipped_to=2025-03-10") == {early, mid}
    # Older than: never scanned counts as old.
    assert await ids("last_scan_before=3d") == {early, mid, unknown}
    assert await ids("last_scan_before=1h") == {early, mid, late, unknown}
    assert await ids("last_scan_before=6W") == {early}
    cutoff = (NOW - timedelta(days=10)).date().isoformat()
    assert await ids(f"last_scan_before={cutoff}") == {early, unknown}
    assert await ids("carrier=ups") == {late}
    assert await ids("carrier=unknown") == {unknown}
    assert await ids("carrier=UPS&attention=stalled&shipped_from=2025-03-11") == {late}
    page = await page_text(client, "/?attention=late&last_scan_before=3d")
    assert row_ids(page) == [early]
    assert 'value="3d"' in page
    assert '<option value="late" selected>' in page


async def test_search_finds_order_number_customer_name_and_email(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    jane = await ship(pool, shop, "#1001", customer_name="Jane Doe", customer_email="jane@ex.com")
    jo = await ship(
        pool,
        shop,
        "#1002",
        customer_name="Jo Ann",
        customer_email="J_A@ex.org",
        tracking_number="1Z999AA10123456784",
    )
    nobody = await ship(pool, shop, "#1003")

    async def ids(q: str) -> set[int]:
        return set(await api_ids(client, "?" + urlencode({"q": q})))

    assert await ids("jane DOE") == {jane}
    assert await ids("EX.COM") == {jane}
    assert await ids("j_a@") == {jo}
    assert await ids("1z999aa") == {jo}
    assert await ids("#100") == {jane, jo, nobody}
    assert await ids("%") == set()
    assert await ids("_") == {jo}  # literally an underscore, in J_A@ex.org
    assert await ids("e\\") == set()
    # Within one field only: "Doe" and "jane@" are in two fields of the same row.
    assert await ids("doe jane@") == set()
