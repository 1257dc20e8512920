"""The whole loop: sandbox store -> sync -> DHL polls -> events -> Shopify -> status table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from carriers.sandbox_base import Kind
from tests.harness import Stack, eventually, start_stack, timeline
from tracker.engine.daemon import Daemon


@pytest.fixture
async def stack():
    stack = await start_stack()
    yield stack
    await stack.close()


async def settled(pool) -> bool:
    """Every trackable shipment polled, every event resolved (written, failed or skipped)."""
    row = await pool.fetchrow(
        """
        SELECT
          (SELECT count(*) FROM shipments WHERE carrier = 'dhl' AND carrier_state = 'pending')
            AS unpolled,
          (SELECT count(*) FROM tracking_events
            WHERE writeback_state IN ('pending', 'sending')) AS unwritten,
          (SELECT count(*) FROM shipments) AS shipments
        """
    )
    return row["shipments"] > 0 and row["unpolled"] == 0 and row["unwritten"] == 0


async def test_store_ends_with_exactly_the_normalized_events_in_order(
    stack: Stack, pool, database_url
):
    full = ["JJD000000000000000001", "JJD000000000000000002", "1234567890"]
    stack.dhl.register(
        [
            timeline(
                full[0],
                [
                    Kind.LABEL,
                    Kind.PICKUP,
                    Kind.TRANSIT,
                    Kind.TRANSIT,
                    Kind.OUT_FOR_DELIVERY,
                    Kind.DELIVERED,
                ],
            ),
            timeline(
                full[1],
                [
                    Kind.LABEL,
                    Kind.PICKUP,
                    Kind.INFO,
                    Kind.OUT_FOR_DELIVERY,
                    Kind.ATTEMPT,
                    Kind.PICKUP_POINT,
                ],
            ),
            timeline(
                full[2], [Kind.LABEL, Kind.TRANSIT, Kind.DELAY, Kind.EXCEPTION, Kind.RETURNED]
            ),
        ]
    )
    delivered = stack.store.add_order(fulfillments=[[("DHL Express", full[0], None)]])
    attempted = stack.store.add_order(fulfillments=[[("DHL Parcel", full[1], None)]])
    returned = stack.store.add_order(fulfillments=[[("DHL", full[2], None)]])
    unknown = stack.store.add_order(fulfillments=[[("DHL Express", "9999999999", None)]])
    other = stack.store.add_order(fulfillments=[[("Bob's Courier", "BOB123", None)]])

    daemon = Daemon(stack.config(database_url), pool)
    await daemon.start()
    try:
        await eventually(lambda: settled(pool), what="all shipments polled and written")
        async with (
            aiohttp.ClientSession() as http,
            http.get(daemon.url + "api/shipments") as response,
        ):
            assert response.status == 200
            shipments = {s["tracking_number"]: s for s in (await response.json())["shipments"]}
    finally:
        await daemon.stop()

    def statuses(order):
        return [e.status for e in stack.store.events(order.fulfillments[0].id)]

    assert statuses(delivered) == [
        "LABEL_PURCHASED",
        "CARRIER_PICKED_UP",
        "IN_TRANSIT",
        "IN_TRANSIT",
        "OUT_FOR_DELIVERY",
        "DELIVERED",
    ]
    # The INFO scan has no Shopify status: kept locally, never written.
    assert statuses(attempted) == [
        "LABEL_PURCHASED",
        "CARRIER_PICKED_UP",
        "OUT_FOR_DELIVERY",
        "ATTEMPTED_DELIVERY",
        "READY_FOR_PICKUP",
    ]
    assert statuses(returned) == [
        "LABEL_PURCHASED",
        "IN_TRANSIT",
        "DELAYED",
        "FAILURE",
        "FAILURE",
    ]
    assert statuses(unknown) == []
    assert statuses(other) == []

    # One Shopify event per normalized event with a status, each recorded with its id.
    written = await pool.fetch(
        """
        SELECT e.shopify_event_id, e.status, e.happened_at FROM tracking_events e
        WHERE e.writeback_state = 'written' ORDER BY e.happened_at
        """
    )
    remote = {f"gid://shopify/FulfillmentEvent/{e.id}": e for e in stack.store.all_events()}
    assert len(written) == len(remote) == 16
    for row in written:
        event = remote[row["shopify_event_id"]]
        assert event.status == row["status"].upper()
        assert event.happened_at == row["happened_at"].replace(microsecond=0)
    skipped = await pool.fetchval(
        "SELECT count(*) FROM tracking_events WHERE writeback_state = 'skipped' AND status IS NULL"
    )
    assert skipped == 1

    assert shipments[full[0]]["status"] == "delivered"
    assert shipments[full[1]]["status"] == "ready_for_pickup"
    assert shipments[full[2]]["status"] == "failure"
    # The unknown number is data on its shipment, not an error that stopped the others.
    assert shipments["9999999999"]["status"] is None
    assert shipments["9999999999"]["carrier_state"] == "not_found"
    assert shipments["BOB123"]["carrier"] is None
    assert shipments["BOB123"]["carrier_state"] == "no_adapter"


async def test_delivered_shipments_get_one_confirming_poll_then_stop(
    stack: Stack, pool, database_url
):
    number = "JJD000000000000000010"
    stack.dhl.register([timeline(number, [Kind.LABEL, Kind.TRANSIT, Kind.DELIVERED])])
    stack.store.add_order(fulfillments=[[("DHL", number, None)]])
    daemon = Daemon(stack.config(database_url), pool)
    await daemon.start()
    try:
        await eventually(lambda: settled(pool), what="delivered and written")
        row = await pool.fetchrow(
            "SELECT active, final_confirmed, next_poll_at - now() AS wait FROM shipments"
        )
        assert (row["active"], row["final_confirmed"]) == (True, False)
        assert timedelta(hours=23) < row["wait"] <= timedelta(hours=24)
        await pool.execute("UPDATE shipments SET next_poll_at = now()")  # a day later
        await daemon.poll_sweep()

        async def confirmed() -> bool:
            return bool(await pool.fetchval("SELECT final_confirmed FROM shipments"))

        # The daemon's own scheduled sweep may have taken the confirming poll: wait for it.
        await eventually(confirmed, what="the confirming poll stored")
        polls = len([r for r in stack.dhl.requests if number in r.numbers])
        for _ in range(3):  # several more sweeps: no more polls
            await daemon.poll_sweep()
    finally:
        await daemon.stop()
    row = await pool.fetchrow(
        "SELECT active, status, final_confirmed, retired_reason FROM shipments"
    )
    assert tuple(row) == (False, "delivered", True, None)
    assert len([r for r in stack.dhl.requests if number in r.numbers]) == polls


async def test_new_scans_arrive_on_later_polls_and_are_written_once(
    stack: Stack, pool, database_url
):
    number = "JJD000000000000000020"
    now = datetime.now(UTC)
    # Scans 5 h apart, the first two already visible; the clock moves the rest into view.
    line = timeline(
        number,
        [Kind.LABEL, Kind.PICKUP, Kind.TRANSIT, Kind.OUT_FOR_DELIVERY, Kind.DELIVERED],
        start=now.replace(microsecond=0) - _hours(6),
    )
    stack.dhl.register([line])
    order = stack.store.add_order(fulfillments=[[("DHL", number, None)]])
    config = stack.config(
        database_url,
        polling={
            "in_transit_every": "0.5s",
            "pre_transit_every": "0.5s",
            "out_for_delivery_every": "0.5s",
        },
    )
    daemon = Daemon(config, pool)
    await daemon.start()
    try:
        fid = order.fulfillments[0].id

        async def written(n: int) -> bool:
            return len(stack.store.events(fid)) == n and await settled(pool)

        await eventually(lambda: written(2), what="first two scans written")
        stack.dhl.clock.advance(_hours(10))
        await eventually(lambda: written(4), what="two more scans written")
        stack.dhl.clock.advance(_hours(10))
        await eventually(lambda: written(5), what="delivery written")
    finally:
        await daemon.stop()
    assert [e.status for e in stack.store.events(order.fulfillments[0].id)] == [
        "LABEL_PURCHASED",
        "CARRIER_PICKED_UP",
        "IN_TRANSIT",
        "OUT_FOR_DELIVERY",
        "DELIVERED",
    ]


def _hours(n: float):
    from datetime import timedelta

    return timedelta(hours=n)
