"""Shopify webhooks: ``POST /webhooks/shopify`` verifies and stores, the processor applies.

Real HTTP on 127.0.0.1 (the status-table app and the Shopify sandbox), real PostgreSQL. Payloads
are built from the sandbox store's records as Shopify's REST webhooks show them, signed like
Shopify signs them; orders are read back from the sandbox, never taken from the payload.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from graphql import FieldNode, OperationDefinitionNode, parse, print_ast
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from tests.harness import SHOP, Stack, start_stack
from tracker.config import Config
from tracker.sandbox.serve import serve
from tracker.sandbox.webhook_payloads import event_payload, fulfillment_payload, order_payload
from tracker.shopify.client import ShopifyClient, load_document
from tracker.shopify.sync import ensure_shops
from tracker.shopify.webhooks import WebhookReport, process_deliveries
from tracker.shopify.writeback_policy import foreign_event
from tracker.web import build_app

SECRET = "whsec-current-0123456789"
OLD_SECRET = "whsec-previous-9876543210"
DHL = "DHL Express"


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@dataclass
class Endpoint:
    """The daemon's web app on a real port, and a way to post webhooks to it."""

    url: str
    http: aiohttp.ClientSession
    config: Config

    async def post(
        self,
        payload: Any,
        *,
        topic: str = "orders/fulfilled",
        webhook_id: str | None = None,
        event_id: str | None = None,
        secret: str | None = SECRET,
        shop: str = SHOP,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> int:
        raw = body if body is not None else json.dumps(payload).encode()
        sent = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Shop-Domain": shop,
            "X-Shopify-API-Version": "2026-10",
            "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
            "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
            "X-Shopify-Triggered-At": "2026-03-02T09:00:00.123456789Z",
        }
        if secret is not None:
            sent["X-Shopify-Hmac-Sha256"] = sign(raw, secret)
        sent.update(headers or {})
        async with self.http.post(self.url, data=raw, headers=sent) as response:
            await response.read()
            return response.status


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    stack = await start_stack()
    yield stack
    await stack.close()


def webhook_config(stack: Stack, database_url: str) -> Config:
    config = stack.config(database_url)
    config.shops[0].client_secret = SecretStr(SECRET)
    return config


@pytest.fixture
async def endpoint(pool, stack: Stack, database_url: str) -> AsyncIterator[Endpoint]:
    config = webhook_config(stack, database_url)
    runner, base = await serve(build_app(pool, config), 0)
    async with aiohttp.ClientSession() as http:
        yield Endpoint(base + "/webhooks/shopify", http, config)
    await runner.cleanup()


Process = Callable[..., Awaitable[WebhookReport]]


@pytest.fixture
async def process(pool, endpoint: Endpoint) -> AsyncIterator[Process]:
    """Run the processor once over what is due (Shopify asked once per read: no retry wait)."""
    rows = await ensure_shops(pool, endpoint.config.shops)
    shops = {row.id: row for row in rows.values()}
    async with aiohttp.ClientSession() as http:
        clients = {
            rows[shop.domain].id: ShopifyClient(shop, http, max_attempts=1)
            for shop in endpoint.config.shops
        }

        async def run(**options: Any) -> WebhookReport:
            return await process_deliveries(pool, clients, shops, ["dhl"], **options)

        yield run


async def deliveries(pool) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT * FROM webhook_deliveries ORDER BY received_at, webhook_id")
    return [dict(r) for r in rows]


async def tracked(pool) -> dict[str, bool]:
    """Tracking number -> active."""
    rows = await pool.fetch("SELECT tracking_number, active FROM shipments")
    return {r["tracking_number"]: r["active"] for r in rows}


# -- the document ------------------------------------------------------------------------------


def test_order_for_sync_reads_exactly_the_fields_of_a_fulfilled_orders_node() -> None:
    def selection(name: str, path: list[str]) -> str:
        operation = parse(load_document(name)).definitions[0]
        assert isinstance(operation, OperationDefinitionNode)
        node: Any = operation
        for step in path:
            node = next(
                s
                for s in node.selection_set.selections
                if isinstance(s, FieldNode)
                if s.name.value == step
            )
        return print_ast(node.selection_set)

    assert selection("OrderForSync", ["order"]) == selection("FulfilledOrders", ["orders", "nodes"])


# -- each topic, signed, is stored and processed -----------------------------------------------


@pytest.mark.parametrize(
    "topic",
    [
        "orders/fulfilled",
        "orders/partially_fulfilled",
        "orders/updated",
        "fulfillments/create",
        "fulfillments/update",
    ],
)
async def test_signed_order_topic_is_stored_and_its_order_read_into_shipments(
    pool, stack: Stack, endpoint: Endpoint, process: Process, topic: str
) -> None:
    order = stack.store.add_order(
        fulfillments=[[(DHL, "JJD000000000000000001", None)]], unfulfilled_items=1
    )
    payload = (
        order_payload(order)
        if topic.startswith("orders/")
        else fulfillment_payload(order.fulfillments[0])
    )
    assert await endpoint.post(payload, topic=topic) == 200
    assert [d["topic"] for d in await deliveries(pool)] == [topic]
    assert await tracked(pool) == {}  # stored only: the answer does not wait for Shopify

    report = await process()
    assert (report.claimed, report.processed) == (1, 1)
    assert await tracked(pool) == {"JJD000000000000000001": True}
    [delivery] = await deliveries(pool)
    assert delivery["processed_at"] is not None
    assert delivery["outcome"] == f"applied gid://shopify/Order/{order.id}: 1 parcels"
    assert delivery["attempts"] == 1
    assert delivery["triggered_at"] is not None


async def test_orders_cancelled_retires_the_orders_shipments(
    pool, stack: Stack, endpoint: Endpoint, process: Process
) -> None:
    order = stack.store.add_order(
        fulfillments=[[(DHL, "JJD000000000000000001", None), (DHL, "JJD000000000000000002", None)]]
    )
    assert await endpoint.post(order_payload(order), topic="orders/fulfilled") == 200
    await process()
    assert await tracked(pool) == {"JJD000000000000000001": True, "JJD000000000000000002": True}

    stack.store.cancel_order(order.id)
    assert await endpoint.post(order_payload(order), topic="orders/cancelled") == 200
    await process()
    assert await tracked(pool) == {"JJD000000000000000001": False, "JJD000000000000000002": False}


async def test_fulfillments_update_follows_tracking_edits_and_cancellation(
    pool, stack: Stack, endpoint: Endpoint, process: Process
) -> None:
    order = stack.store.add_order(
        fulfillments=[
            [(DHL, "JJD000000000000000001", None)],
            [(DHL, "JJD000000000000000002", None)],
        ]
    )
    first, second = order.fulfillments
    assert await endpoint.post(fulfillment_payload(first), topic="fulfillments/create") == 200
    await process()

    stack.store.update_tracking(first.id, [(DHL, "JJD000000000000000003", None)])
    assert await endpoint.post(fulfillment_payload(first), topic="fulfillments/update") == 200
    await process()
    assert await tracked(pool) == {
        "JJD000000000000000001": False,
        "JJD000000000000000002": True,
        "JJD000000000000000003": True,
    }

    stack.store.cancel_fulfillment(second.id)
    assert await endpoint.post(fulfillment_payload(second), topic="fulfillments/update") == 200
    await process()
    assert (await tracked(pool))["JJD000000000000000002"] is False


# -- refused requests store nothing ------------------------------------------------------------


@pytest.mark.parametrize(
    "how",
    ["no signature", "another secret", "body changed after signing", "not base64", "empty"],
)
async def test_unsigned_or_badly_signed_webhook_is_401_and_nothing_is_stored(
    pool, stack: Stack, endpoint: Endpoint, how: str
) -> None:
    order = stack.store.add_order(fulfillments=[[(DHL, "JJD000000000000000001", None)]])
    body = json.dumps(order_payload(order)).encode()
    options: dict[str, Any] = {
        "no signature": {"secret": None},
        "another secret": {"secret": "not-the-secret"},
        "body changed after signing": {
            "body": body.replace(b'"name"', b'"nom"'),
            "headers": {"X-Shopify-Hmac-Sha256": sign(body)},
        },
        "not base64": {"headers": {"X-Shopify-Hmac-Sha256": "***not base64***"}},
        "empty": {"headers": {"X-Shopify-Hmac-Sha256": ""}},
    }[how]
    options.setdefault("body", body)
    assert await endpoint.post(None, **options) == 401
    assert await deliveries(pool) == []


async def test_previous_secret_still_passes_during_a_rotation(
    pool, stack: Stack, endpoint: Endpoint
) -> None:
    endpoint.config.shops[0].previous_client_secret = SecretStr(OLD_SECRET)
    order = stack.store.add_order(fulfillments=[[(DHL, "JJD000000000000000001", None)]])
    assert await endpoint.post(order_payload(order), secret=OLD_SECRET) == 200
    assert await endpoint.post(order_payload(order), secret=SECRET) == 200
    assert await endpoint.post(order_payload(order), secret="whsec-older-still") == 401
    assert len(await deliveries(pool)) == 2


async def test_a_shop_without_client_secret_cannot_receive_webhooks(
    pool, endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint.config.shops[0].client_secret = None
    with caplog.at_level(logging.ERROR, logger="tracker.web.webhooks"):
        assert await endpoint.post({"id": 1}) == 401
    assert "no client_secret configured" in caplog.text
    assert SECRET not in caplog.text
    assert await deliveries(pool) == []


async def test_unknown_shop_is_401(pool, endpoint: Endpoint) -> None:
    assert await endpoint.post({"id": 1}, shop="someone-else.myshopify.com") == 401
    assert await deliveries(pool) == []


async def test_oversized_body_is_413_and_not_stored(pool, endpoint: Endpoint) -> None:
    big = b'{"id": 1, "pad": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    headers = {
        "X-Shopify-Topic": "orders/fulfilled",
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Webhook-Id": "big",
        "X-Shopify-Hmac-Sha256": sign(big),
    }
    async with endpoint.http.post(endpoint.url, data=io.BytesIO(big), headers=headers) as answer:
        assert answer.status == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: refused while reading
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    async with endpoint.http.post(endpoint.url, data=chunks(), headers=headers) as answer:
        assert answer.status == 413
    assert await deliveries(pool) == []


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b'"text"', b'{"id": NaN}', b'{"id": "\\u0000"}', b"\xff\xfe{}", b""],
)
async def test_malformed_json_is_400_and_not_stored(pool, endpoint: Endpoint, body: bytes) -> None:
    assert await endpoint.post(None, body=body) == 400
    assert await deliveries(pool) == []


@pytest.mark.parametrize("header", ["X-Shopify-Topic", "X-Shopify-Webhook-Id"])
async def test_topic_and_webhook_id_are_required(pool, endpoint: Endpoint, header: str) -> None:
    assert await endpoint.post({"id": 1}, headers={header: ""}) == 400
    assert await deliveries(pool) == []


async def test_unknown_topic_is_answered_dropped_and_logged_once(
    pool, endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tracker.web.webhooks"):
        assert await endpoint.post({"id": 1}, topic="products/update") == 200
        assert await endpoint.post({"id": 2}, topic="products/update") == 200
    assert await deliveries(pool) == []
    assert sum("products/update" in r.getMessage() for r in caplog.records) == 1


async def test_a_webhook_delivered_twice_is_stored_and_processed_once(
    pool, stack: Stack, endpoint: Endpoint, process: Process
) -> None:
    order = stack.store.add_order(fulfillments=[[(DHL, "JJD000000000000000001", None)]])
    payload = order_payload(order)
    # Shopify's retry (same webhook id), then the same event under a new webhook id.
    assert await endpoint.post(payload, webhook_id="w-1", event_id="e-1") == 200
    assert await endpoint.post(payload, webhook_id="w-1", event_id="e-1") == 200
    assert await endpoint.post(payload, webhook_id="w-2", event_id="e-1") == 200
    assert [d["webhook_id"] for d in await deliveries(pool)] == ["w-1"]
    assert (await process()).processed == 1
    assert (await process()).claimed == 0
    assert stack.store.stats.by_operation["OrderForSync"] == 1


async def test_deliveries_of_one_order_in_a_batch_are_answered_by_one_read(
    pool, stack: Stack, endpoint: Endpoint, process: Process
) -> None:
    order = stack.store.add_order(fulfillments=[[(DHL, "JJD000000000000000001", None)]])
    assert await endpoint.post(order_payload(order), topic="orders/fulfilled") == 200
    payload = fulfillment_payload(order.fulfillments[0])
    assert await endpoint.post(payload, topic="fulfillments/create") == 200
    assert (await process()).processed == 2
    assert stack.store.stats.by_operation["OrderForSync"] == 1


async def test_a_stale_fulfillments_update_after_a_newer_one_leaves_the_current_state(
    pool, stack: Stack, endpoint: Endpoint, process: Process
) -> None:
    order = stack.store.add_order(fulfillments=[[(DHL, "JJD000000000000000001", None)]])
    fulfillment = order.fulfillments[0]
    stack.store.update_tracking(fulfillment.id, [(DHL, "JJD000000000000000002", None)])
    older = fulfillment_payload(fulfillment)  # says ...002
    stack.store.update_tracking(fulfillment.id, [(DHL, "JJD000000000000000003", None)])
    newer = fulfillment_payload(fulfillment)  # says ...003
    assert older["tracking_numbers"] == ["JJD000000000000000002"]

    assert await endpoint.post(newer, topic="fulfillments/update") == 200
    await process()
    assert await endpoint.post(older, topic="fulfillments/update") == 200  # arrives late
    await process()
    assert await tracked(pool) == {"JJD000000000000000003": True}


# -- fulfillment events: our own echo, and someone else's --------------------------------------


async def add_tracked_event(pool, stack: Stack, state: str, event_gid: str | None) -> str:
    """A shipment of a new order with one tracking event in write-back ``state``."""
    order = stack.store.add_order(fulfillments=[[(DHL, "JJD000000000000000001", None)]])
    fid = order.fulfillments[0].gid
    shop_id = await pool.fetchval("SELECT id FROM shops WHERE domain = $1", SHOP)
    shipment_id = await pool.fetchval(
        """
        INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id, tracking_number,
                               carrier)
        VALUES ($1, $2, $3, $4, 'JJD000000000000000001', 'dhl') RETURNING id
        """,
        shop_id,
        order.gid,
        order.name,
        fid,
    )
    await pool.execute(
        """
        INSERT INTO tracking_events (shipment_id, status, happened_at, dedupe_key,
                                     writeback_state, shopify_event_id)
        VALUES ($1, 'in_transit', now(), 'k', $2, $3)
        """,
        shipment_id,
        state,
        event_gid,
    )
    return fid


async def test_our_own_fulfillment_event_echo_is_ignored(
    pool, stack: Stack, endpoint: Endpoint, process: Process
) -> None:
    await ensure_shops(pool, endpoint.config.shops)
    fid = await add_tracked_event(pool, stack, "sending", None)
    event = stack.store.create_event(fid, "IN_TRANSIT")  # our write, answer not recorded yet
    assert await endpoint.post(event_payload(event), topic="fulfillment_events/create") == 200

    report = await process()
    assert report.deferred == 1  # it may be ours: wait for the write to be recorded
    [delivery] = await deliveries(pool)
    assert delivery["processed_at"] is None
    assert delivery["attempts"] == 0

    await pool.execute(
        "UPDATE tracking_events SET writeback_state = 'written', shopify_event_id = $1", event.gid
    )
    await pool.execute("UPDATE webhook_deliveries SET next_attempt_at = now()")
    assert (await process()).processed == 1
    [delivery] = await deliveries(pool)
    assert delivery["outcome"] == f"ignored: {event.gid} is our own write"
    async with pool.acquire() as conn:
        shop_id = await conn.fetchval("SELECT id FROM shops")
        assert await foreign_event(conn, shop_id, fid) is None


async def test_a_foreign_fulfillment_event_is_recorded_for_the_write_back_policy(
    pool, stack: Stack, endpoint: Endpoint, process: Process
) -> None:
    await ensure_shops(pool, endpoint.config.shops)
    ours = stack.store.add_order(fulfillments=[[(DHL, "JJD000000000000000009", None)]])
    own_event = stack.store.create_event(ours.fulfillments[0].id, "CONFIRMED")
    fid = await add_tracked_event(pool, stack, "written", own_event.gid)
    other = stack.store.create_event(fid, "IN_TRANSIT", message="written by another app")
    # The REST payload carries numeric ids only.
    payload = {**event_payload(other), "admin_graphql_api_id": None}
    assert await endpoint.post(payload, topic="fulfillment_events/create") == 200
    assert (await process()).processed == 1
    async with pool.acquire() as conn:
        shop_id = await conn.fetchval("SELECT id FROM shops")
        assert await foreign_event(conn, shop_id, fid) == other.gid
    [delivery] = await deliveries(pool)
    assert delivery["outcome"] == f"foreign event {other.gid} recorded"


# -- failures ----------------------------------------------------------------------------------


async def test_shopify_unavailable_retries_the_delivery_with_backoff_and_loses_nothing(
    pool, stack: Stack, endpoint: Endpoint, process: Process
) -> None:
    order = stack.store.add_order(fulfillments=[[(DHL, "JJD000000000000000001", None)]])
    assert await endpoint.post(order_payload(order)) == 200
    stack.store.fail_next_requests = 1
    report = await process()
    assert (report.retried, report.processed) == (1, 0)
    [delivery] = await deliveries(pool)
    assert delivery["processed_at"] is None
    assert "503" in delivery["error"]
    assert delivery["attempts"] == 1
    assert await pool.fetchval(
        "SELECT next_attempt_at > now() + interval '3 seconds' FROM webhook_deliveries"
    )
    assert (await process()).claimed == 0  # not due yet

    await pool.execute("UPDATE webhook_deliveries SET next_attempt_at = now()")
    assert (await process()).processed == 1
    assert await tracked(pool) == {"JJD000000000000000001": True}
    [delivery] = await deliveries(pool)
    assert (delivery["attempts"], delivery["error"]) == (2, None)


async def test_attempts_are_bounded_and_the_last_error_kept(
    pool, stack: Stack, endpoint: Endpoint, process: Process
) -> None:
    order = stack.store.add_order(fulfillments=[[(DHL, "JJD000000000000000001", None)]])
    assert await endpoint.post(order_payload(order)) == 200
    stack.store.fail_next_requests = 10
    assert (await process(max_attempts=2)).retried == 1
    await pool.execute("UPDATE webhook_deliveries SET next_attempt_at = now()")
    assert (await process(max_attempts=2)).failed == 1
    [delivery] = await deliveries(pool)
    assert delivery["failed_at"] is not None
    assert delivery["processed_at"] is None
    assert "503" in delivery["error"]
    await pool.execute("UPDATE webhook_deliveries SET next_attempt_at = now()")
    assert (await process(max_attempts=2)).claimed == 0


async def test_a_payload_naming_no_order_is_given_up_with_its_reason(
    pool, endpoint: Endpoint, process: Process
) -> None:
    assert await endpoint.post({"id": "not-a-number"}, topic="orders/updated") == 200
    assert (await process()).failed == 1
    [delivery] = await deliveries(pool)
    assert delivery["error"] == "orders/updated payload names no order"


async def test_bulk_operations_finish_goes_to_the_backfill_or_is_noted(
    pool, endpoint: Endpoint, process: Process
) -> None:
    payload = {
        "admin_graphql_api_id": "gid://shopify/BulkOperation/1",
        "status": "completed",
        "type": "query",
    }
    assert await endpoint.post(payload, topic="bulk_operations/finish") == 200
    await process()
    [delivery] = await deliveries(pool)
    if importlib.util.find_spec("tracker.shopify.backfill") is None:
        assert delivery["processed_at"] is not None
        assert delivery["outcome"] == "ignored: no bulk backfill (tracker.shopify.backfill)"
    else:  # the backfill ignores an operation it did not start
        assert delivery["processed_at"] is not None, delivery["error"]
        assert (
            delivery["outcome"] == "bulk operation gid://shopify/BulkOperation/1 handed to backfill"
        )


# -- arbitrary input ---------------------------------------------------------------------------

HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=0, max_size=40
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=8), inner, max_size=4)
            ),
            max_leaves=12,
        ).map(lambda value: json.dumps(value).encode()),
    ),
    topic=st.one_of(st.sampled_from(["orders/updated", "fulfillment_events/create"]), HEADER_TEXT),
    webhook_id=HEADER_TEXT,
    event_id=HEADER_TEXT,
    triggered_at=HEADER_TEXT,
    signed=st.booleans(),
    signature=HEADER_TEXT,
)
async def test_arbitrary_requests_get_2xx_or_4xx_and_unsigned_ones_store_nothing(
    pool,
    endpoint: Endpoint,
    body: bytes,
    topic: str,
    webhook_id: str,
    event_id: str,
    triggered_at: str,
    signed: bool,
    signature: str,
) -> None:
    before = await pool.fetchval("SELECT count(*) FROM webhook_deliveries")
    headers = {
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Event-Id": event_id,
        "X-Shopify-Triggered-At": triggered_at,
    }
    if not signed:
        headers["X-Shopify-Hmac-Sha256"] = signature
    status = await endpoint.post(
        None, body=body, secret=SECRET if signed else None, headers=headers
    )
    assert 200 <= status < 500, status
    after = await pool.fetchval("SELECT count(*) FROM webhook_deliveries")
    if not signed:
        assert status == 401
        assert after == before
    elif status != 200:
        assert after == before
