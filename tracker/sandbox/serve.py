"""``tracker sandbox``: the Shopify store and the carrier sandboxes as real local servers."""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml
from aiohttp import web

from carriers.dhl.sandbox import build_app as build_dhl_app
from carriers.sandbox_base import CarrierWorld
from tracker.config import DEFAULT_API_VERSION
from tracker.sandbox.shopify_app import build_app as build_shopify_app
from tracker.sandbox.shopify_store import ShopifyStore
from tracker.sandbox.world import add_live_order, populate

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
SHOP_DOMAIN = "demo-store.myshopify.com"
NEW_ORDER_EVERY_SECONDS = 20.0


@dataclass
class Sandboxes:
    store: ShopifyStore
    dhl: CarrierWorld
    shopify_url: str
    dhl_url: str
    dhl_key: str
    runners: list[web.AppRunner]

    @property
    def graphql_url(self) -> str:
        return f"{self.shopify_url}/admin/api/{DEFAULT_API_VERSION}/graphql.json"

    async def close(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


async def serve(app: web.Application, port: int) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port)
    await site.start()
    actual = runner.addresses[0][1] if runner.addresses else port
    return runner, f"http://{HOST}:{actual}"


async def start_sandboxes(
    *, orders: int, speed: float, seed: int, shopify_port: int = 0, dhl_port: int = 0
) -> Sandboxes:
    # A Shopify Plus-sized cost bucket, so the demo's backlog drains in seconds, not minutes.
    store = ShopifyStore(
        SHOP_DOMAIN, f"shpat_sandbox_{secrets.token_hex(8)}", bucket_size=2000, restore_rate=1000
    )
    dhl = CarrierWorld(rate_limit_per_second=100.0)
    populate(store, dhl, orders=orders, speed=speed, seed=seed, now=datetime.now(UTC))
    dhl_key = f"dhl-sandbox-{secrets.token_hex(6)}"
    shopify_runner, shopify_url = await serve(build_shopify_app(store), shopify_port)
    dhl_runner, dhl_url = await serve(build_dhl_app(dhl, api_key=dhl_key), dhl_port)
    return Sandboxes(store, dhl, shopify_url, dhl_url, dhl_key, [shopify_runner, dhl_runner])


def daemon_config(sandboxes: Sandboxes, *, speed: float) -> dict[str, object]:
    """A ``tracker run`` configuration pointing at the sandboxes, on their compressed clock."""

    def every(hours: float) -> str:
        return f"{max(3.0, hours / speed):.1f}s"

    return {
        "shops": [
            {
                "domain": SHOP_DOMAIN,
                "access_token": sandboxes.store.access_token,
                "api_version": DEFAULT_API_VERSION,
                "api_url": sandboxes.shopify_url,
            }
        ],
        "carriers": {
            "dhl": {
                "api_key": sandboxes.dhl_key,
                "base_url": sandboxes.dhl_url,
                "requests_per_second": 60,
                "timeout_seconds": 10,
                "max_attempts": 2,
            }
        },
        "sync": {"interval": "5s", "lookback": "30d"},
        "polling": {
            "sweep_interval": "1s",
            "pre_transit_every": every(6),
            "in_transit_every": every(4),
            "out_for_delivery_every": every(1),
            "not_found_every": every(6),
            "error_backoff_max": every(12),
        },
        "writeback": {"drain_interval": "1s"},
    }


def write_daemon_config(path: Path, sandboxes: Sandboxes, *, speed: float) -> None:
    header = (
        "# Written by `tracker sandbox`: points `tracker run --config` at the local sandboxes.\n"
        "# Replace the shop and carrier entries with real credentials to go live.\n"
    )
    body = yaml.safe_dump(daemon_config(sandboxes, speed=speed), sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + body, encoding="utf-8")


async def keep_selling(
    sandboxes: Sandboxes, stop: asyncio.Event, *, speed: float, seed: int
) -> None:
    """Add a freshly fulfilled order now and then, as a live store would."""
    rng = random.Random(seed + 1)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), NEW_ORDER_EVERY_SECONDS)
        except TimeoutError:
            add_live_order(sandboxes.store, sandboxes.dhl, rng, datetime.now(UTC), speed)


async def run_sandboxes(
    stop: asyncio.Event,
    *,
    orders: int,
    speed: float,
    seed: int,
    shopify_port: int,
    dhl_port: int,
    write_config: Path | None,
) -> None:
    sandboxes = await start_sandboxes(
        orders=orders, speed=speed, seed=seed, shopify_port=shopify_port, dhl_port=dhl_port
    )
    try:
        print(
            f"Shopify sandbox: {sandboxes.graphql_url} token={sandboxes.store.access_token}",
            flush=True,
        )
        print(
            f"DHL sandbox: {sandboxes.dhl_url}/track/shipments key={sandboxes.dhl_key}", flush=True
        )
        if write_config is not None:
            write_daemon_config(write_config, sandboxes, speed=speed)
            print(f"Config written: {write_config}", flush=True)
        await keep_selling(sandboxes, stop, speed=speed, seed=seed)
    finally:
        await sandboxes.close()
