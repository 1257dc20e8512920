"""Per-second carrier pacing shared by every worker, through PostgreSQL.

Each process paces its own requests (the adapter's RateLimiter); this keeps the sum of all
replicas within the carrier's rate too. Time is cut into windows: one second for rates of a
request per second or more, longer for slow quotas (USPS's 60 an hour: one request a minute).
A worker takes a slot in the current window in one statement, or waits for the next window.
"""

from __future__ import annotations

import asyncio
import math
import time

import asyncpg

_TAKE = """
INSERT INTO carrier_windows AS w (carrier, window_start, used) VALUES ($1, $2, 1)
ON CONFLICT (carrier, window_start) DO UPDATE SET used = w.used + 1
WHERE w.used < $3
RETURNING used
"""

MAX_WAIT_SECONDS = 120.0


def window_of(rate: float) -> tuple[int, int]:
    """(window length in seconds, requests allowed in one window) for ``rate`` per second."""
    length = max(1, math.ceil(1.0 / rate))
    return length, max(1, math.floor(rate * length))


async def take_slot(pool: asyncpg.Pool, carrier: str, rate: float) -> bool:
    """Wait for a free slot in the carrier's shared budget; False if none came in time."""
    length, allowed = window_of(rate)
    deadline = time.monotonic() + MAX_WAIT_SECONDS
    while True:
        now = time.time()
        start = int(now // length) * length
        if await pool.fetchval(_TAKE, carrier, start, allowed) is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(max(0.01, start + length - now))


async def forget_old_windows(pool: asyncpg.Pool) -> None:
    """Windows older than a day tell nothing any more."""
    await pool.execute(
        "DELETE FROM carrier_windows WHERE window_start < extract(epoch FROM now()) - 86400"
    )
