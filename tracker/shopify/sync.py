"""Incremental sync: fulfilled orders' tracking numbers into ``shipments``.

Orders are read by ``updated_at`` from a per-shop cursor, oldest first, one page per
transaction: a page's shipments and the cursor move together, so a crash re-reads at most one
page and upserts are idempotent. One shipment per (fulfillment, tracking number). Cancelled
orders and fulfillments, and numbers removed from a fulfillment, stop being tracked.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from carriers.detect import resolve_carrier
from carriers.registry import carrier_for_company
from tracker.config import ShopConfig, SyncConfig
from tracker.db import Connection
from tracker.db.connection import reset_on_release
from tracker.shopify.client import ShopifyClient
from tracker.text import clean_text

log = logging.getLogger(__name__)

_UNTRACKED_FULFILLMENT_STATUSES = {"CANCELLED", "ERROR", "FAILURE"}
_SYNC_LOCK = 0x73796E63  # "sync", combined with the shop id


@dataclass(frozen=True, slots=True)
class ShopRow:
    id: int
    domain: str
    api_version: str


async def ensure_shops(pool: asyncpg.Pool, shops: list[ShopConfig]) -> dict[str, ShopRow]:
    """Insert configured shops that are new, record their API version, return them by domain."""
    result = {}
    for shop in shops:
        row = await pool.fetchrow(
            """
            INSERT INTO shops (domain, api_version) VALUES ($1, $2)
            ON CONFLICT (domain) DO UPDATE SET api_version = EXCLUDED.api_version
            RETURNING id, domain, api_version
            """,
            shop.domain,
            shop.api_version,
        )
        assert row is not None
        result[shop.domain] = ShopRow(row["id"], row["domain"], row["api_version"])
    return result


@dataclass(frozen=True, slots=True)
class TrackedParcel:
    """One (fulfillment, tracking number) read from Shopify."""

    order_id: str
    order_name: str
    fulfillment_id: str
    tracking_number: str
    company: str | None
    url: str | None
    carrier: str | None
    carrier_source: str  # shopify, detected or unknown
    fulfilled_at: datetime | None
    customer_name: str | None = None
    customer_email: str | None = None


@dataclass
class SyncReport:
    orders: int = 0
    parcels: int = 0
    retired: int = 0
    pages: int = 0


def parcels_of_order(order: dict[str, Any]) -> tuple[list[TrackedParcel], list[str]]:
    """Tracked parcels of one order node, and the ids of its fulfillments to stop tracking."""
    parcels: list[TrackedParcel] = []
    stopped: list[str] = []
    order_cancelled = order.get("cancelledAt") is not None
    customer_name = _text(order.get("customer"), "displayName")
    customer_email = _text(order, "email")
    order_name = clean_text(order["name"], 320)
    for fulfillment in order.get("fulfillments") or []:
        fulfillment_id = fulfillment["id"]
        if order_cancelled or fulfillment.get("status") in _UNTRACKED_FULFILLMENT_STATUSES:
            stopped.append(fulfillment_id)
            continue
        seen: set[str] = set()
        for info in fulfillment.get("trackingInfo") or []:
            number = normalize_tracking_number(info.get("number"))
            if not number or number in seen:
                continue
            seen.add(number)
            company = _text(info, "company")
            carrier, source = resolve_carrier(carrier_for_company(company), number)
            parcels.append(
                TrackedParcel(
                    order_id=order["id"],
                    order_name=order_name,
                    fulfillment_id=fulfillment_id,
                    tracking_number=number,
                    company=company,
                    url=clean_text(info.get("url"), 2000) or None,
                    carrier=carrier,
                    carrier_source=source,
                    fulfilled_at=_parse_time(fulfillment.get("createdAt")),
                    customer_name=customer_name,
                    customer_email=customer_email,
                )
            )
        if not seen:  # fulfilled without a tracking number: shown, flagged, never polled
            parcels.append(
                TrackedParcel(
                    order_id=order["id"],
                    order_name=order_name,
                    fulfillment_id=fulfillment_id,
                    tracking_number="",
                    company=None,
                    url=None,
                    carrier=None,
                    carrier_source="unknown",
                    fulfilled_at=_parse_time(fulfillment.get("createdAt")),
                    customer_name=customer_name,
                    customer_email=customer_email,
                )
            )
    return parcels, stopped


def untracked_reason(parcel: TrackedParcel) -> str:
    """What the status table says when no enabled carrier can poll this parcel."""
    if not parcel.tracking_number:
        return "fulfilled without a tracking number"
    if parcel.carrier is None:
        company = parcel.company or "no carrier given"
        return f"carrier not recognised ({company}) and the number matches no known format"
    return f"{parcel.carrier} is not enabled: add carriers.{parcel.carrier} to the configuration"


def normalize_tracking_number(raw: object) -> str:
    """Strip the spaces and dashes merchants type; carriers ignore them."""
    if not isinstance(raw, str):
        return ""
    return "".join(ch for ch in raw if ch.isalnum()).upper()[:64]


def search_query(cursor: datetime, overlap: timedelta) -> str:
    since = (cursor - overlap).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"updated_at:>='{since}'"


async def sync_shop(
    pool: asyncpg.Pool,
    client: ShopifyClient,
    shop: ShopRow,
    config: SyncConfig,
    enabled_carriers: Collection[str],
) -> SyncReport | None:
    """Read orders updated since the shop's cursor. None when another worker is syncing it.

    Parcels of carriers not in ``enabled_carriers`` are stored as ``no_adapter``.
    """
    report = SyncReport()
    async with pool.acquire() as lock_conn:
        reset_on_release(lock_conn)
        if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", _SYNC_LOCK, shop.id):
            return None
        try:
            cursor = await pool.fetchval("SELECT sync_cursor FROM shops WHERE id = $1", shop.id)
            if cursor is None:
                cursor = datetime.now(UTC) - config.lookback
            query = search_query(cursor, config.overlap)
            after: str | None = None
            while True:
                data = await client.query(
                    "FulfilledOrders", {"first": config.page_size, "after": after, "query": query}
                )
                orders = data["orders"]
                nodes: list[dict[str, Any]] = orders["nodes"]
                page_cursor = max(
                    (t for t in (_parse_time(o.get("updatedAt")) for o in nodes) if t),
                    default=None,
                )
                async with pool.acquire() as conn, conn.transaction():
                    applied = await apply_orders(conn, shop.id, nodes, enabled_carriers)
                    if page_cursor is not None:
                        await conn.execute(
                            "UPDATE shops SET sync_cursor = GREATEST(sync_cursor, $2)"
                            " WHERE id = $1",
                            shop.id,
                            page_cursor,
                        )
                report.pages += 1
                report.orders += len(nodes)
                report.parcels += applied.parcels
                report.retired += applied.retired
                if not orders["pageInfo"]["hasNextPage"]:
                    break
                after = orders["pageInfo"]["endCursor"]
            await pool.execute(
                """
                UPDATE shops SET last_sync_at = now(), last_sync_error = NULL,
                       sync_cursor = COALESCE(sync_cursor, $2)
                WHERE id = $1
                """,
                shop.id,
                cursor,
            )
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock($1, $2)", _SYNC_LOCK, shop.id)
    log.info(
        "synced %s: %d orders, %d parcels, %d retired in %d pages",
        shop.domain,
        report.orders,
        report.parcels,
        report.retired,
        report.pages,
    )
    return report


async def record_sync_error(pool: asyncpg.Pool, shop: ShopRow, error: str) -> None:
    await pool.execute("UPDATE shops SET last_sync_error = $2 WHERE id = $1", shop.id, error[:1000])


@dataclass(frozen=True, slots=True)
class Applied:
    parcels: int
    retired: int


async def apply_orders(
    conn: Connection,
    shop_id: int,
    orders: list[dict[str, Any]],
    enabled_carriers: Collection[str],
) -> Applied:
    """Bring ``shipments`` in line with these order nodes (the ``FulfilledOrders`` shape).

    Idempotent, and safe to call with an older copy of an order than the one last applied as
    long as callers read orders fresh from Shopify (webhook handlers do). Run it inside the
    caller's transaction.
    """
    parcels: list[TrackedParcel] = []
    stopped: list[str] = []
    for order in orders:
        found, gone = parcels_of_order(order)
        parcels.extend(found)
        stopped.extend(gone)
    enabled = list(enabled_carriers)
    if parcels:
        await conn.execute(
            """
            INSERT INTO shipments AS s (shop_id, order_id, order_name, fulfillment_id,
                tracking_number, tracking_company, tracking_url, carrier, carrier_source,
                fulfilled_at, carrier_state, carrier_message, active, customer_name,
                customer_email)
            SELECT $1, o, n, f, t, c, u, cr, cs, fa,
                   CASE WHEN t = '' THEN 'untracked'
                        WHEN cr = ANY($10::text[]) THEN 'pending' ELSE 'no_adapter' END,
                   CASE WHEN cr = ANY($10::text[]) THEN '' ELSE m END,
                   t <> '', cn, ce
            FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                        $8::text[], $9::timestamptz[], $11::text[], $12::text[], $13::text[],
                        $14::text[])
                 AS p(o, n, f, t, c, u, cr, fa, cs, m, cn, ce)
            ON CONFLICT (shop_id, fulfillment_id, tracking_number) DO UPDATE SET
                order_name = EXCLUDED.order_name,
                customer_name = COALESCE(EXCLUDED.customer_name, s.customer_name),
                customer_email = COALESCE(EXCLUDED.customer_email, s.customer_email),
                tracking_company = EXCLUDED.tracking_company,
                tracking_url = EXCLUDED.tracking_url,
                -- The merchant picked another carrier: track with that one from now on.
                carrier = COALESCE(EXCLUDED.carrier, s.carrier),
                carrier_source = CASE WHEN EXCLUDED.carrier IS NULL THEN s.carrier_source
                                      ELSE EXCLUDED.carrier_source END,
                carrier_state = CASE
                    WHEN EXCLUDED.carrier IS NOT NULL
                         AND EXCLUDED.carrier IS DISTINCT FROM s.carrier
                      OR s.carrier_state IN ('pending', 'no_adapter')
                    THEN EXCLUDED.carrier_state ELSE s.carrier_state END,
                carrier_message = CASE
                    WHEN EXCLUDED.carrier IS NOT NULL
                         AND EXCLUDED.carrier IS DISTINCT FROM s.carrier
                      OR s.carrier_state IN ('pending', 'no_adapter')
                    THEN EXCLUDED.carrier_message ELSE s.carrier_message END,
                next_poll_at = CASE
                    WHEN EXCLUDED.carrier IS NOT NULL
                         AND EXCLUDED.carrier IS DISTINCT FROM s.carrier
                    THEN now() ELSE s.next_poll_at END,
                active = s.active
                    OR s.retired_reason IS NOT DISTINCT FROM 'tracking number removed',
                retired_reason = CASE WHEN s.retired_reason = 'tracking number removed'
                                      THEN NULL ELSE s.retired_reason END,
                updated_at = now()
            """,
            shop_id,
            [p.order_id for p in parcels],
            [p.order_name for p in parcels],
            [p.fulfillment_id for p in parcels],
            [p.tracking_number for p in parcels],
            [p.company for p in parcels],
            [p.url for p in parcels],
            [p.carrier for p in parcels],
            [p.fulfilled_at for p in parcels],
            enabled,
            [p.carrier_source for p in parcels],
            [untracked_reason(p) for p in parcels],
            [p.customer_name for p in parcels],
            [p.customer_email for p in parcels],
        )
    retired = 0
    if stopped:
        result = await conn.execute(
            """
            UPDATE shipments SET active = false, lease_owner = NULL, lease_until = NULL,
                   retired_reason = 'fulfillment or order cancelled', updated_at = now()
            WHERE shop_id = $1 AND fulfillment_id = ANY($2::text[]) AND retired_reason IS NULL
            """,
            shop_id,
            stopped,
        )
        retired += int(result.split()[-1])
    # Numbers no longer on a fulfillment we just read: the merchant edited them.
    current = {(p.fulfillment_id, p.tracking_number) for p in parcels}
    read_fulfillments = sorted(
        {f["id"] for o in orders for f in (o.get("fulfillments") or [])} - set(stopped)
    )
    if read_fulfillments:
        rows = await conn.fetch(
            """
            SELECT id, fulfillment_id, tracking_number FROM shipments
            WHERE shop_id = $1 AND fulfillment_id = ANY($2::text[]) AND retired_reason IS NULL
            """,
            shop_id,
            read_fulfillments,
        )
        gone = [r["id"] for r in rows if (r["fulfillment_id"], r["tracking_number"]) not in current]
        if gone:
            await conn.execute(
                """
                UPDATE shipments SET active = false, lease_owner = NULL, lease_until = NULL,
                       retired_reason = 'tracking number removed', updated_at = now()
                WHERE id = ANY($1::bigint[])
                """,
                gone,
            )
            retired += len(gone)
    return Applied(len(parcels), retired)


def _text(node: object, key: str) -> str | None:
    """``node[key]`` when ``node`` is an object and that is a non-empty string (cleaned, cut
    to 320: :func:`tracker.text.clean_text`)."""
    value = node.get(key) if isinstance(node, dict) else None
    return clean_text(value, 320) or None


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
