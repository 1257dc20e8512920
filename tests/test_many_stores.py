"""Several stores in one daemon: one store's failure never holds the others."""

from __future__ import annotations

import aiohttp

from carriers.sandbox_base import Kind
from tests.harness import eventually, start_stack, timeline
from tracker.config import ShopConfig
from tracker.engine.daemon import Daemon
from tracker.sandbox.serve import serve
from tracker.sandbox.shopify_app import build_app
from tracker.sandbox.shopify_store import ShopifyStore


async def test_a_revoked_token_stops_only_its_own_store(pool, database_url):
    stack = await start_stack()
    other = ShopifyStore("second-store.myshopify.com", "shpat_second")
    runner, other_url = await serve(build_app(other), 0)
    try:
        good, blocked = "JJD000000000000000201", "JJD000000000000000202"
        kinds = [Kind.LABEL, Kind.TRANSIT, Kind.DELIVERED]
        stack.dhl.register([timeline(good, kinds), timeline(blocked, kinds)])
        order = stack.store.add_order(fulfillments=[[("DHL", good, None)]])
        other.add_order(fulfillments=[[("DHL", blocked, None)]])
        other.access_token = "shpat_revoked_by_the_merchant"  # the daemon's token no longer works

        config = stack.config(database_url)
        second = ShopConfig(domain=other.domain, access_token="shpat_second", api_url=other_url)
        config = config.model_copy(update={"shops": [config.shops[0], second]})
        daemon = Daemon(config, pool)
        await daemon.start()
        try:

            async def first_store_done() -> bool:
                return len(stack.store.events(order.fulfillments[0].id)) == 3

            await eventually(first_store_done, what="the healthy store written")

            async def error_recorded() -> bool:
                error = await pool.fetchval(
                    "SELECT last_sync_error FROM shops WHERE domain = $1", other.domain
                )
                return error is not None

            await eventually(error_recorded, what="the revoked store's error recorded")
            async with aiohttp.ClientSession() as http, http.get(daemon.url) as page:
                html = await page.text()
        finally:
            await daemon.stop()
        assert "second-store.myshopify.com</strong>: second-store.myshopify.com: HTTP 401" in html
        assert other.all_events() == []
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM shipments s JOIN shops p ON p.id = s.shop_id"
                " WHERE p.domain = $1",
                other.domain,
            )
            == 0
        )
    finally:
        await runner.cleanup()
        await stack.close()
