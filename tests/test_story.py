"""Whose story, and one story per fulfillment: write-back policy and multi-parcel fulfillments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from carriers.sandbox_base import Kind
from tests.harness import Stack, eventually, start_stack, timeline
from tests.test_end_to_end import settled
from tracker.engine.daemon import Daemon


@pytest.fixture
async def stack():
    stack = await start_stack()
    yield stack
    await stack.close()


def statuses(stack: Stack, order) -> list[str]:
    return [e.status for e in stack.store.events(order.fulfillments[0].id)]


async def run_until_settled(stack: Stack, pool, database_url, **sections) -> None:
    daemon = Daemon(stack.config(database_url, **sections), pool)
    await daemon.start(serve_web=False)
    try:
        await eventually(lambda: settled(pool), what="everything polled and resolved")
    finally:
        await daemon.stop()


async def test_two_parcels_are_told_as_one_story(stack: Stack, pool, database_url):
    now = datetime.now(UTC).replace(microsecond=0)
    fast, slow = "JJD000000000000000101", "JJD000000000000000102"
    # Parcel 1 is delivered on day 2; parcel 2 has a failed attempt, then arrives on day 3.
    stack.dhl.register(
        [
            timeline(
                fast,
                [Kind.LABEL, Kind.TRANSIT, Kind.OUT_FOR_DELIVERY, Kind.DELIVERED],
                start=now - timedelta(hours=60),
                step_hours=10,
            ),
            timeline(
                slow,
                [
                    Kind.LABEL,
                    Kind.TRANSIT,
                    Kind.TRANSIT,
                    Kind.OUT_FOR_DELIVERY,
                    Kind.ATTEMPT,
                    Kind.OUT_FOR_DELIVERY,
                    Kind.DELIVERED,
                ],
                start=now - timedelta(hours=61),
                step_hours=9,
            ),
        ]
    )
    order = stack.store.add_order(fulfillments=[[("DHL", fast, None), ("DHL", slow, None)]])
    await run_until_settled(stack, pool, database_url)
    # Replayed in time order: the slower parcel holds the story back; parcel 1's delivery is
    # not told; parcel 2's failed attempt is told at once; "delivered" only when both are.
    assert statuses(stack, order) == [
        "LABEL_PURCHASED",
        "IN_TRANSIT",
        "OUT_FOR_DELIVERY",
        "ATTEMPTED_DELIVERY",
        "OUT_FOR_DELIVERY",
        "DELIVERED",
    ]


async def test_a_diverging_parcel_is_the_story_until_it_arrives(stack: Stack, pool, database_url):
    now = datetime.now(UTC).replace(microsecond=0)
    done, stuck = "JJD000000000000000111", "JJD000000000000000112"
    stack.dhl.register(
        [
            timeline(
                done, [Kind.LABEL, Kind.TRANSIT, Kind.DELIVERED], start=now - timedelta(hours=20)
            ),
            timeline(stuck, [Kind.LABEL, Kind.TRANSIT], start=now - timedelta(hours=21)),
        ]
    )
    order = stack.store.add_order(fulfillments=[[("DHL", done, None), ("DHL", stuck, None)]])
    await run_until_settled(stack, pool, database_url)
    assert "DELIVERED" not in statuses(stack, order)
    assert statuses(stack, order)[-1] == "IN_TRANSIT"


async def test_native_tracking_is_never_doubled_in_auto_mode(stack: Stack, pool, database_url):
    stack.store.native_tracking = {"dhl express"}
    native, ours = "JJD000000000000000121", "JJD000000000000000122"
    kinds = [Kind.LABEL, Kind.TRANSIT, Kind.DELIVERED]
    stack.dhl.register([timeline(native, kinds), timeline(ours, kinds)])
    tracked_by_shopify = stack.store.add_order(fulfillments=[[("DHL Express", native, None)]])
    tracked_by_us = stack.store.add_order(fulfillments=[[("DHL Parcel", ours, None)]])
    await run_until_settled(stack, pool, database_url)
    assert statuses(stack, tracked_by_shopify) == ["CONFIRMED"]  # Shopify's own, nothing of ours
    assert statuses(stack, tracked_by_us) == ["LABEL_PURCHASED", "IN_TRANSIT", "DELIVERED"]
    row = await pool.fetchrow(
        "SELECT s.status, count(*) FILTER (WHERE e.writeback_state = 'skipped') AS skipped"
        " FROM shipments s JOIN tracking_events e ON e.shipment_id = s.id"
        " WHERE s.tracking_number = $1 GROUP BY s.status",
        native,
    )
    assert tuple(row) == ("delivered", 3)  # still tracked for the table


@pytest.mark.parametrize(
    ("policy", "ours"),
    [("always", ["LABEL_PURCHASED", "DELIVERED"]), ("never", [])],
)
async def test_always_and_never_policies(stack: Stack, pool, database_url, policy, ours):
    stack.store.native_tracking = {"dhl express"}
    number = "JJD000000000000000131"
    stack.dhl.register([timeline(number, [Kind.LABEL, Kind.DELIVERED])])
    order = stack.store.add_order(fulfillments=[[("DHL Express", number, None)]])
    config = stack.config(database_url)
    shop = config.shops[0].model_copy(update={"writeback": {"dhl": policy}})
    daemon = Daemon(config.model_copy(update={"shops": [shop]}), pool)
    await daemon.start(serve_web=False)
    try:
        await eventually(lambda: settled(pool), what="written or skipped")
    finally:
        await daemon.stop()
    written = [
        e.status
        for e in stack.store.events(order.fulfillments[0].id)
        if e.message != "Tracking by Shopify (carrier-calculated)"
    ]
    assert written == ours
