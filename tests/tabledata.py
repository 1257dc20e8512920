"""Shipments for the status table, export and API tests, written straight into PostgreSQL."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tracker.config import Config
from tracker.engine.attention import FLAGS
from tracker.web import build_app

Client = TestClient[web.Request, web.Application]
NOW = datetime.now(UTC).replace(microsecond=0)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ORDERS = itertools.count(5001)


@asynccontextmanager
async def open_client(pool: asyncpg.Pool) -> AsyncIterator[Client]:
    """The web app on ``pool`` over real HTTP on 127.0.0.1."""
    app = build_app(pool, Config())
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as test_client:
        yield test_client


async def add_shop(pool: asyncpg.Pool, domain: str = "acme.myshopify.com") -> int:
    shop_id: int = await pool.fetchval(
        "INSERT INTO shops (domain, api_version) VALUES ($1, '2026-10') RETURNING id", domain
    )
    return shop_id


async def ship(pool: asyncpg.Pool, shop_id: int, order_name: str, **columns: Any) -> int:
    """A shipment with these ``shipments`` columns; the rest made up or left to defaults."""
    values: dict[str, Any] = {
        "shop_id": shop_id,
        "order_id": f"gid://shopify/Order/{next(_ORDERS)}",
        "order_name": order_name,
        "fulfillment_id": f"gid://shopify/Fulfillment/{uuid.uuid4().int % 10**9}",
        "tracking_number": f"TRK{uuid.uuid4().hex[:10].upper()}",
        "carrier": "dhl",
        "carrier_state": "found",
        **columns,
    }
    if values.get("status") is not None:
        values.setdefault("status_at", NOW - timedelta(hours=1))
    names = list(values)
    placeholders = ", ".join(f"${n}" for n in range(1, len(names) + 1))
    shipment_id: int = await pool.fetchval(
        f"INSERT INTO shipments ({', '.join(names)}) VALUES ({placeholders}) RETURNING id",
        *values.values(),
    )
    return shipment_id


async def scan(pool: asyncpg.Pool, shipment_id: int, happened_at: datetime, **columns: Any) -> int:
    """A tracking event of the shipment (written back, unless ``writeback_state`` says)."""
    values: dict[str, Any] = {
        "shipment_id": shipment_id,
        "happened_at": happened_at,
        "dedupe_key": uuid.uuid4().hex,
        "writeback_state": "written",
        **columns,
    }
    names = list(values)
    placeholders = ", ".join(f"${n}" for n in range(1, len(names) + 1))
    event_id: int = await pool.fetchval(
        f"INSERT INTO tracking_events ({', '.join(names)}) VALUES ({placeholders}) RETURNING id",
        *values.values(),
    )
    return event_id


async def get_json(client: Client, path: str) -> Any:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return await response.json()


async def api_ids(client: Client, query: str = "") -> list[int]:
    body = await get_json(client, "/api/shipments" + query)
    return [row["id"] for row in body["shipments"]]


async def page_text(client: Client, path: str) -> str:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/html"
    return await response.text()


def row_ids(page: str) -> list[int]:
    return [int(found) for found in re.findall(r'<tr data-id="(\d+)">', page)]


def tab_counts(page: str) -> dict[str, int]:
    """The count on each tab of the page, by tab key."""
    found = re.findall(r'data-tab="(\w+)"[^>]*>[^<]*<span class="count">(\d+)</span>', page)
    return {key: int(count) for key, count in found}


def href(page: str, rel_or_text: str) -> str | None:
    """The href of the link with ``rel=...`` or that text, unescaped; None when absent."""
    found = re.search(rf'<a href="([^"]+)" rel="{rel_or_text}">', page) or re.search(
        rf'<a href="([^"]+)"[^>]*>{re.escape(rel_or_text)}</a>', page
    )
    return found.group(1).replace("&amp;", "&") if found else None


def microseconds(moment: datetime | None) -> int | None:
    return None if moment is None else (moment - EPOCH) // timedelta(microseconds=1)


async def varied_shipments(pool: asyncpg.Pool, shop: int, count: int = 23) -> None:
    """Shipments with every sort key varied, ties included, and some keys missing."""
    statuses = [None, "in_transit", "delivered", "failure", "out_for_delivery", "label_printed"]
    for n in range(count):
        status = statuses[n % len(statuses)]
        hours = n % 4  # ties across page boundaries, decided by id
        await ship(
            pool,
            shop,
            f"#A{n % 9:03d}",
            status=status,
            status_at=None if status is None else NOW - timedelta(hours=hours),
            carrier_state="not_found" if n % 11 == 0 else "found",
            attention=FLAGS[n % len(FLAGS)] if n % 5 == 0 else None,
            last_scan_at=None if n % 7 == 0 else NOW - timedelta(hours=hours * 5),
            estimated_delivery_at=None if n % 3 == 0 else NOW + timedelta(days=hours),
            fulfilled_at=None if n % 8 == 0 else NOW - timedelta(days=hours + 1),
        )
