"""Settle write-backs whose outcome is unknown by reading Shopify, never by sending again.

A ``sending`` event whose answer was lost (a timeout, a 5xx, a crash between the mutation and
its record) may or may not be on the fulfillment. Once its lease (``writeback.lease``) has
passed, :func:`reconcile_sending` reads the fulfillment's events from Shopify and matches each
such event by status (as the store's API version names it) and ``happenedAt`` to the second.
Each Shopify event is claimed once: not by an event that already holds its id, not by two
local events. A match makes the event ``written`` with that id; no match puts it back to
``pending`` to be sent again. A fulfillment that could not be read, or holds a ``sending`` event
still within its lease, is returned so that nothing more is sent to it on this pass.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta
from typing import TYPE_CHECKING

import asyncpg

from tracker.domain import Status, status_for_api_version
from tracker.shopify.client import GraphQLError, ShopifyClient
from tracker.shopify.fulfillment_events import fetch_remote_events, shopify_time
from tracker.shopify.sync import ShopRow

if TYPE_CHECKING:
    from tracker.shopify.writeback import WriteReport

log = logging.getLogger(__name__)

_SENDING = """
SELECT e.id, COALESCE(e.writeback_status, e.status) AS status, e.happened_at,
       e.writeback_started_at < now() - $2::interval AS expired,
       s.fulfillment_id
FROM tracking_events e JOIN shipments s ON s.id = e.shipment_id
WHERE s.shop_id = $1 AND e.writeback_state = 'sending'
"""


async def reconcile_sending(
    pool: asyncpg.Pool,
    shop: ShopRow,
    client: ShopifyClient,
    lease: timedelta,
    report: WriteReport,
) -> set[str]:
    """Resolve expired ``sending`` events; return fulfillments that must still wait."""
    rows = await pool.fetch(_SENDING, shop.id, lease)
    blocked: set[str] = set()
    expired: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for row in rows:
        if row["expired"]:
            expired[row["fulfillment_id"]].append(row)
        else:
            blocked.add(row["fulfillment_id"])
    for fulfillment_id, events in expired.items():
        ids: dict[str, object] = {"fulfillment_id": fulfillment_id}
        try:
            remote = await fetch_remote_events(client, fulfillment_id)
        except GraphQLError as exc:
            log.warning(
                "cannot check %s on %s yet: %s", fulfillment_id, shop.domain, exc, extra=ids
            )
            blocked.add(fulfillment_id)
            continue
        known = {
            r["shopify_event_id"]
            for r in await pool.fetch(
                """
                SELECT e.shopify_event_id FROM tracking_events e
                JOIN shipments s ON s.id = e.shipment_id
                WHERE s.shop_id = $1 AND s.fulfillment_id = $2
                  AND e.shopify_event_id IS NOT NULL
                """,
                shop.id,
                fulfillment_id,
            )
        }
        unclaimed: dict[tuple[str, str], list[str]] = defaultdict(list)
        for event_id, status, happened in remote:
            if event_id not in known:
                unclaimed[(status, happened)].append(event_id)
        for row in sorted(events, key=lambda r: (r["happened_at"], r["id"])):
            status = status_for_api_version(Status(row["status"]), shop.api_version).shopify
            key = (status, shopify_time(row["happened_at"]))
            if unclaimed.get(key):
                event_id = unclaimed[key].pop(0)
                await mark_written(pool, row["id"], event_id)
                report.reconciled += 1
                ids["event_id"] = row["id"]
                log.info("event %s was written before (Shopify %s)", row["id"], event_id, extra=ids)
            else:
                await pool.execute(
                    """
                    UPDATE tracking_events SET writeback_state = 'pending',
                           writeback_owner = NULL, writeback_next_at = now()
                    WHERE id = $1 AND writeback_state = 'sending'
                    """,
                    row["id"],
                )
                report.reverted += 1
                ids["event_id"] = row["id"]
                log.info("event %s was not written; it will be sent again", row["id"], extra=ids)
    return blocked


async def mark_written(pool: asyncpg.Pool, event_id: int, shopify_event_id: str) -> None:
    """The event is on Shopify as ``shopify_event_id``: ``written``, never to be sent again."""
    await pool.execute(
        """
        UPDATE tracking_events SET writeback_state = 'written', shopify_event_id = $2,
               written_at = now(), writeback_owner = NULL, writeback_error = NULL
        WHERE id = $1
        """,
        event_id,
        shopify_event_id,
    )
