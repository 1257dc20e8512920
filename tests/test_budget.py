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
        settings = {
            "dhl": CarrierSettings.model_validate(
                {
                    "api_key": DHL_KEY,
                    "base_url": stack.dhl_url,
                    "requests_per_day": 2,
                    "requests_per_second": 100,
                }
            )
        }
        async with aiohttp.ClientSession() as http:
            adapters = build_adapters(settings, http)
            report = await poll_due(
                pool, adapters, PollingConfig(), WritebackConfig(), "w", settings
            )
        assert (report.polled, report.over_budget) == (2, 1)
        assert len([r for r in stack.dhl.requests if r.numbers]) == 2
        waiting = await pool.fetchval(
            "SELECT next_poll_at FROM shipments WHERE carrier_state = 'pending'"
        )
        assert waiting == next_budget_day()
    finally:
        await stack.close()
