"""Daily request budgets per carrier, shared through PostgreSQL by every worker.

A worker reserves the requests it is about to send in one statement; a reservation that would
pass the day's quota is refused and the shipments wait for the next UTC day (carriers such as
FedEx reset at 00:00 GMT). Per-second pacing stays in each adapter's RateLimiter.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

_RESERVE = """
INSERT INTO carrier_budgets (carrier, day, used) VALUES ($1, (now() AT TIME ZONE 'UTC')::date, $2)
ON CONFLICT (carrier, day) DO UPDATE SET used = carrier_budgets.used + EXCLUDED.used
WHERE carrier_budgets.used + EXCLUDED.used <= $3
RETURNING used
"""


async def reserve(pool: asyncpg.Pool, carrier: str, requests: int, per_day: int | None) -> bool:
    """Take ``requests`` from today's budget; False when that would pass ``per_day``."""
    if per_day is None:
        return True
    if requests > per_day:
        return False
    used = await pool.fetchval(_RESERVE, carrier, requests, per_day)
    return used is not None


def next_budget_day(now: datetime | None = None) -> datetime:
    """When today's budget renews: the next 00:00 UTC."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC) + timedelta(days=1)
