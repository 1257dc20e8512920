"""A carrier that keeps failing is left alone for a while; the others go on."""

from __future__ import annotations

import aiohttp

from carriers.base import CarrierSettings
from carriers.registry import build_adapters
from tests.harness import DHL_KEY, SHOP, start_stack
from tracker.config import PollingConfig, WritebackConfig
from tracker.engine.poller import poll_due
from tracker.shopify.sync import ensure_shops
from tracker.web.app import build_app


async def test_circuit_opens_pauses_the_carrier_and_shows_on_the_table(pool):
    stack = await start_stack()
    try:
        config = stack.config("postgresql://unused")
        shop = (await ensure_shops(pool, config.shops))[SHOP]
        for n in range(4):
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
                f"SB500{n}",
            )
        settings = {
            "dhl": CarrierSettings.model_validate(
                {
                    "api_key": DHL_KEY,
                    "base_url": stack.dhl_url,
                    "requests_per_second": 100,
                    "max_attempts": 1,
                }
            )
        }
        polling = PollingConfig.model_validate({"circuit_failures": 3, "batch_size": 4})
        async with aiohttp.ClientSession() as http:
            adapters = build_adapters(settings, http)
            first = await poll_due(pool, adapters, polling, WritebackConfig(), "w", settings)
            assert first.failed_batches == 4
            await pool.execute("UPDATE shipments SET next_poll_at = now()")
            second = await poll_due(pool, adapters, polling, WritebackConfig(), "w", settings)
        assert second.claimed == 0  # circuit open: nothing claimed for DHL
        assert len([r for r in stack.dhl.requests if r.numbers]) == 4
        from aiohttp.test_utils import TestClient, TestServer

        async with TestClient(TestServer(build_app(pool, stack.config("postgresql://u")))) as web:
            page = await (await web.get("/")).text()
        assert "<strong>dhl</strong> keeps failing" in page
        assert "other carriers go on" in page
    finally:
        await stack.close()
