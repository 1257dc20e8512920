"""Giving claimed shipments back without results: carrier down, its rate or budget spent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from carriers.base import Adapter, CarrierSettings
from tracker.config import PollingConfig
from tracker.engine.claims import ClaimedShipment
from tracker.engine.policy import next_poll_delay

# The claimed rows are found by primary key, one probe per id of the arrays. The lease check is
# a join condition (the owner comes with the arrays, OFFSET 0 keeps it there): as a plain
# filter the planner would take the lease to be rare (statistics taken when nothing was
# claimed), expect one row, and might scan the whole table for it or read the arrays again for
# every row found.
RELEASE_FAILED = """
UPDATE shipments AS s SET
    carrier_state = $3, carrier_message = $4, poll_failures = u.failures,
    last_polled_at = now(), next_poll_at = now() + u.delay,
    lease_owner = NULL, lease_until = NULL, updated_at = now()
FROM (SELECT u.*, $1::text AS owner
      FROM unnest($2::bigint[], $5::int[], $6::interval[]) AS u(id, failures, delay)
      OFFSET 0) AS u
WHERE s.id = u.id AND s.lease_owner = u.owner
"""


def daily_quota(adapter: Adapter, settings: CarrierSettings | None) -> int | None:
    """The configured daily quota, else the carrier's published one (None: unlimited)."""
    if settings is not None and settings.requests_per_day is not None:
        return settings.requests_per_day
    return adapter.default_requests_per_day


async def postpone(
    pool: asyncpg.Pool, worker: str, batch: Sequence[ClaimedShipment], until: datetime
) -> None:
    """Give a batch back untouched, due again at ``until`` (another replica holds the rate)."""
    await pool.execute(
        """
        UPDATE shipments SET next_poll_at = $3, lease_owner = NULL, lease_until = NULL
        WHERE id = ANY($2::bigint[]) AND lease_owner = $1
        """,
        worker,
        [s.id for s in batch],
        until,
    )


async def hold_until(
    pool: asyncpg.Pool, worker: str, batch: Sequence[ClaimedShipment], until: datetime
) -> None:
    """Give a batch back due as it was, in its place in the order, but claimed by no one before
    ``until`` (the carrier's daily budget is spent until then): a lease held by nobody.

    Putting the batch off to ``until`` instead would give every shipment of it the same due
    time, and the order between them (the longest overdue first) would be lost.
    """
    await pool.execute(
        """
        UPDATE shipments SET lease_owner = NULL, lease_until = $3
        WHERE id = ANY($2::bigint[]) AND lease_owner = $1
        """,
        worker,
        [s.id for s in batch],
        until,
    )


async def give_back(pool: asyncpg.Pool, worker: str, batch: Sequence[ClaimedShipment]) -> None:
    """Give a batch back as it was: due as before, in its place in the order."""
    await pool.execute(
        "UPDATE shipments SET lease_owner = NULL, lease_until = NULL"
        " WHERE id = ANY($2::bigint[]) AND lease_owner = $1",
        worker,
        [s.id for s in batch],
    )


async def release_failed(
    pool: asyncpg.Pool,
    worker: str,
    batch: Sequence[ClaimedShipment],
    state: str,
    message: str,
    polling: PollingConfig,
) -> None:
    """Give a batch back after the carrier could not be asked, with per-shipment backoff."""
    failures = [s.poll_failures + 1 for s in batch]
    delays = [next_poll_delay(None, state, f, polling) for f in failures]
    await pool.execute(
        RELEASE_FAILED, worker, [s.id for s in batch], state, message[:1000], failures, delays
    )
