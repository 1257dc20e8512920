"""Bulk backfill against the Shopify sandbox: every order once, every way a bulk operation ends.

Real PostgreSQL, the sandbox over real HTTP; the sandbox's bulk faults make operations fail,
expire, stop half-way or stay RUNNING until a test lets them go. The command-line tests are in
``test_backfill_cli.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import pytest

from tests.harness import SHOP, Stack, eventually, start_stack
from tracker.config import Config
from tracker.sandbox.shopify_store import ShopifyStore
from tracker.shopify.backfill import (
    READ_ALL_ORDERS_NOTICE,
    BackfillReport,
    OperationInProgress,
    Outcome,
    PollPolicy,
    backfill_shop,
    bulk_operation_finished,
    process_operation,
)
from tracker.shopify.bulk_operations import fetch_status, start_operation
from tracker.shopify.client import ShopifyClient, load_document
from tracker.shopify.sync import ShopRow, ensure_shops, sync_shop

FAST = PollPolicy(first=0.05, factor=1.5, longest=0.3)
UPS_NUMBER = "1Z999AA10123456784"
Expected = dict[str, set[tuple[str, str, str]]]


def populate(store: ShopifyStore, count: int, *, days_ago: float = 40) -> Expected:
    """``count`` orders of every kind, created long ago; the shipments each must end with.

    Expected shipments are ``(tracking number, carrier, carrier state)`` per order name, with
    DHL enabled: unfulfilled, cancelled and number-less orders and cancelled fulfillments end
    with none, a UPS parcel is known but has no adapter.
    """
    start = datetime.now(UTC) - timedelta(days=days_ago)
    expected: Expected = {}
    clock = store.now
    for i in range(count):
        name, created = f"#{100001 + i}", start + timedelta(seconds=30 * i)
        store.now = lambda created=created: created  # cancellations happen back then too
        dhl = ("DHL Express", f"JJD{i:010d}")
        kind = i % 10
        want = {(dhl[1], "dhl", "pending")}
        if kind == 0:
            store.add_order(name, created_at=created)
            want = set()
        elif kind == 1:
            second = ("DHL Express", f"JJD{i:010d}B")
            store.add_order(name, fulfillments=[[dhl, second]], created_at=created)
            want.add((second[1], "dhl", "pending"))
        elif kind == 2:
            order = store.add_order(
                name, fulfillments=[[dhl], [("DHL", "JJX1")]], created_at=created
            )
            store.cancel_fulfillment(order.fulfillments[1].id)
        elif kind == 3:
            store.cancel_order(store.add_order(name, fulfillments=[[dhl]], created_at=created).id)
            want = set()
        elif kind == 4:  # fulfilled without a number: listed as untracked, never polled
            store.add_order(name, fulfillments=[[]], created_at=created)
            want = {("", None, "untracked")}
        elif kind == 5:
            store.add_order(name, fulfillments=[[("UPS", UPS_NUMBER)]], created_at=created)
            want = {(UPS_NUMBER, "ups", "no_adapter")}
        else:
            store.add_order(name, fulfillments=[[dhl]], created_at=created)
        expected[name] = want
    store.now = clock
    return expected


@dataclass
class Env:
    stack: Stack
    config: Config
    shop: ShopRow
    client: ShopifyClient
    pool: asyncpg.Pool

    @property
    def store(self) -> ShopifyStore:
        return self.stack.store

    async def backfill(self) -> BackfillReport:
        return await backfill_shop(self.pool, self.client, self.shop, ["dhl"], poll=FAST)

    async def shipments(self, order_name: str | None = None) -> set[tuple[str, str, str]]:
        rows = await self.pool.fetch(
            "SELECT tracking_number, carrier, carrier_state FROM shipments"
            " WHERE retired_reason IS NULL AND ($1::text IS NULL OR order_name = $1)",
            order_name,
        )
        return {(r["tracking_number"], r["carrier"], r["carrier_state"]) for r in rows}

    async def count(self, *, active: bool | None = None) -> int:
        return int(
            await self.pool.fetchval(
                "SELECT count(*) FROM shipments WHERE $1::boolean IS NULL OR active = $1", active
            )
        )

    async def cursor(self) -> datetime | None:
        value: datetime | None = await self.pool.fetchval(
            "SELECT sync_cursor FROM shops WHERE id = $1", self.shop.id
        )
        return value

    async def operation_rows(self) -> list[tuple[str, str]]:
        rows = await self.pool.fetch("SELECT operation_id, state FROM bulk_operations")
        return [(r["operation_id"], r["state"]) for r in rows]


@pytest.fixture
async def env(pool):
    stack = await start_stack(bucket_size=2000, restore_rate=1000)
    config = stack.config("postgresql://unused")
    shop = (await ensure_shops(pool, config.shops))[SHOP]
    try:
        async with aiohttp.ClientSession() as http:
            yield Env(stack, config, shop, ShopifyClient(config.shops[0], http), pool)
    finally:
        await stack.close()


async def test_backfill_of_20000_orders_creates_exactly_their_shipments(env: Env) -> None:
    expected = populate(env.store, 20_000)
    began = time.perf_counter()
    report = await env.backfill()
    logging.getLogger(__name__).info(
        "20,000 orders backfilled in %.1f s", time.perf_counter() - began
    )

    assert report.outcome is Outcome.COMPLETED, report.summary()
    assert (report.orders, report.objects) == (20_000, 20_000)
    total = sum(len(parcels) for parcels in expected.values())
    assert report.parcels == total
    untracked = sum(1 for want in expected.values() for p in want if p[2] == "untracked")
    assert await env.count() == total
    assert await env.count(active=True) == total - untracked
    for name in random.Random(4).sample(sorted(expected), 60):
        assert await env.shipments(name) == expected[name], name
    operation = env.store.bulk.current()
    assert operation is not None
    assert await env.cursor() == operation.created_at
    assert await env.operation_rows() == [(operation.gid, "completed")]
    assert report.notice is None


async def test_incremental_sync_after_a_backfill_reads_only_later_changes(env: Env) -> None:
    expected = populate(env.store, 40, days_ago=10)
    assert (await env.backfill()).ok
    changed = env.store.orders()[6]
    env.store.add_fulfillment(changed.id, [("DHL Express", "JJDLATER1")])
    env.store.update_tracking(env.store.orders()[7].fulfillments[0].id, [("DHL", "JJDLATER2")])
    env.store.add_order("#NEW", fulfillments=[[("DHL", "JJDLATER3")]])

    report = await sync_shop(env.pool, env.client, env.shop, env.config.sync, ["dhl"])

    assert report is not None
    assert report.orders == 3
    assert ("JJDLATER1", "dhl", "pending") in await env.shipments(changed.name)
    assert await env.shipments(env.store.orders()[7].name) == {("JJDLATER2", "dhl", "pending")}
    assert await env.shipments("#NEW") == {("JJDLATER3", "dhl", "pending")}
    assert await env.shipments("#100010") == expected["#100010"]


async def test_another_apps_bulk_query_in_progress_stops_the_backfill(env: Env) -> None:
    populate(env.store, 5)
    env.store.set_faults(bulk_slow_seconds=60)
    theirs = env.store.bulk.run_query("{ orders { edges { node { id } } } }", "2026-10")

    with pytest.raises(OperationInProgress) as raised:
        await env.backfill()

    message = str(raised.value)
    assert theirs.gid in message
    assert "not the backfill's" in message
    assert "tracker sync --full" in message
    assert list(env.store.bulk.operations) == [theirs.id]
    assert await env.operation_rows() == []
    env.store.bulk.release_slow()


async def test_a_running_operation_with_our_query_is_waited_for(env: Env) -> None:
    expected = populate(env.store, 30)
    env.store.set_faults(bulk_slow_seconds=60)
    # Started by a run whose answer was lost: Shopify has it, bulk_operations does not.
    ours = env.store.bulk.run_query(load_document("BulkFulfilledOrders"), "2026-10")
    running = asyncio.create_task(env.backfill())
    await eventually(lambda: _asked(env.store, "BulkOperation"), what="a status poll")
    env.store.bulk.release_slow()
    report = await running

    assert report.outcome is Outcome.COMPLETED
    assert report.operation == ours.gid
    assert list(env.store.bulk.operations) == [ours.id]
    assert await env.count() == sum(len(p) for p in expected.values())


async def _asked(store: ShopifyStore, operation: str) -> bool:
    return store.stats.by_operation[operation] > 0


async def test_a_failed_operation_changes_nothing_and_a_new_run_starts_afresh(env: Env) -> None:
    expected = populate(env.store, 30)
    env.store.set_faults(bulk_fail_next=1)

    failed = await env.backfill()

    assert failed.outcome is Outcome.FAILED
    assert failed.error_code == "INTERNAL_SERVER_ERROR"
    assert "INTERNAL_SERVER_ERROR" in failed.summary()
    assert await env.count() == 0
    assert await env.cursor() is None
    again = await env.backfill()
    assert again.outcome is Outcome.COMPLETED
    assert again.operation != failed.operation
    assert await env.count() == sum(len(p) for p in expected.values())


async def test_a_store_that_refuses_customer_data_is_backfilled_without_it(env: Env) -> None:
    """An app not approved for protected customer data: Shopify fails the bulk query
    ACCESS_DENIED for the order's e-mail and customer. The backfill asks again without them,
    as the incremental sync reads such a store, and every parcel comes in."""
    expected = populate(env.store, 30)
    env.store.protected_customer_data = False

    report = await env.backfill()

    assert report.outcome is Outcome.COMPLETED, report.summary()
    assert env.client.customer_data is False
    assert await env.count() == sum(len(p) for p in expected.values())
    assert await env.pool.fetchval(
        "SELECT count(*) FROM shipments WHERE customer_name IS NOT NULL"
        " OR customer_email IS NOT NULL"
    ) == 0  # fmt: skip
    states = sorted(state for _, state in await env.operation_rows())
    assert states == ["completed", "failed"]
    refused = [op for op in env.store.bulk.operations.values() if op.error_code == "ACCESS_DENIED"]
    assert len(refused) == 1


async def test_an_expired_result_is_reported_and_changes_nothing(env: Env) -> None:
    populate(env.store, 30)
    env.store.set_faults(bulk_expire_next=1)
    report = await env.backfill()
    assert report.outcome is Outcome.EXPIRED
    assert "expired" in report.summary()
    assert await env.count() == 0
    assert await env.cursor() is None

    # A URL that stops working while it is read counts as expired too.
    completed = await env.backfill()
    status = await fetch_status(env.client, completed.operation)
    assert status.url is not None
    refused = dataclasses.replace(status, gid="gid://shopify/BulkOperation/1", url=status.url + "x")
    late = await process_operation(env.pool, env.shop, refused, enabled_carriers=["dhl"])
    assert late.outcome is Outcome.EXPIRED


async def test_partial_data_is_applied_but_the_cursor_stays(env: Env) -> None:
    expected = populate(env.store, 40)
    env.store.set_faults(bulk_partial_next=1)

    report = await env.backfill()

    assert report.outcome is Outcome.PARTIAL
    assert (report.status, report.error_code) == ("FAILED", "TIMEOUT")
    assert report.orders == 20
    first_half = sorted(expected)[:20]
    assert await env.count() == sum(len(expected[name]) for name in first_half)
    assert await env.cursor() is None
    assert await env.operation_rows() == [(report.operation, "partial")]
    assert "PARTIAL" in report.summary()


async def test_an_empty_store_completes_with_nothing_to_read(env: Env) -> None:
    report = await env.backfill()
    assert report.outcome is Outcome.EMPTY
    assert report.ok
    assert await env.count() == 0
    operation = env.store.bulk.current()
    assert operation is not None
    assert (operation.object_count, operation.path) == (0, None)
    assert await env.cursor() == operation.created_at


async def test_without_read_all_orders_old_orders_are_missing_and_said_to_be(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    populate(env.store, 10, days_ago=90)  # older than 60 days: hidden without the scope
    env.store.add_order("#RECENT", fulfillments=[[("DHL", "JJDRECENT")]])
    env.store.access_scopes.discard("read_all_orders")

    with caplog.at_level(logging.WARNING):
        report = await env.backfill()

    assert report.ok
    assert report.orders == 1
    assert report.notice == READ_ALL_ORDERS_NOTICE
    assert "60 days" in report.notice
    assert await env.shipments() == {("JJDRECENT", "dhl", "pending")}
    stored = await env.pool.fetchval("SELECT notice FROM shops WHERE id = $1", env.shop.id)
    assert stored == READ_ALL_ORDERS_NOTICE
    assert any("read_all_orders" in r.getMessage() for r in caplog.records)

    env.store.access_scopes.add("read_all_orders")
    assert (await env.backfill()).notice is None
    assert await env.pool.fetchval("SELECT notice FROM shops WHERE id = $1", env.shop.id) is None


async def test_the_finish_webhook_reads_our_operation_once(env: Env) -> None:
    expected = populate(env.store, 30)
    payloads: list[dict[str, object]] = []
    env.store.bulk.finish_listeners.append(payloads.append)
    operation, _ = await start_operation(env.pool, env.client, env.shop, ["dhl"])
    await eventually(lambda: _true(bool(payloads)), what="bulk_operations/finish")
    assert payloads[0]["admin_graphql_api_id"] == operation
    assert payloads[0]["status"] == "completed"

    await bulk_operation_finished(env.pool, env.client, env.shop, operation)

    assert await env.count() == sum(len(p) for p in expected.values())
    assert await env.operation_rows() == [(operation, "completed")]
    assert await env.cursor() is not None
    polls = env.store.stats.by_operation["BulkOperation"]
    await bulk_operation_finished(env.pool, env.client, env.shop, operation)
    await bulk_operation_finished(env.pool, env.client, env.shop, "gid://shopify/BulkOperation/9")
    assert env.store.stats.by_operation["BulkOperation"] == polls  # nothing asked again


async def _true(value: bool) -> bool:
    return value
