"""``tracker sandbox``: the Shopify store and every carrier's sandbox as real local servers."""

from __future__ import annotations

import asyncio
import importlib
import logging
import random
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import yaml
from aiohttp import web

from carriers.registry import BUILTIN
from carriers.sandbox_base import CarrierWorld
from tracker.config import DEFAULT_API_VERSION
from tracker.sandbox.shopify_app import build_app as build_shopify_app
from tracker.sandbox.shopify_store import ShopifyStore
from tracker.sandbox.world import NumberBook, add_live_order, populate
from tracker.shopify.subscriptions import callback_url

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
SHOP_DOMAIN = "demo-store.myshopify.com"
NEW_ORDER_EVERY_SECONDS = 20.0
DAEMON_PORT = 8080


@dataclass
class CarrierSandbox:
    code: str
    module: ModuleType
    world: CarrierWorld
    url: str = ""


@dataclass
class Sandboxes:
    store: ShopifyStore
    shopify_url: str
    carriers: dict[str, CarrierSandbox]
    numbers: NumberBook
    runners: list[web.AppRunner] = field(default_factory=list)

    @property
    def graphql_url(self) -> str:
        return f"{self.shopify_url}/admin/api/{DEFAULT_API_VERSION}/graphql.json"

    @property
    def worlds(self) -> dict[str, CarrierWorld]:
        return {code: box.world for code, box in self.carriers.items()}

    async def close(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


async def serve(app: web.Application, port: int) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on 127.0.0.1 (``port`` 0: any free one); return the runner and base URL."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port)
    await site.start()
    actual = runner.addresses[0][1] if runner.addresses else port
    return runner, f"http://{HOST}:{actual}"


def carrier_sandboxes() -> dict[str, CarrierSandbox]:
    """Every built-in carrier, with a fresh world for its sandbox."""
    boxes = {}
    for code in sorted(BUILTIN):
        module = importlib.import_module(f"carriers.{code}.sandbox")
        boxes[code] = CarrierSandbox(code, module, CarrierWorld(rate_limit_per_second=100.0))
    return boxes


async def start_sandboxes(
    *, orders: int, speed: float, seed: int, shopify_port: int = 0
) -> Sandboxes:
    # A Shopify Plus-sized cost bucket, so the demo's backlog drains in seconds, not minutes.
    store = ShopifyStore(
        SHOP_DOMAIN, f"shpat_sandbox_{secrets.token_hex(8)}", bucket_size=2000, restore_rate=1000
    )
    boxes = carrier_sandboxes()
    numbers = NumberBook({code: box.module.sample_number for code, box in boxes.items()})
    sandboxes = Sandboxes(store, "", boxes, numbers)
    populate(
        store,
        sandboxes.worlds,
        numbers,
        orders=orders,
        speed=speed,
        seed=seed,
        now=datetime.now(UTC),
    )
    runner, sandboxes.shopify_url = await serve(build_shopify_app(store), shopify_port)
    sandboxes.runners.append(runner)
    for box in boxes.values():
        runner, box.url = await serve(box.module.sandbox_app(box.world), 0)
        sandboxes.runners.append(runner)
    return sandboxes


def daemon_config(sandboxes: Sandboxes, *, speed: float) -> dict[str, object]:
    """A ``tracker run`` configuration pointing at the sandboxes, on their compressed clock."""

    def seconds(hours: float) -> float:
        return max(3.0, round(hours / speed, 1))

    def every(hours: float) -> str:
        return f"{seconds(hours):.1f}s"

    return {
        "shops": [
            {
                "domain": SHOP_DOMAIN,
                "access_token": sandboxes.store.access_token,
                "client_secret": sandboxes.store.client_secret,
                "api_version": DEFAULT_API_VERSION,
                "api_url": sandboxes.shopify_url,
            }
        ],
        # The daemon registers <public_url>/webhooks/shopify with the store when it starts.
        "web": {"port": DAEMON_PORT, "public_url": daemon_public_url()},
        "carriers": {
            code: {
                **box.module.SANDBOX_SETTINGS,
                "base_url": box.url,
                "requests_per_second": 60,
                "requests_per_day": 10_000_000,  # sandboxes have no daily quota
                "timeout_seconds": 10,
                "max_attempts": 2,
            }
            for code, box in sandboxes.carriers.items()
        },
        "sync": {"interval": "5s", "lookback": "30d"},
        "polling": {
            "sweep_interval": "1s",
            "pre_transit_every": every(6),
            "in_transit_every": every(4),
            "out_for_delivery_every": every(1),
            "not_found_every": every(6),
            "error_backoff_max": every(12),
            # A parcel's life ends on the same clock: the confirming poll a day after delivery,
            # the stop after 30 days without a scan (flagged expired), and after 3 days of
            # "not found" (flagged not found, below).
            "final_confirm_after": every(24),
            "expire_after": every(30 * 24),
            "not_found_give_up_after": every(3 * 24),
        },
        "writeback": {"drain_interval": "1s"},
        "attention": {"interval": "5s", "not_found_days": seconds(3 * 24) / 86_400},
    }


def daemon_public_url(port: int = DAEMON_PORT) -> str:
    """Where the written configuration's daemon listens, and the store sends webhooks."""
    return f"http://{HOST}:{port}"


def webhooks_line(url: str, secret: str) -> str:
    """The line ``tracker sandbox`` and ``tracker demo`` print about webhooks."""
    return f"Webhooks: {callback_url(url)} secret={secret}"


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
            add_live_order(
                sandboxes.store, sandboxes.worlds, sandboxes.numbers, rng, datetime.now(UTC), speed
            )


async def run_sandboxes(
    stop: asyncio.Event,
    *,
    orders: int,
    speed: float,
    seed: int,
    shopify_port: int,
    write_config: Path | None,
) -> None:
    sandboxes = await start_sandboxes(
        orders=orders, speed=speed, seed=seed, shopify_port=shopify_port
    )
    try:
        print(
            f"Shopify sandbox: {sandboxes.graphql_url} token={sandboxes.store.access_token}",
            flush=True,
        )
        for code, box in sandboxes.carriers.items():
            print(f"Carrier sandbox {code}: {box.url}", flush=True)
        print(webhooks_line(daemon_public_url(), sandboxes.store.client_secret), flush=True)
        if write_config is not None:
            write_daemon_config(write_config, sandboxes, speed=speed)
            print(f"Config written: {write_config}", flush=True)
        await keep_selling(sandboxes, stop, speed=speed, seed=seed)
    finally:
        await sandboxes.close()
