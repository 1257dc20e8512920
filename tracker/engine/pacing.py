"""Per-second carrier pacing shared by every worker, through PostgreSQL.

Each process paces its own requests (the adapter's RateLimiter); this keeps the sum of all
replicas within the carrier's rate too. Time is cut into windows: one second for rates of a
request per second or more, longer for slow quotas (USPS's 60 an hour: one request a minute).
A worker takes as many slots of the current window as it needs and the window still has, or
waits for the next window.
"""

from __future__ import annotations

import asyncio
import math
import time

import asyncpg

from carriers.base import SharedRateSpent

# One statement: the upsert creates or locks the window's row, works the grant out from the row
# as it was (a concurrent worker waits for the row and sees what this one took) and keeps it in
# ``granted`` to return it. $3: slots wanted, $4: slots a window allows.
_TAKE_SLOTS = """
INSERT INTO carrier_windows AS w (carrier, window_start, used, granted)
VALUES ($1, $2, LEAST($3::int, $4::int), LEAST($3::int, $4::int))
ON CONFLICT (carrier, window_start) DO UPDATE
SET used = w.used + LEAST($3::int, GREATEST(0, $4::int - w.used)),
    granted = LEAST($3::int, GREATEST(0, $4::int - w.used))
RETURNING granted
"""

MAX_WAIT_SECONDS = 120.0
ADAPTER_WAIT_SECONDS = 60.0
"""Longest an adapter's extra request waits for a shared slot (:class:`PostgresPacing`) before
its call gives up (the engine postpones its shipments); well inside a claim's lease."""


def window_of(rate: float) -> tuple[int, int]:
    """(window length in seconds, requests allowed in one window) for ``rate`` per second."""
    length = max(1, math.ceil(1.0 / rate))
    return length, max(1, math.floor(rate * length))


def next_window(rate: float, now: float | None = None) -> float:
    """When (``time.time()``) the window after the current one starts."""
    length, _ = window_of(rate)
    current = time.time() if now is None else now
    return (int(current // length) + 1) * length


async def take_slots(
    pool: asyncpg.Pool, carrier: str, rate: float, wanted: int, max_wait: float = MAX_WAIT_SECONDS
) -> int:
    """Slots for up to ``wanted`` requests to send now; waits for a window that has any.

    Returns how many were granted (at least one), or 0 when none came within ``max_wait``.
    """
    if wanted <= 0:
        return 0
    length, allowed = window_of(rate)
    deadline = time.monotonic() + max_wait
    while True:
        now = time.time()
        start = int(now // length) * length
        granted: int = await pool.fetchval(_TAKE_SLOTS, carrier, start, wanted, allowed)
        if granted:
            return granted
        left = deadline - time.monotonic()
        if left <= 0:
            return 0
        await asyncio.sleep(min(left, max(0.01, start + length - now)))


async def take_slot(pool: asyncpg.Pool, carrier: str, rate: float) -> bool:
    """Wait for one free slot in the carrier's shared budget; False if none came in time."""
    return await take_slots(pool, carrier, rate, 1) == 1


async def forget_old_windows(pool: asyncpg.Pool) -> None:
    """Windows older than a day tell nothing any more."""
    await pool.execute(
        "DELETE FROM carrier_windows WHERE window_start < extract(epoch FROM now()) - 86400"
    )


class PostgresPacing:
    """:class:`carriers.base.SharedPacing` for one carrier, in the windows of :func:`take_slots`.

    The endpoint ``""`` shares the windows the engine takes for the carrier's calls; another
    endpoint has windows of its own (``aftership:create``).
    """

    def __init__(
        self, pool: asyncpg.Pool, carrier: str, max_wait: float = ADAPTER_WAIT_SECONDS
    ) -> None:
        self._pool = pool
        self._carrier = carrier
        self._max_wait = max_wait

    async def take(self, endpoint: str, rate: float, wanted: int) -> int:
        key = f"{self._carrier}:{endpoint}" if endpoint else self._carrier
        granted = await take_slots(self._pool, key, rate, wanted, max_wait=self._max_wait)
        if not granted:
            raise SharedRateSpent(
                f"no {key} request slot within {self._max_wait:g} s: "
                "other replicas are using the carrier's rate"
            )
        return granted
