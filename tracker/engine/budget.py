"""Daily request budgets per carrier, shared through PostgreSQL by every worker.

A worker reserves the requests it is about to send; a reservation is granted as far as the
day's quota allows and the rest of the shipments wait for the next UTC day (carriers such as
FedEx reset at 00:00 GMT). Per-second pacing is ``tracker.engine.pacing``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

# One statement each: the upsert creates or locks the day's row, works the grant out from the
# row as it was (concurrent reservations wait for the row and see what the one before took) and
# keeps it in ``granted`` to return it. The lock lasts no longer than the statement.
_RESERVE_UP_TO = """
INSERT INTO carrier_budgets AS b (carrier, day, used, granted)
VALUES ($1, (now() AT TIME ZONE 'UTC')::date, LEAST($2::int, $3::int), LEAST($2::int, $3::int))
ON CONFLICT (carrier, day) DO UPDATE
SET used = b.used + LEAST($2::int, GREATEST(0, $3::int - b.used)),
    granted = LEAST($2::int, GREATEST(0, $3::int - b.used))
RETURNING granted
"""
# All or nothing; called with $2 <= $3 only.
_RESERVE = """
INSERT INTO carrier_budgets AS b (carrier, day, used, granted)
VALUES ($1, (now() AT TIME ZONE 'UTC')::date, $2::int, $2::int)
ON CONFLICT (carrier, day) DO UPDATE
SET used = b.used + CASE WHEN b.used + $2::int <= $3::int THEN $2::int ELSE 0 END,
    granted = CASE WHEN b.used + $2::int <= $3::int THEN $2::int ELSE 0 END
RETURNING granted = $2::int AND used <= $3::int
"""


async def reserve_up_to(
    pool: asyncpg.Pool, carrier: str, requests: int, per_day: int | None
) -> int:
    """Take up to ``requests`` from today's budget; returns how many were granted (0..requests).

    Never passes ``per_day``, however many workers reserve at once: the day's row is locked
    for the one statement that reads and writes it.
    """
    if per_day is None or requests <= 0:
        return max(0, requests)
    granted: int = await pool.fetchval(_RESERVE_UP_TO, carrier, requests, per_day)
    return granted


async def reserve(pool: asyncpg.Pool, carrier: str, requests: int, per_day: int | None) -> bool:
    """Take exactly ``requests`` from today's budget, or nothing; False when that would pass."""
    if per_day is None:
        return True
    if requests > per_day:
        return False
    taken: bool = await pool.fetchval(_RESERVE, carrier, requests, per_day)
    return taken


def next_budget_day(now: datetime | None = None) -> datetime:
    """When today's budget renews: the next 00:00 UTC."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC) + timedelta(days=1)
