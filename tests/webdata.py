"""Rows for the web tests (analytics, access, poll now), written straight into PostgreSQL."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

Client = TestClient[web.Request, web.Application]

NOW = datetime.now(UTC).replace(microsecond=0)


async def add_shop(pool: asyncpg.Pool, domain: str = "acme.myshopify.com") -> int:
    shop_id: int = await pool.fetchval(
        "INSERT INTO shops (domain, api_version) VALUES ($1, '2026-10') RETURNING id", domain
    )
    return shop_id


async def add_shipment(
    pool: asyncpg.Pool,
    shop_id: int,
    order_name: str = "#1001",
    *,
    carrier: str | None = "dhl",
    tracking_number: str | None = None,
    status: str | None = None,
    status_at: datetime | None = None,
    carrier_state: str = "found",
    carrier_message: str = "",
    fulfilled_at: datetime | None = None,
    first_eta: datetime | None = None,
    active: bool = True,
    retired_reason: str | None = None,
) -> int:
    shipment_id: int = await pool.fetchval(
        """
        INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id, tracking_number,
                               carrier, status, status_at, carrier_state, carrier_message,
                               fulfilled_at, first_eta, active, retired_reason)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
        RETURNING id
        """,
        shop_id,
        f"gid://shopify/Order/{uuid.uuid4().int % 10**9}",
        order_name,
        f"gid://shopify/Fulfillment/{uuid.uuid4().int % 10**9}",
        tracking_number if tracking_number is not None else f"TRK{uuid.uuid4().hex[:10]}",
        carrier,
        status,
        status_at if status_at is not None or status is None else NOW - timedelta(hours=1),
        carrier_state,
        carrier_message,
        fulfilled_at,
        first_eta,
        active,
        retired_reason,
    )
    return shipment_id


async def add_event(
    pool: asyncpg.Pool,
    shipment_id: int,
    happened_at: datetime,
    status: str | None = "in_transit",
    *,
    message: str = "",
    writeback_state: str = "written",
    discovered_at: datetime | None = None,
) -> int:
    event_id: int = await pool.fetchval(
        """
        INSERT INTO tracking_events (shipment_id, status, happened_at, message, dedupe_key,
                                     writeback_state, discovered_at)
        VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, now()))
        RETURNING id
        """,
        shipment_id,
        status,
        happened_at,
        message,
        uuid.uuid4().hex,
        writeback_state,
        discovered_at,
    )
    return event_id


def csrf_token_in(page: str) -> str:
    """The CSRF token of the first form on ``page``."""
    found = re.search(r'name="csrf_token" value="([^"]*)"', page)
    assert found, "no csrf_token field on the page"
    return found.group(1)
