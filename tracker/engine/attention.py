"""Attention flags: which shipments a person should look at, computed in PostgreSQL.

Each shipment carries its most urgent flag (or none), in this order: returned or failed,
failed delivery attempt, not found (after ``attention.not_found_days``), expired (no scan for
``polling.expire_after``), stalled (no scan for N weekdays: fewer before pickup than in
transit), late (``attention.late_days`` past the first ETA), waiting at a pickup point (counted
from its arrival there, not from the carrier's latest reminder), fulfilled without a tracking
number, carrier not tracked (unknown, or not configured). A parcel at a pickup point is waiting
for its recipient: it is neither stalled nor late.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, timedelta

import asyncpg

from tracker.config import AttentionConfig

FLAGS = (
    "returned_or_failed",
    "delivery_attempt_failed",
    "not_found",
    "expired",
    "stalled",
    "late",
    "waiting_at_pickup",
    "no_tracking_number",
    "carrier_not_tracked",
)
"""Most urgent first."""

_REFRESH = """
WITH computed AS (
    SELECT s.id,
        CASE
            WHEN s.carrier_state = 'untracked' THEN 'no_tracking_number'
            WHEN s.retired_reason IS NOT NULL OR s.status = 'delivered' THEN NULL
            WHEN s.status = 'failure' THEN 'returned_or_failed'
            WHEN s.status = 'attempted_delivery' THEN 'delivery_attempt_failed'
            WHEN s.carrier_state IN ('not_found', 'invalid_number')
                 AND s.not_found_since <= now() - $1::float8 * interval '1 day' THEN 'not_found'
            WHEN s.stopped_reason = 'expired' THEN 'expired'
            WHEN s.carrier_state = 'found' AND s.status IS DISTINCT FROM 'ready_for_pickup'
                 AND (COALESCE(s.last_scan_at, s.fulfilled_at, s.created_at)
                      AT TIME ZONE 'UTC')::date
                     <= CASE WHEN s.status IS NULL
                                  OR s.status IN ('label_purchased', 'label_printed', 'confirmed')
                             THEN $2::date ELSE $3::date END
                THEN 'stalled'
            WHEN s.first_eta IS NOT NULL AND s.first_eta + make_interval(days => $4::int) < now()
                 AND s.status IS DISTINCT FROM 'ready_for_pickup'
                THEN 'late'
            WHEN s.status = 'ready_for_pickup'
                 AND COALESCE(
                     (SELECT min(e.happened_at) FROM tracking_events e
                      WHERE e.shipment_id = s.id AND e.status = 'ready_for_pickup'
                        AND e.happened_at > COALESCE(
                            (SELECT max(o.happened_at) FROM tracking_events o
                             WHERE o.shipment_id = s.id AND o.status <> 'ready_for_pickup'),
                            '-infinity')),
                     s.status_at)
                     <= now() - make_interval(days => $5::int)
                THEN 'waiting_at_pickup'
            WHEN s.carrier_state = 'no_adapter'
                 OR (s.carrier IS NOT NULL AND NOT s.carrier = ANY($7::text[]))
                THEN 'carrier_not_tracked'
        END AS flag
    FROM shipments s
    WHERE (s.status IS DISTINCT FROM 'delivered' OR s.attention IS NOT NULL)
      AND ($6::bigint[] IS NULL OR s.id = ANY($6::bigint[]))
)
UPDATE shipments s SET attention = c.flag,
       attention_since = CASE WHEN c.flag IS NULL THEN NULL ELSE now() END
FROM computed c
WHERE s.id = c.id AND c.flag IS DISTINCT FROM s.attention
"""


async def refresh_attention(
    pool: asyncpg.Pool,
    config: AttentionConfig,
    ids: list[int] | None = None,
    *,
    tracked: Collection[str] | None = None,
) -> int:
    """Recompute flags (of ``ids``, or of every shipment that may need one); returns changes.

    ``tracked``: the carriers polled (configured and enabled); a shipment of any other carrier
    is flagged as not tracked. None: every carrier counts as tracked.
    """
    today: date = await pool.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
    result = await pool.execute(
        _REFRESH,
        config.not_found_days,
        stalled_on_or_before(today, config.stalled_pre_transit_business_days),
        stalled_on_or_before(today, config.stalled_in_transit_business_days),
        config.late_days,
        config.pickup_waiting_days,
        ids,
        None if tracked is None else sorted(tracked),
    )
    return int(result.split()[-1])


def stalled_on_or_before(today: date, weekdays: int) -> date:
    """The latest (UTC) day of a last scan that leaves ``weekdays`` weekdays without one by
    ``today``: what ``business_days_between(last scan, now) >= weekdays`` means, as one date.

    Comparing a date is what lets the refresh read a million shipments in seconds; calling the
    SQL function per row took over ten.
    """
    day, counted = today, 0
    while counted < weekdays:
        if day.isoweekday() < 6:
            counted += 1
        day -= timedelta(days=1)
    return day
