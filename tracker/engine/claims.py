"""Claiming due shipments: one statement, a lease, ``FOR UPDATE SKIP LOCKED``.

Any number of workers run it against one database; none gets a shipment another holds, and a
dead worker's claims come back when their lease runs out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from tracker.domain import Status

# The due rows are found and locked first (the ARRAY is computed once), then updated through
# the primary key; an ``id IN (subquery)`` was planned as a hash join over a scan of the whole
# table, a cost that grew with every shipment there is. A claim sets only the lease, which no
# index holds, so it is updated in place on its page (migrations/0010_poll_path_writes.sql):
# keep lease columns out of every index. Carriers given a cap (a slow quota: see
# tracker.engine.poller.claim_caps) are claimed apart, each up to its cap, through
# shipments_due_by_carrier (migrations/0012_claim_order.sql). Written as ``carrier = k.carrier``
# the planner, which cannot know the carrier, took shipments_due and read every due row of the
# other carriers before finding this one's (0.9 s at 1,000,000 due); ``= ANY(ARRAY[...])`` and
# the carrier as the first sort key leave that index no way to give the order. The rows come
# back in no particular order: the caller sorts them the claim's way, as the most valuable go
# first when a budget covers only some. A lease_until with no lease_owner holds a shipment its
# carrier's spent daily budget cannot cover (tracker.engine.release.hold_until).
CLAIM_DUE = """
UPDATE shipments SET lease_owner = $1, lease_until = now() + $2::interval
WHERE id = ANY(ARRAY(
    SELECT id FROM shipments
    WHERE active AND next_poll_at <= now() AND carrier = ANY($4::text[])
      AND (lease_until IS NULL OR lease_until < now())
    ORDER BY poll_priority, next_poll_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
) || ARRAY(
    SELECT c.id FROM unnest($5::text[], $6::int[]) AS k(carrier, most)
    CROSS JOIN LATERAL (
        SELECT id FROM shipments
        WHERE active AND next_poll_at <= now() AND carrier = ANY(ARRAY[k.carrier])
          AND (lease_until IS NULL OR lease_until < now())
        ORDER BY carrier, poll_priority, next_poll_at
        LIMIT k.most
        FOR UPDATE SKIP LOCKED
    ) AS c
))
RETURNING id, carrier, tracking_number, poll_failures, status, not_found_since,
          estimated_delivery_at, poll_priority, next_poll_at, fulfilled_at
"""


@dataclass(frozen=True, slots=True)
class ClaimedShipment:
    id: int
    carrier: str
    tracking_number: str
    poll_failures: int
    status: Status | None = None
    not_found_since: datetime | None = None
    estimated_delivery_at: datetime | None = None
    fulfilled_at: datetime | None = None


async def claim_due(
    pool: asyncpg.Pool,
    worker: str,
    lease: timedelta,
    limit: int,
    carriers: Sequence[str],
    caps: Mapping[str, int] | None = None,
) -> list[ClaimedShipment]:
    """Claim up to ``limit`` due shipments of ``carriers`` for ``worker``, and up to
    ``caps[code]`` of each carrier in ``caps`` besides; most valuable first: the urgent
    (:data:`~tracker.engine.policy.URGENT`), then the longest overdue."""
    capped = [(code, most) for code, most in (caps or {}).items() if most > 0]
    rows = await pool.fetch(
        CLAIM_DUE,
        worker,
        lease,
        limit,
        list(carriers),
        [code for code, _ in capped],
        [most for _, most in capped],
    )
    rows.sort(key=lambda r: (r["poll_priority"], r["next_poll_at"]))
    return [
        ClaimedShipment(
            r["id"],
            r["carrier"],
            r["tracking_number"],
            r["poll_failures"],
            Status(r["status"]) if r["status"] else None,
            r["not_found_since"],
            r["estimated_delivery_at"],
            r["fulfilled_at"],
        )
        for r in rows
    ]
