"""Claiming due shipments: one statement, a lease, ``FOR UPDATE SKIP LOCKED``.

Any number of workers run it against one database; none gets a shipment another holds, and a
dead worker's claims come back when their lease runs out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from tracker.domain import Status

# The due rows are found and locked first (the ARRAY is computed once), then updated through
# the primary key; an ``id IN (subquery)`` was planned as a hash join over a scan of the whole
# table, a cost that grew with every shipment there is. A claim sets only the lease, which no
# index holds, so it is updated in place on its page (migrations/0010_poll_path_writes.sql):
# keep lease columns out of every index.
CLAIM_DUE = """
UPDATE shipments SET lease_owner = $1, lease_until = now() + $2::interval
WHERE id = ANY(ARRAY(
    SELECT id FROM shipments
    WHERE active AND next_poll_at <= now() AND carrier = ANY($4::text[])
      AND (lease_until IS NULL OR lease_until < now())
    ORDER BY poll_priority, next_poll_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
))
RETURNING id, carrier, tracking_number, poll_failures, status, not_found_since,
          estimated_delivery_at
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


async def claim_due(
    pool: asyncpg.Pool, worker: str, lease: timedelta, limit: int, carriers: Sequence[str]
) -> list[ClaimedShipment]:
    rows = await pool.fetch(CLAIM_DUE, worker, lease, limit, list(carriers))
    return [
        ClaimedShipment(
            r["id"],
            r["carrier"],
            r["tracking_number"],
            r["poll_failures"],
            Status(r["status"]) if r["status"] else None,
            r["not_found_since"],
            r["estimated_delivery_at"],
        )
        for r in rows
    ]
