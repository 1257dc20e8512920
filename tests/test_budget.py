"""Daily carrier budgets, shared by every worker through PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aiohttp

from carriers.base import CarrierSettings
from carriers.registry import build_adapters
from carriers.sandbox_base import Kind
from tests.harness import DHL_KEY, SHOP, start_stack, timeline
from tracker.config import PollingConfig, WritebackConfig
from tracker.engine.budget import next_budget_day, reserve, reserve_up_to
from tracker.engine.poller import poll_due
from tracker.shopify.sync import ensure_shops


def dhl_settings(url: str, per_day: int) -> dict[str, CarrierSettings]:
    """DHL at the sandbox ``url`` with a daily quota of ``per_day`` and no per-second limit."""
    return {
        "dhl": CarrierSettings.model_validate(
            {
                "api_key": DHL_KEY,
                "base_url": url,
                "requests_per_day": per_day,
                "requests_per_second": 100,
            }
        )
    }


async def test_reservations_never_pass_the_quota_even_concurrently(pool):
    results = await asyncio.gather(*(reserve(pool, "dhl", 1, 25) for _ in range(40)))
    assert results.count(True) == 25
    assert await pool.fetchval("SELECT used FROM carrier_budgets WHERE carrier = 'dhl'") == 25
    assert await reserve(pool, "fedex", 1, 25)  # each carrier has its own
    assert await reserve(pool, "dhl", 1, None)  # no quota: always


async def test_partial_reservations_take_what_is_left_and_never_more(pool):
    grants = await asyncio.gather(*(reserve_up_to(pool, "ups", 7, 30) for _ in range(6)))
    assert sum(grants) == 30
    # Whoever came first got all 7; one got the 2 left; the rest nothing.
    assert sorted(grants) == [0, 2, 7, 7, 7, 7]
    assert await pool.fetchval("SELECT used FROM carrier_budgets WHERE carrier = 'ups'") == 30
    assert await reserve_up_to(pool, "ups", 5, 30) == 0
    assert await reserve_up_to(pool, "usps", 5, None) == 5  # no quota: all of it
    assert not await reserve(pool, "usps", 31, 30)  # all or nothing


async def test_a_quota_lowered_below_what_was_used_grants_nothing_and_takes_nothing(pool):
    assert await reserve_up_to(pool, "dhl", 10, 30) == 10
    # Another replica runs with a smaller quota now (or the configuration changed).
    assert await reserve_up_to(pool, "dhl", 3, 5) == 0
    assert not await reserve(pool, "dhl", 1, 5)
    assert not await reserve(pool, "dhl", 0, 5)
    assert await pool.fetchval("SELECT used FROM carrier_budgets WHERE carrier = 'dhl'") == 10
    assert await reserve(pool, "dhl", 0, 30)
    assert await reserve(pool, "dhl", 20, 30)
    assert not await reserve(pool, "dhl", 1, 30)
    assert await pool.fetchval("SELECT used FROM carrier_budgets WHERE carrier = 'dhl'") == 30


def test_budgets_renew_at_midnight_utc():
    assert next_budget_day(datetime(2026, 11, 27, 23, 59, tzinfo=UTC)) == datetime(
        2026, 11, 28, tzinfo=UTC
    )


async def test_shipments_over_the_budget_wait_for_the_next_day(pool):
    stack = await start_stack()
    try:
        config = stack.config("postgresql://unused")
        shop = (await ensure_shops(pool, config.shops))[SHOP]
        for n in range(3):
            number = f"JJD00000000000000030{n}"
            stack.dhl.register([timeline(number, [Kind.LABEL])])
            await pool.execute(
                """
                INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id,
                                       tracking_number, carrier)
                VALUES ($1, $2, $3, $4, $5, 'dhl')
                """,
                shop.id,
                f"gid://shopify/Order/{n}",
                f"#{n}",
                f"gid://shopify/Fulfillment/{n}",
                number,
            )
        settings = dhl_settings(stack.dhl_url, 2)
        due_before = await pool.fetchval("SELECT max(next_poll_at) FROM shipments")
        async with aiohttp.ClientSession() as http:
            adapters = build_adapters(settings, http)
            report = await poll_due(
                pool, adapters, PollingConfig(), WritebackConfig(), "w", settings
            )
            assert (report.polled, report.over_budget) == (2, 1)
            assert len([r for r in stack.dhl.requests if r.numbers]) == 2
            # The third stays due as it was, in its place in the order, held from every
            # replica's claims until the budget renews.
            waiting = await pool.fetchrow(
                "SELECT next_poll_at, lease_owner, lease_until FROM shipments"
                " WHERE carrier_state = 'pending'"
            )
            assert waiting["next_poll_at"] <= due_before
            assert (waiting["lease_owner"], waiting["lease_until"]) == (None, next_budget_day())
            again = await poll_due(
                pool, adapters, PollingConfig(), WritebackConfig(), "other", settings
            )
            assert (again.claimed, again.over_budget) == (0, 0)
        assert len([r for r in stack.dhl.requests if r.numbers]) == 2
    finally:
        await stack.close()


async def test_over_budget_the_urgent_go_first_then_the_longest_since_their_last_poll(pool):
    """Issue 5: when a carrier's budget cannot cover everything that is due, out for delivery
    and ETA today go first, then the longest since the last poll, whatever else the parcel is
    doing. A label waiting for pickup and a delivered parcel waiting for its confirming poll
    are not put behind every parcel in transit: under a quota that never covers the volume
    (USPS's or DHL's defaults), they would never be polled at all."""
    stack = await start_stack()
    far = 400.0  # hours: no ETA today, so only out for delivery is urgent
    parcels = {
        "label": [Kind.LABEL],
        "moving": [Kind.LABEL, Kind.PICKUP, Kind.TRANSIT],
        "delivered": [Kind.LABEL, Kind.PICKUP, Kind.TRANSIT, Kind.DELIVERED],
        "out": [Kind.LABEL, Kind.PICKUP, Kind.TRANSIT, Kind.OUT_FOR_DELIVERY],
    }
    # How long ago each was last polled; due again after its interval (6 h pre-transit, 24 h to
    # confirm a delivery, 4 h in transit, 1 h out for delivery), so every one is due now.
    polled_hours_ago = {"label": 30, "delivered": 26, "moving": 5, "out": 2}
    interval_hours = {"label": 6, "delivered": 24, "moving": 4, "out": 1}
    try:
        config = stack.config("postgresql://unused")
        shop = (await ensure_shops(pool, config.shops))[SHOP]
        ids = {}
        for n, (name, kinds) in enumerate(parcels.items()):
            number = f"JJD00000000000000040{n}"
            stack.dhl.register(
                [timeline(number, kinds, step_hours=2).model_copy(update={"eta_hours": far})]
            )
            ids[name] = await pool.fetchval(
                """
                INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id,
                                       tracking_number, carrier)
                VALUES ($1, $2, $3, $4, $5, 'dhl') RETURNING id
                """,
                shop.id,
                f"gid://shopify/Order/4{n}",
                f"#4{n}",
                f"gid://shopify/Fulfillment/4{n}",
                number,
            )

        async with aiohttp.ClientSession() as http:
            first = dhl_settings(stack.dhl_url, 100)
            report = await poll_due(
                pool, build_adapters(first, http), PollingConfig(), WritebackConfig(), "w", first
            )
            assert report.polled == 4
            for name, hours in polled_hours_ago.items():
                await pool.execute(
                    """
                    UPDATE shipments SET last_polled_at = now() - make_interval(hours => $2),
                        next_poll_at = now() - make_interval(hours => $2 - $3)
                    WHERE id = $1
                    """,
                    ids[name],
                    hours,
                    interval_hours[name],
                )
            used = await pool.fetchval("SELECT used FROM carrier_budgets WHERE carrier = 'dhl'")
            tight = dhl_settings(
                stack.dhl_url, used + 3
            )  # three requests left today for four due parcels
            stack.dhl.requests.clear()
            report = await poll_due(
                pool, build_adapters(tight, http), PollingConfig(), WritebackConfig(), "w", tight
            )
        assert (report.polled, report.over_budget) == (3, 1)
        waiting = await pool.fetchval(
            "SELECT id FROM shipments WHERE last_polled_at < now() - interval '1 hour'"
        )
        assert waiting == ids["moving"]  # polled 5 h ago: the others waited longer or are urgent
    finally:
        await stack.close()


async def test_shipments_put_off_for_the_budget_keep_their_order_into_the_next_day(pool):
    """Issue 5: under a budget that cannot cover what is due, the longest overdue goes first,
    day after day. Shipments the budget could not cover are given back as they were: when it
    renews, the one that has waited three days is asked before the one due for an hour (they
    were all put off to the same moment before, and the order between them was lost)."""
    stack = await start_stack()
    try:
        shop = (await ensure_shops(pool, stack.config("postgresql://unused").shops))[SHOP]
        overdue = {"starved": 72, "recent": 1}  # hours
        for n, (name, hours) in enumerate(overdue.items()):
            number = f"JJD00000000000000050{n}"
            stack.dhl.register([timeline(number, [Kind.LABEL])])
            await pool.execute(
                """
                INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id,
                                       tracking_number, carrier, next_poll_at)
                VALUES ($1, $2, $3, $4, $5, 'dhl', now() - make_interval(hours => $6))
                """,
                shop.id,
                f"gid://shopify/Order/5{n}",
                name,
                f"gid://shopify/Fulfillment/5{n}",
                number,
                hours,
            )

        async def poll(per_day: int) -> None:
            async with aiohttp.ClientSession() as http:
                chosen = dhl_settings(stack.dhl_url, per_day)
                adapters = build_adapters(chosen, http)
                await poll_due(pool, adapters, PollingConfig(), WritebackConfig(), "w", chosen)

        await reserve_up_to(pool, "dhl", 5, 5)
        await poll(5)  # today's budget is spent: both are put off
        assert [r for r in stack.dhl.requests if r.numbers] == []
        # The next day: the day's budget is new, the holds have run out.
        await pool.execute("DELETE FROM carrier_budgets")
        await pool.execute(
            "UPDATE shipments SET lease_until = now() - interval '1 second'"
            " WHERE lease_until > now()"
        )
        await poll(1)
        asked = [r.numbers for r in stack.dhl.requests if r.numbers]
        polled = await pool.fetch(
            "SELECT order_name FROM shipments WHERE last_polled_at IS NOT NULL"
        )
        assert (asked, [r["order_name"] for r in polled]) == (
            [("JJD000000000000000500",)],
            ["starved"],
        )
    finally:
        await stack.close()
