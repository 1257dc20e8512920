"""Daily request budgets per carrier, shared through PostgreSQL by every worker.

A worker reserves the requests it is about to send; a reservation is granted as far as the
day's quota allows and the rest of the shipments wait for the next UTC day (carriers such as
FedEx reset at 00:00 GMT). Per-second pacing is ``tracker.engine.pacing``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

# Locks the day's row (creating it at 0) and returns what is used so far: a no-op update is
# what makes ON CONFLICT lock the row and hand back its current value.
_LOCK_DAY = """
INSERT INTO carrier_budgets AS b (carrier, day, used)
VALUES ($1, (now() AT TIME ZONE 'UTC')::date, 0)
ON CONFLICT (carrier, day) DO UPDATE SET used = b.used
RETURNING used
"""
_SET_DAY = """
UPDATE carrier_budgets SET used = $2 WHERE carrier = $1 AND day = (now() AT TIME ZONE 'UTC')::date
"""


async def reserve_up_to(
    pool: asyncpg.Pool, carrier: str, requests: int, per_day: int | None
) -> int:
    """Take up to ``requests`` from today's budget; returns how many were granted (0..requests).

    Never passes ``per_day``, however many workers reserve at once: the day's row is locked
    for the few microseconds between reading and writing it.
    """
    if per_day is None or requests <= 0:
        return max(0, requests)
    async with pool.acquire() as conn, conn.transaction():
        used: int = await conn.fetchval(_LOCK_DAY, carrier)
        granted = max(0, min(requests, per_day - used))
        if granted:
            await conn.execute(_SET_DAY, carrier, used + granted)
    return granted


async def reserve(pool: asyncpg.Pool, carrier: str, requests: int, per_day: int | None) -> bool:
    """Take exactly ``requests`` from today's budget, or nothing; False when that would pass."""
    if per_day is None:
        return True
    if requests > per_day:
        return False
    async with pool.acquire() as conn, conn.transaction():
        used: int = await conn.fetchval(_LOCK_DAY, carrier)
        if used + requests > per_day:
            return False
        await conn.execute(_SET_DAY, carrier, used + requests)
    return True


def next_budget_day(now: datetime | None = None) -> datetime:
    """When today's budget renews: the next 00:00 UTC."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC) + timedelta(days=1)
