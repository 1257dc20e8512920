"""The sandboxes as real HTTP servers on 127.0.0.1, and configurations that point at them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from carriers.dhl.sandbox import build_app as build_dhl_app
from carriers.sandbox_base import CarrierWorld, Kind, Scan, Timeline
from tracker.config import Config
from tracker.sandbox.serve import serve
from tracker.sandbox.shopify_app import build_app as build_shopify_app
from tracker.sandbox.shopify_store import ShopifyStore

SHOP = "test-store.myshopify.com"
TOKEN = "shpat_test_token"
DHL_KEY = "dhl-test-key"

PARCEL = [Kind.LABEL, Kind.PICKUP, Kind.TRANSIT, Kind.OUT_FOR_DELIVERY, Kind.DELIVERED]
"""A parcel's whole journey, scan by scan."""
SHOPIFY_STATUS = {
    Kind.LABEL: "LABEL_PURCHASED",
    Kind.PICKUP: "CARRIER_PICKED_UP",
    Kind.TRANSIT: "IN_TRANSIT",
    Kind.OUT_FOR_DELIVERY: "OUT_FOR_DELIVERY",
    Kind.DELIVERED: "DELIVERED",
}
"""The fulfillment event status DHL's sandbox scans of each kind become on Shopify."""


@dataclass
class Stack:
    store: ShopifyStore
    dhl: CarrierWorld
    shopify_url: str
    dhl_url: str
    runners: list[web.AppRunner]

    async def close(self) -> None:
        for runner in self.runners:
            await runner.cleanup()

    def config(self, database_url: str, **sections: dict[str, Any]) -> Config:
        """A daemon configuration on this stack with fast timers; ``sections`` override."""
        data: dict[str, Any] = {
            "database": {"url": database_url, "pool_min_size": 1, "pool_max_size": 6},
            "shops": [
                {
                    "domain": SHOP,
                    "access_token": TOKEN,
                    "api_url": self.shopify_url,
                    "api_version": "2026-10",
                }
            ],
            "carriers": {
                "dhl": {
                    "api_key": DHL_KEY,
                    "base_url": self.dhl_url,
                    "requests_per_second": 200,
                    "requests_per_day": 100_000,
                    "timeout_seconds": 5,
                    "max_attempts": 2,
                }
            },
            "web": {"host": "127.0.0.1", "port": 0},
            "sync": {"interval": "0.3s"},
            "polling": {"sweep_interval": "0.2s", "in_transit_every": "1h"},
            "writeback": {"drain_interval": "0.2s", "lease": "1s"},
        }
        for key, value in sections.items():
            data[key] = {**data.get(key, {}), **value}
        return Config.model_validate(data)


async def start_stack(*, bucket_size: float = 1000, restore_rate: float = 50) -> Stack:
    store = ShopifyStore(SHOP, TOKEN, bucket_size=bucket_size, restore_rate=restore_rate)
    dhl = CarrierWorld(rate_limit_per_second=1000)
    shopify_runner, shopify_url = await serve(build_shopify_app(store), 0)
    dhl_runner, dhl_url = await serve(build_dhl_app(dhl, api_key=DHL_KEY), 0)
    return Stack(store, dhl, shopify_url, dhl_url, [shopify_runner, dhl_runner])


def timeline(
    number: str,
    kinds: list[Kind],
    *,
    start: datetime | None = None,
    step_hours: float = 5.0,
    city: str = "Leipzig",
) -> Timeline:
    """A parcel whose scans are ``step_hours`` apart, starting ``start`` (default 2 days ago)."""
    begin = start or datetime.now(UTC) - timedelta(days=2)
    scans = [
        Scan(
            kind=kind,
            after_hours=i * step_hours,
            city=f"{city}{i}",
            postal_code="04109",
            country="DE",
        )
        for i, kind in enumerate(kinds)
    ]
    return Timeline(
        tracking_number=number, start=begin, scans=scans, eta_hours=len(kinds) * step_hours + 12
    )


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 30.0, what: str = "condition"
) -> None:
    """Wait until ``check()`` holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
