"""The order's customer (name and e-mail) reaches its shipments: sync, webhook read, backfill."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest

from tests.harness import SHOP, Stack, start_stack
from tracker.shopify.backfill import PollPolicy, backfill_shop
from tracker.shopify.client import ShopifyClient
from tracker.shopify.sync import ShopRow, apply_orders, ensure_shops, sync_shop

FAST = PollPolicy(first=0.05, factor=1.5, longest=0.3)


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    stack = await start_stack()
    yield stack
    await stack.close()


@pytest.fixture
async def shopify(pool: asyncpg.Pool, stack: Stack) -> AsyncIterator[tuple[ShopifyClient, ShopRow]]:
    config = stack.config("postgresql://unused")
    shop = (await ensure_shops(pool, config.shops))[SHOP]
    async with aiohttp.ClientSession() as http:
        yield ShopifyClient(config.shops[0], http), shop


async def customers(pool: asyncpg.Pool) -> dict[str, tuple[str | None, str | None]]:
    rows = await pool.fetch("SELECT tracking_number, customer_name, customer_email FROM shipments")
    return {r["tracking_number"]: (r["customer_name"], r["customer_email"]) for r in rows}


def add_orders(stack: Stack) -> None:
    stack.store.add_order(email="jane.doe@example.com", fulfillments=[[("DHL", "JJD1", None)]])
    stack.store.add_order(email="orders@example.com", fulfillments=[[("DHL", "JJD2", None)], []])
    stack.store.add_order(fulfillments=[[("DHL", "JJD3", None)]])


EXPECTED = {
    "JJD1": ("Jane Doe", "jane.doe@example.com"),
    # No names known: Shopify's displayName is the e-mail address.
    "JJD2": ("orders@example.com", "orders@example.com"),
    "": ("orders@example.com", "orders@example.com"),  # fulfilled without a number
    "JJD3": (None, None),  # no e-mail, no customer
}


async def test_sync_stores_each_orders_customer(
    pool: asyncpg.Pool, stack: Stack, shopify: tuple[ShopifyClient, ShopRow]
) -> None:
    client, shop = shopify
    add_orders(stack)
    await sync_shop(pool, client, shop, stack.config("postgresql://u").sync, ["dhl"])
    assert await customers(pool) == EXPECTED


async def test_an_order_read_again_brings_the_new_customer(
    pool: asyncpg.Pool, stack: Stack, shopify: tuple[ShopifyClient, ShopRow]
) -> None:
    client, shop = shopify
    order = stack.store.add_order(
        email="jo.ann@example.com", fulfillments=[[("DHL", "JJD9", None)]]
    )
    await sync_shop(pool, client, shop, stack.config("postgresql://u").sync, ["dhl"])
    assert await customers(pool) == {"JJD9": ("Jo Ann", "jo.ann@example.com")}
    order.email = "mary.major@example.com"
    # As a webhook handler does: the order read fresh, applied in a transaction.
    node = (await client.query("OrderForSync", {"id": order.gid}))["order"]
    async with pool.acquire() as conn, conn.transaction():
        await apply_orders(conn, shop.id, [node], ["dhl"])
    assert await customers(pool) == {"JJD9": ("Mary Major", "mary.major@example.com")}


async def test_backfill_stores_each_orders_customer(
    pool: asyncpg.Pool, stack: Stack, shopify: tuple[ShopifyClient, ShopRow]
) -> None:
    client, shop = shopify
    add_orders(stack)
    await backfill_shop(pool, client, shop, ["dhl"], poll=FAST)
    assert await customers(pool) == EXPECTED
