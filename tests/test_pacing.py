"""Per-second carrier pacing shared by every worker through PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from tracker.engine.pacing import take_slot, window_of


@pytest.mark.parametrize(
    ("rate", "window"),
    [(10, (1, 10)), (1, (1, 1)), (2.5, (1, 2)), (60 / 3600, (60, 1)), (0.4, (3, 1))],
)
def test_windows(rate, window):
    assert window_of(rate) == window


async def test_no_window_ever_holds_more_than_the_rate(pool):
    # Twelve requests from "several workers" at once against 5 per second.
    assert all(await asyncio.gather(*(take_slot(pool, "dhl", 5) for _ in range(12))))
    rows = await pool.fetch(
        "SELECT window_start, used FROM carrier_windows WHERE carrier = 'dhl' ORDER BY 1"
    )
    assert sum(r["used"] for r in rows) == 12
    assert max(r["used"] for r in rows) <= 5
    assert len(rows) >= 3  # they had to wait for later windows


async def test_carriers_do_not_share_a_window(pool):
    assert await take_slot(pool, "dhl", 1)
    assert await take_slot(pool, "ups", 1)
    assert await pool.fetchval("SELECT count(*) FROM carrier_windows") == 2
