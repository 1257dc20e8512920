"""Whose story is it? Write-back policy per store and carrier, and foreign events.

``always`` writes every event; ``never`` writes none; ``auto`` (the default) writes only while
the fulfillment holds no event this daemon did not write. Shopify records events itself for the
carriers it tracks, and other apps may write too: once such an event shows up (read before the
first write, re-read now and then, or announced by a ``fulfillment_events/create`` webhook),
the daemon stops writing to that fulfillment and keeps tracking it for the status table.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from tracker.db import Connection

log = logging.getLogger(__name__)

RECHECK_AFTER = timedelta(hours=6)


async def record_foreign_event(
    conn: Connection, shop_id: int, fulfillment_id: str, event_id: str
) -> bool:
    """Note that ``event_id`` on the fulfillment was not written by us; False if it was ours."""
    ours = await conn.fetchval(
        """
        SELECT EXISTS (SELECT 1 FROM tracking_events e JOIN shipments s ON s.id = e.shipment_id
                       WHERE s.shop_id = $1 AND e.shopify_event_id = $2)
        """,
        shop_id,
        event_id,
    )
    if ours:
        return False
    await conn.execute(
        """
        INSERT INTO fulfillment_writeback (shop_id, fulfillment_id, foreign_event_id,
                                           foreign_seen_at)
        VALUES ($1, $2, $3, now())
        ON CONFLICT (shop_id, fulfillment_id) DO UPDATE SET
            foreign_event_id = COALESCE(fulfillment_writeback.foreign_event_id,
                                        EXCLUDED.foreign_event_id),
            foreign_seen_at = COALESCE(fulfillment_writeback.foreign_seen_at, now())
        """,
        shop_id,
        fulfillment_id,
        event_id,
    )
    log.info("fulfillment %s has events from elsewhere (%s)", fulfillment_id, event_id)
    return True


async def foreign_event(conn: Connection, shop_id: int, fulfillment_id: str) -> str | None:
    """The foreign event that stopped write-back to this fulfillment, if any."""
    value: str | None = await conn.fetchval(
        "SELECT foreign_event_id FROM fulfillment_writeback WHERE shop_id = $1"
        " AND fulfillment_id = $2",
        shop_id,
        fulfillment_id,
    )
    return value


async def needs_check(conn: Connection, shop_id: int, fulfillment_id: str) -> bool:
    """True when the fulfillment's events have not been read recently."""
    checked = await conn.fetchval(
        "SELECT checked_at > now() - $3::interval FROM fulfillment_writeback"
        " WHERE shop_id = $1 AND fulfillment_id = $2",
        shop_id,
        fulfillment_id,
        RECHECK_AFTER,
    )
    return not checked


async def mark_checked(conn: Connection, shop_id: int, fulfillment_id: str) -> None:
    await conn.execute(
        """
        INSERT INTO fulfillment_writeback (shop_id, fulfillment_id, checked_at)
        VALUES ($1, $2, now())
        ON CONFLICT (shop_id, fulfillment_id) DO UPDATE SET checked_at = now()
        """,
        shop_id,
        fulfillment_id,
    )


async def skip_pending(conn: Connection, shop_id: int, fulfillment_id: str, reason: str) -> int:
    """Pending events of the fulfillment become ``skipped`` with ``reason``; returns how many."""
    result = await conn.execute(
        """
        UPDATE tracking_events e SET writeback_state = 'skipped', writeback_error = $3
        FROM shipments s
        WHERE s.id = e.shipment_id AND s.shop_id = $1 AND s.fulfillment_id = $2
          AND e.writeback_state = 'pending'
        """,
        shop_id,
        fulfillment_id,
        reason[:1000],
    )
    return int(result.split()[-1])
