"""Exactly-once write-back of tracking events to Shopify, through lost answers and crashes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from tests.harness import SHOP, Stack, start_stack
from tracker.config import WritebackConfig
from tracker.domain import Status
from tracker.shopify.client import ShopifyClient
from tracker.shopify.sync import ensure_shops
from tracker.shopify.writeback import Writer
from tracker.shopify.writeback_policy import mark_checked

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=30)
STATUSES = [Status.LABEL_PURCHASED, Status.IN_TRANSIT, Status.OUT_FOR_DELIVERY, Status.DELIVERED]


@pytest.fixture
async def stack():
    stack = await start_stack()
    yield stack
    await stack.close()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def seed(pool, stack: Stack, statuses=STATUSES, *, orders: int = 1) -> list[str]:
    """Orders in the store, each with one DHL shipment and ``statuses`` as pending events."""
    config = stack.config("postgresql://unused")
    shop = (await ensure_shops(pool, config.shops))[SHOP]
    fulfillment_ids = []
    for n in range(orders):
        order = stack.store.add_order(fulfillments=[[("DHL", f"JJD{n:018d}", None)]])
        fid = f"gid://shopify/Fulfillment/{order.fulfillments[0].id}"
        fulfillment_ids.append(fid)
        shipment_id = await pool.fetchval(
            """
            INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id, tracking_number,
                                   carrier)
            VALUES ($1, $2, $3, $4, $5, 'dhl') RETURNING id
            """,
            shop.id,
            f"gid://shopify/Order/{order.id}",
            order.name,
            fid,
            f"JJD{n:018d}",
        )
        for i, status in enumerate(statuses):
            await pool.execute(
                """
                INSERT INTO tracking_events (shipment_id, status, happened_at, message, city,
                                             country, dedupe_key, writeback_state)
                VALUES ($1, $2, $3, $4, 'Leipzig', 'DE', $5, 'pending')
                """,
                shipment_id,
                status.value,
                T0 + timedelta(hours=5 * i),
                f"scan {i}",
                f"k{i}",
            )
    return fulfillment_ids


def writer(pool, stack: Stack, http, **config) -> Writer:
    cfg = stack.config("postgresql://unused")
    settings = WritebackConfig.model_validate({"lease": "0.3s", **config})
    return Writer(
        pool, {1: ShopifyClient(cfg.shops[0], http)}, _shops(cfg), settings, "test-worker"
    )


def _shops(cfg):
    from tracker.shopify.sync import ShopRow

    return {1: ShopRow(1, SHOP, cfg.shops[0].api_version)}


def remote_statuses(stack: Stack, fid: str) -> list[str]:
    return [e.status for e in stack.store.events(fid)]


async def states(pool) -> list[str]:
    rows = await pool.fetch("SELECT writeback_state FROM tracking_events ORDER BY happened_at")
    return [r["writeback_state"] for r in rows]


async def test_events_are_written_in_order_with_their_details(pool, stack, http):
    [fid] = await seed(pool, stack)
    report = await writer(pool, stack, http).drain()
    assert report.written == 4
    assert remote_statuses(stack, fid) == [s.shopify for s in STATUSES]
    first = stack.store.events(fid)[0]
    assert (first.happened_at, first.message, first.city, first.country) == (
        T0,
        "scan 0",
        "Leipzig",
        "DE",
    )
    rows = await pool.fetch("SELECT shopify_event_id FROM tracking_events ORDER BY happened_at")
    assert [r["shopify_event_id"] for r in rows] == [
        f"gid://shopify/FulfillmentEvent/{e.id}" for e in stack.store.events(fid)
    ]
    assert (await writer(pool, stack, http).drain()).written == 0


async def test_lost_answer_is_resolved_by_reading_shopify_not_by_resending(pool, stack, http):
    [fid] = await seed(pool, stack)
    stack.store.set_faults(drop_next_mutation_responses=1)
    w = writer(pool, stack, http)

    first = await w.drain()
    # Shopify stored the first event but its answer was lost: it waits, nothing else is sent.
    assert (first.written, first.deferred) == (0, 1)
    assert remote_statuses(stack, fid) == ["LABEL_PURCHASED"]
    assert await states(pool) == ["sending", "pending", "pending", "pending"]

    second = await w.drain()  # lease not yet over: still nothing sent
    assert second.written == 0
    assert remote_statuses(stack, fid) == ["LABEL_PURCHASED"]

    await asyncio.sleep(0.4)
    third = await w.drain()
    assert (third.reconciled, third.written) == (1, 3)
    assert remote_statuses(stack, fid) == [s.shopify for s in STATUSES]
    assert await states(pool) == ["written"] * 4


async def test_write_that_never_reached_shopify_is_sent_again_once(pool, stack, http):
    [fid] = await seed(pool, stack, [Status.IN_TRANSIT])
    # A crashed writer left it 'sending'; Shopify never got it.
    await pool.execute(
        "UPDATE tracking_events SET writeback_state = 'sending', writeback_owner = 'dead',"
        " writeback_started_at = now() - interval '1 hour'"
    )
    report = await writer(pool, stack, http).drain()
    assert (report.reverted, report.written) == (1, 1)
    assert remote_statuses(stack, fid) == ["IN_TRANSIT"]


async def test_crash_after_shopify_accepted_leaves_no_duplicate(pool, stack, http):
    [fid] = await seed(pool, stack, [Status.IN_TRANSIT, Status.DELIVERED])
    # Shopify accepted the first event, then the process died before recording it.
    stack.store.create_event(fid, "IN_TRANSIT", happened_at=T0, message="scan 0")
    await pool.execute(
        "UPDATE tracking_events SET writeback_state = 'sending', writeback_owner = 'dead',"
        " writeback_started_at = now() - interval '1 hour' WHERE status = 'in_transit'"
    )
    report = await writer(pool, stack, http).drain()
    assert (report.reconciled, report.written) == (1, 1)
    assert remote_statuses(stack, fid) == ["IN_TRANSIT", "DELIVERED"]


async def test_writer_cancelled_mid_call_does_not_duplicate_after_restart(pool, stack, http):
    [fid] = await seed(pool, stack, [Status.IN_TRANSIT, Status.OUT_FOR_DELIVERY])
    stack.store.set_faults(hold_mutation_responses=1)
    task = asyncio.create_task(writer(pool, stack, http).drain())

    async def accepted() -> bool:
        return len(stack.store.events(fid)) == 1

    while not await accepted():
        await asyncio.sleep(0.01)
    task.cancel()  # killed between Shopify accepting and the local record
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await states(pool) == ["sending", "pending"]

    await asyncio.sleep(0.4)  # the dead writer's lease runs out
    report = await writer(pool, stack, http).drain()
    assert (report.reconciled, report.written) == (1, 1)
    assert remote_statuses(stack, fid) == ["IN_TRANSIT", "OUT_FOR_DELIVERY"]


async def test_user_errors_fail_the_event_with_the_reason(pool, stack, http):
    [fid] = await seed(pool, stack, [Status.IN_TRANSIT])
    stack.store.cancel_fulfillment(fid)
    report = await writer(pool, stack, http).drain()
    assert report.failed == 1
    row = await pool.fetchrow("SELECT writeback_state, writeback_error FROM tracking_events")
    assert row["writeback_state"] == "failed"
    assert row["writeback_error"].startswith("Shopify refused the event:")
    assert (await writer(pool, stack, http).drain()).failed == 0  # final: not retried


async def test_transport_failures_back_off_and_keep_the_order(pool, stack, http):
    [fid] = await seed(pool, stack, [Status.IN_TRANSIT, Status.DELIVERED])
    async with pool.acquire() as conn:  # its events were read already: straight to writing
        await mark_checked(conn, 1, fid)
    stack.store.set_faults(throttle_next=100)
    client_attempts = writer(pool, stack, http)
    report = await client_attempts.drain()
    assert report.written == 0
    rows = await pool.fetch(
        "SELECT writeback_state, writeback_next_at > now() AS later FROM tracking_events"
        " ORDER BY happened_at"
    )
    assert [(r["writeback_state"], r["later"]) for r in rows] == [
        ("pending", True),
        ("pending", False),
    ]
    stack.store.set_faults(throttle_next=0)
    # The second event is due but must not overtake the first.
    assert (await writer(pool, stack, http).drain()).written == 0
    assert remote_statuses(stack, fid) == []


async def test_older_api_version_gets_in_transit_for_carrier_picked_up(pool, stack, http):
    [fid] = await seed(pool, stack, [Status.CARRIER_PICKED_UP])
    cfg = stack.config(
        "postgresql://unused",
    )
    shop = cfg.shops[0].model_copy(update={"api_version": "2025-07"})
    from tracker.shopify.sync import ShopRow

    w = Writer(
        pool,
        {1: ShopifyClient(shop, http)},
        {1: ShopRow(1, SHOP, "2025-07")},
        WritebackConfig(),
        "w",
    )
    assert (await w.drain()).written == 1
    assert remote_statuses(stack, fid) == ["IN_TRANSIT"]


async def test_a_backlog_of_500_events_drains_without_a_single_throttled_answer(pool, http):
    stack = await start_stack(bucket_size=100, restore_rate=1000)
    try:
        fids = await seed(pool, stack, [*STATUSES, Status.DELAYED], orders=100)
        w = writer(pool, stack, http, concurrency=8)
        report = await w.drain()
        assert report.written == 500
        assert stack.store.stats.throttled == 0
        assert sum(len(stack.store.events(f)) for f in fids) == 500

        # Throttled anyway (another app spends the bucket): retried, nothing lost.
        more = await seed(pool, stack, [Status.IN_TRANSIT], orders=1)
        stack.store.set_faults(throttle_next=2)
        assert (await writer(pool, stack, http).drain()).written == 1
        assert stack.store.stats.throttled == 2
        assert remote_statuses(stack, more[0]) == ["IN_TRANSIT"]
    finally:
        await stack.close()
