"""Per-second carrier pacing shared by every worker through PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from tracker.engine.pacing import take_slot, take_slots, window_of


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


async def test_slots_for_many_requests_are_granted_as_far_as_the_window_allows(pool):
    # Three workers each want 4 requests' slots at once; 5 a second are allowed.
    grants = await asyncio.gather(*(take_slots(pool, "fedex", 5, 4) for _ in range(3)))
    assert all(1 <= g <= 4 for g in grants)
    rows = await pool.fetch("SELECT used FROM carrier_windows WHERE carrier = 'fedex'")
    assert sum(r["used"] for r in rows) == sum(grants)
    assert max(r["used"] for r in rows) <= 5
    assert await take_slots(pool, "fedex", 5, 0) == 0


async def test_no_slot_within_the_wait_gives_zero(pool):
    assert await take_slots(pool, "usps", 1 / 3600, 1) == 1  # the hour's only request
    assert await take_slots(pool, "usps", 1 / 3600, 1, max_wait=0.05) == 0


async def test_a_full_window_grants_nothing_and_counts_nothing_more(pool):
    hourly = 2 / 3600  # two requests an hour: one window of 1,800 seconds allows one
    assert await take_slots(pool, "postnord", hourly, 3) == 1
    assert await take_slots(pool, "postnord", hourly, 2, max_wait=0) == 0
    rows = await pool.fetch("SELECT used FROM carrier_windows WHERE carrier = 'postnord'")
    assert [r["used"] for r in rows] == [1]
