"""One story per fulfillment, however many parcels it ships in.

A fulfillment with one parcel gets every normalized scan written. A fulfillment with several
parcels gets a new event only when its combined status (:func:`tracker.domain.fulfillment_status`)
changes: the customer hears "out for delivery" when the last parcel is out, "delivered" when
all are, and at once about any parcel's problem, never parcel 1's "delivered" while parcel 2 is
still on its way. The combined status is decided under a per-fulfillment lock, so workers
polling sibling parcels at the same moment cannot both miss (or both write) a change.
"""

from __future__ import annotations

from collections.abc import Sequence

from tracker.db import Connection
from tracker.domain import Status, fulfillment_status

MULTI_PARCEL = "one of several parcels: written when the fulfillment's combined status changes"

FulfillmentKey = tuple[int, str]  # (shop id, fulfillment gid)


async def lock_multi_parcel(conn: Connection, shipment_ids: Sequence[int]) -> set[FulfillmentKey]:
    """Fulfillments of these shipments that have several active parcels, locked for this
    transaction (in a fixed order, so two workers never deadlock)."""
    # Per distinct fulfillment, a count over its index entries: a join with GROUP BY over all
    # of them turned into a scan of the whole table once a hundred or so ids were asked.
    rows = await conn.fetch(
        """
        SELECT k.shop_id, k.fulfillment_id
        FROM (SELECT DISTINCT shop_id, fulfillment_id FROM shipments
              WHERE id = ANY($1::bigint[])) AS k
        WHERE (SELECT count(*) FROM shipments s
               WHERE s.shop_id = k.shop_id AND s.fulfillment_id = k.fulfillment_id
                 AND s.retired_reason IS NULL) > 1
        ORDER BY k.shop_id, k.fulfillment_id
        """,
        list(shipment_ids),
    )
    keys = {(r["shop_id"], r["fulfillment_id"]) for r in rows}
    for shop_id, fulfillment_id in sorted(keys):
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))", int(shop_id), fulfillment_id
        )
    return keys


async def tell_story(conn: Connection, keys: set[FulfillmentKey]) -> int:
    """Queue the scans that changed each multi-parcel fulfillment's combined status.

    The fulfillment's scans are replayed in time order; a scan after the last one already told
    that moves the combined status is queued, written as the combined status. Returns how many
    were queued. Call after the shipments' statuses are stored, under :func:`lock_multi_parcel`.
    """
    queued = 0
    for shop_id, fulfillment_id in sorted(keys):
        rows = await conn.fetch(
            """
            SELECT e.id, e.shipment_id, e.status, e.happened_at, e.writeback_state,
                   e.writeback_error, COALESCE(e.writeback_status, e.status) AS told_as
            FROM tracking_events e JOIN shipments s ON s.id = e.shipment_id
            WHERE s.shop_id = $1 AND s.fulfillment_id = $2 AND s.retired_reason IS NULL
              AND e.status IS NOT NULL
            ORDER BY e.happened_at, e.id
            """,
            shop_id,
            fulfillment_id,
        )
        parcels = await conn.fetch(
            "SELECT id FROM shipments WHERE shop_id = $1 AND fulfillment_id = $2"
            " AND retired_reason IS NULL",
            shop_id,
            fulfillment_id,
        )
        current: dict[int, Status | None] = {r["id"]: None for r in parcels}
        told_rows = [r for r in rows if r["writeback_state"] in ("pending", "sending", "written")]
        last_told = told_rows[-1] if told_rows else None
        story: str | None = None
        for row in rows:
            current[row["shipment_id"]] = Status(row["status"])
            combined = fulfillment_status(list(current.values()))
            if row["writeback_state"] in ("pending", "sending", "written"):
                story = row["told_as"]
                continue
            later = last_told is None or (row["happened_at"], row["id"]) > (
                last_told["happened_at"],
                last_told["id"],
            )
            waiting = row["writeback_state"] == "skipped" and row["writeback_error"] == MULTI_PARCEL
            if combined is None or combined.value == story or not (later and waiting):
                continue
            await conn.execute(
                """
                UPDATE tracking_events SET writeback_state = 'pending', writeback_error = NULL,
                       writeback_status = $2, writeback_next_at = now()
                WHERE id = $1
                """,
                row["id"],
                combined.value,
            )
            story = combined.value
            queued += 1
    return queued
