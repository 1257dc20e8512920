"""Incremental sync from the sandbox store: one shipment per parcel, changes followed."""

from __future__ import annotations

import aiohttp
import pytest

from tests.harness import SHOP, Stack, start_stack
from tracker.shopify.client import ShopifyAuthError, ShopifyClient
from tracker.shopify.sync import ensure_shops, normalize_tracking_number, sync_shop


@pytest.fixture
async def stack():
    stack = await start_stack()
    yield stack
    await stack.close()


@pytest.fixture
async def sync(pool, stack: Stack):
    config = stack.config("postgresql://unused", sync={"page_size": 7})
    shop = (await ensure_shops(pool, config.shops))[SHOP]
    async with aiohttp.ClientSession() as http:
        client = ShopifyClient(config.shops[0], http)

        async def run():
            return await sync_shop(pool, client, shop, config.sync, ["dhl"])

        yield run


async def shipments(pool):
    rows = await pool.fetch(
        "SELECT order_name, tracking_number, carrier, carrier_state, active, retired_reason"
        " FROM shipments ORDER BY order_name, tracking_number"
    )
    return [tuple(r) for r in rows]


async def test_every_fulfilled_parcel_becomes_one_shipment_across_pages(pool, stack, sync):
    for n in range(20):
        stack.store.add_order(fulfillments=[[("DHL Express", f"JJD{n:04d}", None)]])
    stack.store.add_order(
        fulfillments=[
            [("DHL", "1111111111", None), ("DHL", "2222222222", None)],
            [("UPS", "1Z999AA10123456784", None)],
        ]
    )
    stack.store.add_order()  # not fulfilled: nothing to track
    stack.store.add_order(fulfillments=[[]])  # fulfilled without a number

    report = await sync()
    assert report is not None
    assert report.pages == 4  # 23 orders, 7 per page
    rows = await shipments(pool)
    assert len(rows) == 24
    # Fulfilled without a number: shown and flagged, never polled.
    assert ("#1023", "", None, "untracked", False, None) in rows
    assert ("#1021", "1111111111", "dhl", "pending", True, None) in rows
    assert ("#1021", "2222222222", "dhl", "pending", True, None) in rows
    # A carrier without an adapter is known but shown as not enabled.
    assert ("#1021", "1Z999AA10123456784", "ups", "no_adapter", True, None) in rows

    assert (await sync()) is not None
    assert len(await shipments(pool)) == 24  # idempotent


async def test_cursor_moves_on_and_only_changed_orders_are_read(pool, stack, sync):
    stack.store.add_order(fulfillments=[[("DHL", "JJD1", None)]])
    first = await sync()
    cursor = await pool.fetchval("SELECT sync_cursor FROM shops")
    assert first is not None
    assert first.orders == 1
    assert cursor is not None
    stack.store.add_order(fulfillments=[[("DHL", "JJD2", None)]])
    second = await sync()
    assert second is not None
    assert second.parcels >= 1
    assert await pool.fetchval("SELECT sync_cursor FROM shops") >= cursor
    assert [r[1] for r in await shipments(pool)] == ["JJD1", "JJD2"]


async def test_cancelled_order_and_fulfillment_stop_tracking(pool, stack, sync):
    kept = stack.store.add_order(fulfillments=[[("DHL", "JJDKEEP", None)]])
    gone = stack.store.add_order(fulfillments=[[("DHL", "JJDORDER", None)]])
    split = stack.store.add_order(fulfillments=[[("DHL", "JJDF1", None)], [("DHL", "JJDF2", None)]])
    await sync()
    stack.store.cancel_order(gone.id)
    stack.store.cancel_fulfillment(split.fulfillments[1].id)
    await sync()
    state = {r[1]: (r[4], r[5]) for r in await shipments(pool)}
    assert state == {
        "JJDKEEP": (True, None),
        "JJDORDER": (False, "fulfillment or order cancelled"),
        "JJDF1": (True, None),
        "JJDF2": (False, "fulfillment or order cancelled"),
    }
    assert kept.name


async def test_edited_tracking_number_retires_the_old_and_tracks_the_new(pool, stack, sync):
    order = stack.store.add_order(fulfillments=[[("DHL", "JJDTYPO", None)]])
    await sync()
    stack.store.update_tracking(order.fulfillments[0].id, [("DHL", "JJDRIGHT", None)])
    await sync()
    state = {r[1]: (r[4], r[5]) for r in await shipments(pool)}
    assert state == {"JJDTYPO": (False, "tracking number removed"), "JJDRIGHT": (True, None)}


async def test_revoked_token_is_a_clear_error(pool, stack, sync):
    stack.store.access_token = "rotated"
    with pytest.raises(ShopifyAuthError, match="access token was refused"):
        await sync()
    assert await shipments(pool) == []


@pytest.mark.parametrize(
    ("typed", "stored"),
    [(" jjd 0001-23 ", "JJD000123"), ("1Z 999 AA1", "1Z999AA1"), (None, ""), (42, "")],
)
def test_tracking_numbers_are_normalized(typed, stored):
    assert normalize_tracking_number(typed) == stored


async def test_resync_after_delivery_keeps_the_shipment_as_it_is(pool, stack, sync):
    order = stack.store.add_order(fulfillments=[[("DHL", "JJDDONE", None)]])
    await sync()
    await pool.execute("UPDATE shipments SET active = false, status = 'delivered'")
    stack.store.create_event(order.fulfillments[0].id, "DELIVERED")  # order updated again
    await sync()
    assert [r[1:] for r in await shipments(pool)] == [("JJDDONE", "dhl", "pending", False, None)]


async def test_carrier_is_detected_when_missing_or_contradicted(pool, stack, sync):
    stack.store.add_order(fulfillments=[[(None, "1Z999AA10123456784", None)]])
    stack.store.add_order(fulfillments=[[("DHL Express", "1Z999AA10123456784", None)]])
    stack.store.add_order(fulfillments=[[("DHL Express", "JJD000000000000000001", None)]])
    stack.store.add_order(fulfillments=[[("Other", "ZZ-NOTHING", None)]])
    await sync()
    rows = await pool.fetch(
        "SELECT order_name, carrier, carrier_source, carrier_state FROM shipments ORDER BY 1"
    )
    assert [tuple(r) for r in rows] == [
        ("#1001", "ups", "detected", "no_adapter"),  # no company: the 1Z check digit holds
        ("#1002", "ups", "detected", "no_adapter"),  # says DHL, but is a valid UPS number
        ("#1003", "dhl", "shopify", "pending"),
        ("#1004", None, "unknown", "no_adapter"),
    ]


async def test_merchant_changing_the_carrier_restarts_tracking_with_it(pool, stack, sync):
    order = stack.store.add_order(fulfillments=[[("UPS", "JJD000000000000000009", None)]])
    await sync()
    await pool.execute("UPDATE shipments SET next_poll_at = now() + interval '1 day'")
    stack.store.update_tracking(order.fulfillments[0].id, [("DHL", "JJD000000000000000009")])
    await sync()
    row = await pool.fetchrow(
        "SELECT carrier, carrier_state, next_poll_at <= now() AS due FROM shipments"
    )
    assert tuple(row) == ("dhl", "pending", True)


async def test_untracked_parcels_say_why(pool, stack, sync):
    stack.store.add_order(fulfillments=[[("UPS", "1Z999AA10123456784", None)]])
    stack.store.add_order(fulfillments=[[("Bob's Courier", "BOB1", None)]])
    await sync()
    rows = await pool.fetch("SELECT carrier_state, carrier_message FROM shipments ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("no_adapter", "ups is not enabled: add carriers.ups to the configuration"),
        (
            "no_adapter",
            "carrier not recognised (Bob's Courier) and the number matches no known format",
        ),
    ]


async def test_a_number_added_later_replaces_the_untracked_row(pool, stack, sync):
    order = stack.store.add_order(fulfillments=[[]])
    await sync()
    stack.store.update_tracking(order.fulfillments[0].id, [("DHL", "JJDLATE")])
    await sync()
    state = {r[1]: (r[3], r[4], r[5]) for r in await shipments(pool)}
    assert state == {
        "": ("untracked", False, "tracking number removed"),
        "JJDLATE": ("pending", True, None),
    }


async def test_a_store_without_protected_customer_data_still_syncs(pool, stack, sync):
    stack.store.protected_customer_data = False  # the app is not approved for customer data
    stack.store.add_order(
        email="ada.lovelace@example.com", fulfillments=[[("DHL", "JJDPII", None)]]
    )
    report = await sync()
    assert report is not None
    assert report.parcels == 1
    row = await pool.fetchrow(
        "SELECT tracking_number, customer_name, customer_email FROM shipments"
    )
    assert tuple(row) == ("JJDPII", None, None)
