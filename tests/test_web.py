"""The status table, shipment page, JSON API and health check, over real HTTP on a real database."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tracker.config import Config
from tracker.db.pool import create_pool
from tracker.web import build_app

NOW = datetime.now(UTC).replace(microsecond=0)

Client = TestClient[web.Request, web.Application]


# --- data helpers -------------------------------------------------------------------------------


async def add_shop(pool: asyncpg.Pool, domain: str = "acme.myshopify.com") -> int:
    shop_id: int = await pool.fetchval(
        "INSERT INTO shops (domain, api_version) VALUES ($1, '2026-10') RETURNING id", domain
    )
    return shop_id


async def add_shipment(
    pool: asyncpg.Pool,
    shop_id: int,
    order_name: str,
    *,
    tracking_number: str | None = None,
    carrier: str | None = "dhl",
    status: str | None = None,
    status_at: datetime | None = None,
    carrier_state: str = "found",
    carrier_message: str = "",
    active: bool = True,
    retired_reason: str | None = None,
    eta: datetime | None = None,
) -> int:
    if status is not None and status_at is None:
        status_at = NOW - timedelta(hours=1)
    shipment_id: int = await pool.fetchval(
        """
        INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id, tracking_number,
                               carrier, status, status_at, carrier_state, carrier_message,
                               active, estimated_delivery_at, retired_reason)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
        RETURNING id
        """,
        shop_id,
        f"gid://shopify/Order/{uuid.uuid4().int % 10**9}",
        order_name,
        f"gid://shopify/Fulfillment/{uuid.uuid4().int % 10**9}",
        tracking_number or f"TRK{uuid.uuid4().hex[:10].upper()}",
        carrier,
        status,
        status_at,
        carrier_state,
        carrier_message,
        active,
        eta,
        retired_reason,
    )
    return shipment_id


async def add_event(
    pool: asyncpg.Pool,
    shipment_id: int,
    happened_at: datetime,
    *,
    status: str | None = "in_transit",
    carrier_code: str = "",
    message: str = "",
    city: str | None = None,
    country: str | None = None,
    time_source: str = "utc",
    writeback_state: str = "pending",
    writeback_error: str | None = None,
    shopify_event_id: str | None = None,
) -> int:
    event_id: int = await pool.fetchval(
        """
        INSERT INTO tracking_events (shipment_id, status, happened_at, time_source, carrier_code,
                                     message, city, country, dedupe_key, writeback_state,
                                     writeback_error, shopify_event_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        RETURNING id
        """,
        shipment_id,
        status,
        happened_at,
        time_source,
        carrier_code,
        message,
        city,
        country,
        uuid.uuid4().hex,
        writeback_state,
        writeback_error,
        shopify_event_id,
    )
    return event_id


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[Client]:
    app = build_app(pool, Config())
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as test_client:
        yield test_client


@pytest.fixture
async def shop(pool: asyncpg.Pool) -> int:
    return await add_shop(pool)


async def api_list(client: Client, query: str = "") -> dict[str, Any]:
    response = await client.get("/api/shipments" + query)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def api_ids(client: Client, query: str = "") -> list[int]:
    return [row["id"] for row in (await api_list(client, query))["shipments"]]


async def html(client: Client, path: str) -> str:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/html"
    return await response.text()


def html_row_ids(page: str) -> list[int]:
    return [int(found) for found in re.findall(r'<tr data-id="(\d+)">', page)]


# --- order --------------------------------------------------------------------------------------


async def test_attention_first_delivered_last(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    delivered = await add_shipment(pool, shop, "#1", status="delivered")
    in_transit = await add_shipment(pool, shop, "#2", status="in_transit")
    no_status = await add_shipment(pool, shop, "#3")
    out_for_delivery = await add_shipment(pool, shop, "#4", status="out_for_delivery")
    failure = await add_shipment(pool, shop, "#5", status="failure")
    not_found = await add_shipment(
        pool, shop, "#6", carrier_state="not_found", carrier_message="No shipment found."
    )
    attempted = await add_shipment(pool, shop, "#7", status="attempted_delivery")
    delayed = await add_shipment(pool, shop, "#8", status="delayed")
    pickup = await add_shipment(pool, shop, "#9", status="ready_for_pickup")
    label = await add_shipment(pool, shop, "#10", status="label_purchased")
    expected = [
        not_found,
        failure,
        attempted,
        delayed,
        pickup,
        out_for_delivery,
        in_transit,
        label,
        no_status,
        delivered,
    ]

    assert await api_ids(client) == expected
    assert html_row_ids(await html(client, "/")) == expected


async def test_same_status_newest_first_then_id(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    old = await add_shipment(
        pool, shop, "#1", status="in_transit", status_at=NOW - timedelta(days=2)
    )
    tie_a = await add_shipment(pool, shop, "#2", status="in_transit", status_at=NOW)
    tie_b = await add_shipment(pool, shop, "#3", status="in_transit", status_at=NOW)
    newer = await add_shipment(
        pool, shop, "#4", status="in_transit", status_at=NOW + timedelta(minutes=1)
    )

    assert await api_ids(client) == [newer, tie_a, tie_b, old]


# --- filters ------------------------------------------------------------------------------------


async def test_status_filter_single_repeated_comma_and_none(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    delivered = await add_shipment(pool, shop, "#1", status="delivered")
    in_transit = await add_shipment(pool, shop, "#2", status="in_transit")
    failure = await add_shipment(pool, shop, "#3", status="failure")
    nothing = await add_shipment(pool, shop, "#4")

    assert await api_ids(client, "?status=delivered") == [delivered]
    assert await api_ids(client, "?status=in_transit,failure") == [failure, in_transit]
    assert await api_ids(client, "?status=in_transit&status=delivered") == [in_transit, delivered]
    assert await api_ids(client, "?status=none") == [nothing]
    assert await api_ids(client, "?status=none,delivered") == [nothing, delivered]
    assert html_row_ids(await html(client, "/?status=failure")) == [failure]


async def test_carrier_filter_and_unknown_carrier(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    dhl = await add_shipment(pool, shop, "#1", carrier="dhl", status="in_transit")
    ups = await add_shipment(pool, shop, "#2", carrier="ups", status="in_transit")
    unknown = await add_shipment(pool, shop, "#3", carrier=None, status="in_transit")

    assert await api_ids(client, "?carrier=ups") == [ups]
    assert await api_ids(client, "?carrier=dhl") == [dhl]
    assert await api_ids(client, "?carrier=unknown") == [unknown]
    assert await api_ids(client, "?carrier=fedex") == []
    page = await html(client, "/?carrier=ups")
    assert html_row_ids(page) == [ups]
    # The carrier select offers the carriers present.
    for code in ("dhl", "ups", "unknown"):
        assert f'<option value="{code}"' in page


async def test_search_matches_order_name_or_tracking_number_case_insensitively(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    by_order = await add_shipment(pool, shop, "#1001-AB", tracking_number="00340434161094042557")
    by_number = await add_shipment(pool, shop, "#2002", tracking_number="1Z999AA10123456784")
    await add_shipment(pool, shop, "#3003", tracking_number="JJD000390007826")

    assert await api_ids(client, "?q=1001-ab") == [by_order]
    assert await api_ids(client, "?q=1z999aa") == [by_number]
    assert sorted(await api_ids(client, "?q=%23")) == sorted(await api_ids(client))
    # LIKE wildcards are plain characters.
    assert await api_ids(client, "?q=%25") == []
    assert await api_ids(client, "?q=_") == []
    assert html_row_ids(await html(client, "/?q=1Z999")) == [by_number]


async def test_retired_shipments_only_with_include_inactive(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    active = await add_shipment(pool, shop, "#1", status="in_transit")
    # Delivered: no longer polled, still a shipment the merchant wants to see.
    done = await add_shipment(pool, shop, "#3", status="delivered", active=False)
    retired = await add_shipment(
        pool,
        shop,
        "#2",
        status="in_transit",
        active=False,
        retired_reason="fulfillment or order cancelled",
    )

    assert await api_ids(client) == [active, done]
    assert await api_ids(client, "?include_inactive=1") == [active, retired, done]
    assert html_row_ids(await html(client, "/")) == [active, done]
    assert html_row_ids(await html(client, "/?include_inactive=1")) == [active, retired, done]


async def test_limit(client: Client, pool: asyncpg.Pool, shop: int) -> None:
    for n in range(5):
        await add_shipment(pool, shop, f"#{n}", status="in_transit")

    assert len(await api_ids(client, "?limit=2")) == 2
    assert len(await api_ids(client, "?limit=500")) == 5
    assert len(html_row_ids(await html(client, "/?limit=3"))) == 3


# --- pagination ---------------------------------------------------------------------------------


async def _mixed_shipments(pool: asyncpg.Pool, shop: int, count: int) -> None:
    statuses = [None, "in_transit", "delivered", "failure", "out_for_delivery"]
    for n in range(count):
        status = statuses[n % len(statuses)]
        # Few distinct times, so ties on status_at are decided by id across page boundaries.
        status_at = None if status is None else NOW - timedelta(hours=n % 3)
        await add_shipment(
            pool,
            shop,
            f"#{n}",
            status=status,
            status_at=status_at,
            carrier_state="not_found" if n % 11 == 0 else "found",
        )


async def test_api_pages_through_every_row_once(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    await _mixed_shipments(pool, shop, 25)
    everything = await api_ids(client, "?limit=500")
    assert len(everything) == 25

    seen: list[int] = []
    pages = 0
    cursor: str | None = None
    while True:
        query = "?limit=10" + (f"&cursor={cursor}" if cursor else "")
        body = await api_list(client, query)
        seen.extend(row["id"] for row in body["shipments"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert pages < 10

    assert pages == 3
    assert seen == everything


async def test_html_next_page_links_walk_every_row_once(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    await _mixed_shipments(pool, shop, 25)
    everything = html_row_ids(await html(client, "/?limit=500"))

    seen: list[int] = []
    path: str | None = "/?limit=10&status=failure,in_transit,delivered,out_for_delivery,none"
    pages = 0
    while path is not None:
        page = await html(client, path)
        seen.extend(html_row_ids(page))
        pages += 1
        found = re.search(r'<a href="([^"]+)" rel="next">Next page</a>', page)
        path = found.group(1).replace("&amp;", "&") if found else None
        assert pages < 10

    assert pages == 3
    assert seen == everything


# --- JSON ---------------------------------------------------------------------------------------


async def test_json_shape_lower_case_status_and_utc_times(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    eta = NOW + timedelta(days=1)
    shipment = await add_shipment(
        pool, shop, "#1001", carrier="dhl", status="out_for_delivery", eta=eta
    )
    await add_event(pool, shipment, NOW - timedelta(hours=5), writeback_state="written")
    await add_event(
        pool,
        shipment,
        NOW - timedelta(hours=1),
        status="out_for_delivery",
        carrier_code="PO",
        message="With courier",
        city="Leipzig",
        country="DE",
        writeback_state="failed",
        writeback_error="Invalid status",
    )
    await add_shipment(pool, shop, "#1002", carrier=None)

    body = await api_list(client)
    assert set(body) == {"shipments", "next_cursor", "prev_cursor"}
    assert body["next_cursor"] is None
    first, second = body["shipments"]
    assert {
        "id",
        "shop",
        "order_name",
        "order_id",
        "fulfillment_id",
        "tracking_number",
        "carrier",
        "status",
        "status_at",
        "carrier_state",
        "carrier_message",
        "last_event",
        "estimated_delivery_at",
        "writeback",
    } <= set(first)
    assert first["id"] == shipment
    assert first["shop"] == "acme.myshopify.com"
    assert first["status"] == "out_for_delivery"
    assert first["carrier"] == "dhl"
    assert first["estimated_delivery_at"] == eta.isoformat().replace("+00:00", "Z")
    assert first["status_at"].endswith(("Z", "+00:00"))
    assert first["last_event"] == {
        "status": "out_for_delivery",
        "message": "With courier",
        "city": "Leipzig",
        "province": None,
        "country": "DE",
        "zip": None,
        "happened_at": (NOW - timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        "carrier_code": "PO",
    }
    assert first["writeback"] == {"written": 1, "pending": 0, "failed": 1}
    assert second["status"] is None
    assert second["carrier"] is None
    assert second["last_event"] is None
    assert second["writeback"] == {"written": 0, "pending": 0, "failed": 0}


async def test_last_event_is_last_event_id_when_set(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    shipment = await add_shipment(pool, shop, "#1", status="in_transit")
    chosen = await add_event(pool, shipment, NOW - timedelta(hours=3), message="chosen")
    await add_event(pool, shipment, NOW - timedelta(hours=1), message="newest")
    other = await add_shipment(pool, shop, "#2", status="in_transit")
    await add_event(pool, other, NOW - timedelta(hours=3), message="older")
    await add_event(pool, other, NOW - timedelta(hours=1), message="newest of other")
    await pool.execute("UPDATE shipments SET last_event_id = $1 WHERE id = $2", chosen, shipment)

    rows = {row["id"]: row for row in (await api_list(client))["shipments"]}
    assert rows[shipment]["last_event"]["message"] == "chosen"
    assert rows[other]["last_event"]["message"] == "newest of other"


async def test_api_detail_lists_events_in_time_order(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    shipment = await add_shipment(pool, shop, "#1", status="delivered")
    late = await add_event(pool, shipment, NOW - timedelta(hours=1), status="delivered")
    early = await add_event(pool, shipment, NOW - timedelta(days=1), status=None, carrier_code="X")

    response = await client.get(f"/api/shipments/{shipment}")
    assert response.status == 200
    body = await response.json()
    assert body["id"] == shipment
    assert body["status"] == "delivered"
    assert [event["id"] for event in body["events"]] == [early, late]
    assert body["events"][0]["status"] is None
    assert body["events"][0]["carrier_code"] == "X"
    assert body["events"][1]["writeback"]["state"] == "pending"


# --- HTML ---------------------------------------------------------------------------------------


async def test_table_row_reads_like_a_merchant_would_say_it(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    moving = await add_shipment(
        pool, shop, "#1001", carrier="dhl", tracking_number="JJD0099", status="out_for_delivery"
    )
    await add_event(
        pool,
        moving,
        NOW - timedelta(hours=3, minutes=5),
        status="out_for_delivery",
        message="Parcel is out for delivery",
        city="Leipzig",
        country="DE",
        writeback_state="written",
        shopify_event_id="gid://shopify/FulfillmentEvent/1",
    )
    await add_shipment(
        pool,
        shop,
        "#1002",
        carrier=None,
        carrier_state="not_found",
        carrier_message="No shipment with given tracking number found.",
    )

    page = await html(client, "/")
    assert "<title>Shipments</title>" in page
    assert "Out for delivery" in page
    assert "No scans yet" in page
    assert "Parcel is out for delivery" in page
    assert "Leipzig, DE" in page
    assert "3 h ago" in page
    assert (NOW - timedelta(hours=3, minutes=5)).strftime("%Y-%m-%d %H:%M UTC") in page
    assert "Not found: No shipment with given tracking number found." in page
    assert "unknown" in page
    assert "1 written" in page
    assert 'class="badge moving"' in page


async def test_tab_counts(client: Client, pool: asyncpg.Pool, shop: int) -> None:
    for _ in range(3):
        await add_shipment(pool, shop, "#t", status="in_transit")
    await add_shipment(pool, shop, "#d", status="delivered")

    def counts(page: str) -> dict[str, str]:
        found = re.findall(r'data-tab="(\w+)"[^>]*>([^<]*)<span class="count">(\d+)<', page)
        return {label.strip(): count for _key, label, count in found}

    page = await html(client, "/")
    assert counts(page)["All"] == "4"
    assert counts(page)["In transit"] == "3"
    assert counts(page)["Delivered"] == "1"
    # The counts are those of the view's filters: what each tab would show with them.
    filtered = counts(await html(client, "/?status=delivered"))
    assert (filtered["All"], filtered["In transit"], filtered["Delivered"]) == ("1", "0", "1")


async def test_script_in_carrier_data_is_shown_as_text(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    attack = "<script>alert(1)</script>"
    shipment = await add_shipment(
        pool, shop, f"#1{attack}", carrier_state="carrier_error", carrier_message=attack
    )
    await add_event(pool, shipment, NOW, message=attack, carrier_code=attack)

    for path in ("/", f"/shipments/{shipment}", f"/?q={attack}"):
        page = await html(client, path)
        assert attack not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_html_security_headers(client: Client, pool: asyncpg.Pool, shop: int) -> None:
    shipment = await add_shipment(pool, shop, "#1")
    for path in ("/", f"/shipments/{shipment}", "/?limit=0"):
        response = await client.get(path)
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"


async def test_detail_page_shows_raw_codes_and_write_back_states(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    shipment = await add_shipment(pool, shop, "#1001", status="in_transit")
    states = [
        ("written", None, "gid://shopify/FulfillmentEvent/777"),
        ("pending", None, None),
        ("sending", None, None),
        ("failed", "Status is not allowed", None),
        ("skipped", "older than max_event_age", None),
    ]
    for n, (state, error, event_id) in enumerate(states):
        await add_event(
            pool,
            shipment,
            NOW - timedelta(hours=10 - n),
            status="in_transit",
            carrier_code=f"RAW-{n}",
            message=f"scan {n}",
            time_source="local:assumed Europe/Berlin" if n == 0 else "utc",
            writeback_state=state,
            writeback_error=error,
            shopify_event_id=event_id,
        )
    await add_event(pool, shipment, NOW, status=None, carrier_code="RAW-X", message="customs")

    page = await html(client, f"/shipments/{shipment}")
    for n in range(5):
        assert f"RAW-{n}" in page
    assert page.index("scan 0") < page.index("scan 4") < page.index("customs")
    assert "RAW-X" in page
    assert "no status" in page
    assert "local:assumed Europe/Berlin" in page
    for words in ("Written", "Pending", "Sending", "Failed", "Skipped"):
        assert words in page
    assert "gid://shopify/FulfillmentEvent/777" in page
    assert "Status is not allowed" in page
    assert "older than max_event_age" in page


@pytest.mark.parametrize("prefix", ["/shipments/", "/api/shipments/"])
async def test_detail_unknown_id_is_404_and_non_integer_is_400(
    client: Client, pool: asyncpg.Pool, shop: int, prefix: str
) -> None:
    await add_shipment(pool, shop, "#1")
    for tail, status in [
        ("999999", 404),
        ("99999999999999999999", 404),
        ("abc", 400),
        ("1.5", 400),
        ("-1", 404),
        ("1" * 40, 400),
        ("%D9%A3", 400),  # Arabic-Indic digit three
    ]:
        response = await client.get(prefix + tail)
        assert response.status == status, (tail, await response.text())
        if prefix.startswith("/api/"):
            assert "error" in await response.json()
        else:
            assert response.content_type == "text/html"


# --- bad input ----------------------------------------------------------------------------------

BAD_QUERIES = [
    "status=shipped",
    "status=IN_TRANSIT,bogus",
    "limit=abc",
    "limit=0",
    "limit=501",
    "limit=-5",
    "limit=1e3",
    "limit=99999999999999999999999",
    "cursor=not-a-cursor",
    "cursor=" + base64.urlsafe_b64encode(b'{"a": 1}').decode(),
    "cursor=" + base64.urlsafe_b64encode(json.dumps([1, 2]).encode()).decode(),
    "cursor=" + base64.urlsafe_b64encode(json.dumps([2**40, 0, 1]).encode()).decode(),
    "cursor=" + base64.urlsafe_b64encode(json.dumps([1, 2**70, 1]).encode()).decode(),
    "cursor=" + base64.urlsafe_b64encode(json.dumps([1, 0, "1"]).encode()).decode(),
    "cursor=%FF%FE",
    "include_inactive=maybe",
    "q=%00",
    "q=%01",
    "q=" + "x" * 201,
    "carrier=" + "y" * 65,
    # The table's view: tab, filters, sort.
    "tab=bogus",
    "tab=%3Cscript%3Ealert(1)%3C/script%3E",
    "sort=eta;DROP%20TABLE%20shipments",
    "sort=status%27--",
    "dir=up",
    "attention=late,%27%20OR%201%3D1--",
    "status=delivered%27)%20OR%20(%27a%27=%27a",
    "shipped_from=2025-13-01",
    "shipped_from=yesterday",
    "shipped_to=2025-02-30",
    "shipped_from=2025-03-02&shipped_to=2025-03-01",
    "last_scan_before=3x",
    "last_scan_before=99999d",
    "last_scan_before=%3Cb%3E",
    "store=" + "z" * 256,
    "store=a%0Ab",
    "stauts=delivered",
    "%3Cscript%3E=1",
    "limit=1&limit=2",
    "sort=eta&sort=order",
    "cursor=" + base64.urlsafe_b64encode(b'["eta","a","n",0,1]').decode(),
    "sort=eta&cursor=" + base64.urlsafe_b64encode(b'["eta","a","n","x",1]').decode(),
    "sort=order&cursor=" + base64.urlsafe_b64encode(b'["order","a","n",1,1]').decode(),
]


@pytest.mark.parametrize("query", BAD_QUERIES)
async def test_bad_parameters_are_400_with_a_message(
    client: Client, pool: asyncpg.Pool, shop: int, query: str
) -> None:
    await add_shipment(pool, shop, "#1", status="in_transit")
    before = await pool.fetch("SELECT * FROM shipments ORDER BY id")

    for path in ("/api/shipments", "/api/counts"):
        api = await client.get(f"{path}?{query}")
        assert api.status == 400
        assert api.content_type == "application/json"
        error = (await api.json())["error"]
        assert isinstance(error, str)
        assert error

    for path in ("/", "/export.csv"):
        page = await client.get(f"{path}?{query}")
        assert page.status == 400
        assert page.content_type == "text/html"
        text = await page.text()
        assert "Bad request" in text
        assert "<script>" not in text
        assert "<b>" not in text

    assert await pool.fetch("SELECT * FROM shipments ORDER BY id") == before


async def test_good_parameters_in_odd_spellings_are_accepted(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    shipment = await add_shipment(pool, shop, "#1", status="in_transit")
    for query in (
        "status=IN_TRANSIT",
        "status=,in_transit,",
        "status=",
        "limit=",
        "q=",
        "carrier=",
    ):
        assert await api_ids(client, "?" + query) == [shipment], query


# --- health -------------------------------------------------------------------------------------


async def test_healthz_ok(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_healthz_unavailable_when_the_database_is_not(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    app = build_app(pool, Config())
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as test_client:
        await pool.close()
        response = await test_client.get("/healthz")
        assert response.status == 503
        body = await response.json()
        assert body["status"] == "unavailable"
        assert body["error"]


async def test_detected_carrier_is_marked(client: Client, pool: asyncpg.Pool, shop: int) -> None:
    shipment = await add_shipment(pool, shop, "#9", carrier="ups")
    await pool.execute(
        "UPDATE shipments SET carrier_source = 'detected', tracking_company = '<b>DHL</b>'"
        " WHERE id = $1",
        shipment,
    )
    body = await html(client, "/")
    assert "detected</small>" in body
    assert "the order said &lt;b&gt;DHL&lt;/b&gt;" in body
    detail = await html(client, f"/shipments/{shipment}")
    assert "detected from the number; the order said &lt;b&gt;DHL&lt;/b&gt;" in detail
    [row] = (await (await client.get("/api/shipments")).json())["shipments"]
    assert row["carrier_source"] == "detected"


async def test_store_errors_and_notices_are_shown_escaped(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    await pool.execute(
        "UPDATE shops SET last_sync_error = 'HTTP 401 <token>', notice = 'no read_all_orders'"
        " WHERE id = $1",
        shop,
    )
    body = await html(client, "/")
    assert 'role="alert"><strong>' in body
    assert "HTTP 401 &lt;token&gt;" in body
    assert "no read_all_orders" in body


async def test_flagged_shipments_come_first_most_urgent_first(
    client: Client, pool: asyncpg.Pool, shop: int
) -> None:
    calm = await add_shipment(pool, shop, "#1", status="in_transit")
    late = await add_shipment(pool, shop, "#2", status="in_transit")
    failed = await add_shipment(pool, shop, "#3", status="failure")
    await pool.execute(
        "UPDATE shipments SET attention = 'late', attention_since = now() WHERE id = $1", late
    )
    await pool.execute(
        "UPDATE shipments SET attention = 'returned_or_failed',"
        " attention_since = now() WHERE id = $1",
        failed,
    )
    assert await api_ids(client) == [failed, late, calm]
    body = await html(client, "/")
    assert "Returned or failed</span>" in body
    assert "Late</span>" in body
    rows = (await (await client.get("/api/shipments")).json())["shipments"]
    assert [r["attention"] for r in rows] == ["returned_or_failed", "late", None]
