"""Webhooks end to end: the sandbox subscribes and delivers like Shopify, the daemon registers.

The sandbox's deliveries go over real HTTP to a recording server or to a running daemon
(:class:`tracker.engine.daemon.Daemon` on a real port, real PostgreSQL); ``tracker webhooks
register`` runs as a real process.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from pydantic import SecretStr

from carriers.sandbox_base import Kind
from tests.harness import SHOP, TOKEN, Stack, eventually, start_stack, timeline
from tracker.engine.daemon import Daemon
from tracker.sandbox.demo import free_port
from tracker.sandbox.serve import serve
from tracker.shopify.client import ShopifyClient
from tracker.shopify.subscriptions import REGISTERED_TOPICS, register_webhooks

DHL = "DHL Express"
HEADERS = [
    "X-Shopify-Topic",
    "X-Shopify-Shop-Domain",
    "X-Shopify-API-Version",
    "X-Shopify-Webhook-Id",
    "X-Shopify-Event-Id",
    "X-Shopify-Triggered-At",
    "X-Shopify-Hmac-Sha256",
]


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    stack = await start_stack()
    yield stack
    await stack.close()


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[ShopifyClient]:
    async with aiohttp.ClientSession() as http:
        yield ShopifyClient(stack.config("postgresql://unused").shops[0], http)


@dataclass
class Receiver:
    """A server that records what it is sent and answers 500 to the first ``fail`` posts."""

    url: str = ""
    fail: int = 0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        if self.fail > 0:
            self.fail -= 1
            return web.Response(status=500)
        return web.Response(status=200)

    def topics(self) -> list[str]:
        return [headers["X-Shopify-Topic"] for headers, _ in self.received]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", found.handle)
    runner, base = await serve(app, 0)
    found.url = base + "/hooks"
    yield found
    await runner.cleanup()


# -- subscriptions -----------------------------------------------------------------------------


async def test_subscriptions_are_created_once_and_listed_like_shopify(
    stack: Stack, client: ShopifyClient
) -> None:
    url = "http://127.0.0.1:9/webhooks/shopify"
    first = await register_webhooks(client, url)
    assert [(r.topic, r.outcome) for r in first] == [(t, "created") for t in REGISTERED_TOPICS]
    second = await register_webhooks(client, url)
    assert [r.outcome for r in second] == ["exists"] * len(REGISTERED_TOPICS)
    assert len(stack.store.webhooks.subscriptions()) == len(REGISTERED_TOPICS)

    data = await client.query("WebhookSubscriptions", {"topics": ["ORDERS_FULFILLED"]})
    [node] = data["webhookSubscriptions"]["nodes"]
    assert node["topic"] == "ORDERS_FULFILLED"
    assert node["format"] == "JSON"
    assert node["endpoint"] == {"__typename": "WebhookHttpEndpoint", "callbackUrl": url}
    assert node["id"].startswith("gid://shopify/WebhookSubscription/")


@pytest.mark.parametrize(
    ("callback", "message"),
    [
        ("http://127.0.0.1:9/webhooks/shopify", "Address for this topic has already been taken"),
        ("ftp://example.com/hooks", "Address is invalid"),
        ("", "Address can't be blank"),
    ],
)
async def test_a_bad_subscription_is_a_user_error(
    client: ShopifyClient, callback: str, message: str
) -> None:
    await register_webhooks(client, "http://127.0.0.1:9/webhooks/shopify", ("ORDERS_FULFILLED",))
    variables = {
        "topic": "ORDERS_FULFILLED",
        "webhookSubscription": {"callbackUrl": callback, "format": "JSON"},
    }
    data = await client.mutate("WebhookSubscriptionCreate", variables)
    payload = data["webhookSubscriptionCreate"]
    assert payload["webhookSubscription"] is None
    assert [e["message"] for e in payload["userErrors"]] == [message]


# -- deliveries --------------------------------------------------------------------------------


async def test_store_changes_are_delivered_signed_with_rest_payloads(
    stack: Stack, client: ShopifyClient, receiver: Receiver
) -> None:
    await register_webhooks(client, receiver.url)
    store = stack.store
    order = store.add_order(fulfillments=[[(DHL, "JJD000000000000000001", "https://t/1")]])
    fulfillment = order.fulfillments[0]
    store.create_event(fulfillment.id, "IN_TRANSIT")
    store.update_tracking(fulfillment.id, [(DHL, "JJD000000000000000002", None)])
    store.cancel_fulfillment(fulfillment.id)
    store.cancel_order(order.id)

    expected = [
        "fulfillments/create",
        "orders/fulfilled",
        "fulfillment_events/create",
        "fulfillments/update",
        "fulfillments/update",
        "orders/cancelled",
    ]

    async def all_received() -> bool:
        return len(receiver.received) >= len(expected)

    await eventually(all_received, what="six deliveries")
    assert receiver.topics() == expected
    for headers, body in receiver.received:
        assert all(headers.get(name) for name in HEADERS), headers
        digest = hmac.new(store.client_secret.encode(), body, hashlib.sha256).digest()
        assert headers["X-Shopify-Hmac-Sha256"] == base64.b64encode(digest).decode()
        assert headers["X-Shopify-Shop-Domain"] == SHOP
    payloads = [json.loads(body) for _, body in receiver.received]
    created, fulfilled, event, edited, cancelled, order_cancelled = payloads
    assert created["id"] == fulfillment.id
    assert created["admin_graphql_api_id"] == fulfillment.gid
    assert created["order_id"] == order.id
    assert (created["status"], created["tracking_company"]) == ("success", DHL)
    assert created["tracking_numbers"] == ["JJD000000000000000001"]
    assert created["tracking_urls"] == ["https://t/1"]
    assert fulfilled["admin_graphql_api_id"] == order.gid
    assert fulfilled["cancelled_at"] is None
    assert [f["id"] for f in fulfilled["fulfillments"]] == [fulfillment.id]
    assert (event["status"], event["fulfillment_id"], event["order_id"]) == (
        "in_transit",
        fulfillment.id,
        order.id,
    )
    assert event["admin_graphql_api_id"].startswith("gid://shopify/FulfillmentEvent/")
    assert event["happened_at"]
    assert edited["tracking_numbers"] == ["JJD000000000000000002"]
    assert cancelled["status"] == "cancelled"
    assert order_cancelled["cancelled_at"] is not None
    # One event id per change and topic, one webhook id per delivery.
    ids = [headers["X-Shopify-Webhook-Id"] for headers, _ in receiver.received]
    assert len(set(ids)) == len(ids)


async def test_failed_deliveries_are_retried_with_backoff_then_given_up(
    stack: Stack, client: ShopifyClient, receiver: Receiver
) -> None:
    store = stack.store
    store.webhooks.configure(max_attempts=3, retry_base_seconds=0.05)
    await register_webhooks(client, receiver.url, ("FULFILLMENTS_CREATE",))
    dead = f"http://127.0.0.1:{free_port()}/hooks"  # nothing listens there
    await register_webhooks(client, dead, ("FULFILLMENTS_CREATE",))
    receiver.fail = 2
    store.add_order(fulfillments=[[(DHL, "JJD000000000000000001", None)]])

    async def settled() -> bool:
        return store.webhooks.pending == 0 and len(store.webhooks.attempts) == 6

    await eventually(settled, what="three attempts to each address")
    to_receiver = [a for a in store.webhooks.attempts if a.address == receiver.url]
    assert [(a.attempt, a.status) for a in to_receiver] == [(1, 500), (2, 500), (3, 200)]
    assert len({a.webhook_id for a in to_receiver}) == 1  # a retry is the same webhook
    to_dead = [a for a in store.webhooks.attempts if a.address == dead]
    assert [(a.attempt, a.status) for a in to_dead] == [(1, None), (2, None), (3, None)]
    assert all(a.error for a in to_dead)


async def run_with_seed(receiver: Receiver, seed: int) -> list[tuple[str, bool, bool]]:
    stack = await start_stack()
    try:
        async with aiohttp.ClientSession() as http:
            client = ShopifyClient(stack.config("postgresql://unused").shops[0], http)
            await register_webhooks(client, receiver.url)
        stack.store.webhooks.configure(
            duplicate_probability=0.4,
            delay_probability=0.4,
            delay_seconds=0.2,
            retry_base_seconds=0.01,
            seed=seed,
        )
        for n in range(6):
            stack.store.add_order(fulfillments=[[(DHL, f"JJD00000000000000000{n}", None)]])

        async def settled() -> bool:
            return stack.store.webhooks.pending == 0

        await eventually(settled, what="every delivery made")
        attempts = list(stack.store.webhooks.attempts)
    finally:
        await stack.close()
    # Out of order: a delivery emitted earlier arrived after one emitted later.
    sequences = [a.sequence for a in attempts]
    assert any(earlier > later for earlier, later in itertools.pairwise(sequences))
    originals = {a.webhook_id for a in attempts if not a.duplicate}
    again = [a for a in attempts if a.duplicate]
    assert any(a.webhook_id in originals for a in again)  # Shopify's retry: the same webhook
    assert any(a.webhook_id not in originals for a in again)  # the same event, a new webhook
    assert {a.event_id for a in again} <= {a.event_id for a in attempts if not a.duplicate}
    return sorted((a.topic, a.duplicate, a.delayed) for a in attempts)


async def test_duplicates_and_late_deliveries_are_the_same_for_the_same_seed(
    receiver: Receiver,
) -> None:
    first = await run_with_seed(receiver, 3)
    second = await run_with_seed(receiver, 3)
    assert first == second
    assert sum(dup for _, dup, _ in first) >= 1
    assert sum(late for _, _, late in first) >= 1


# -- tracker webhooks register -----------------------------------------------------------------


async def run_register(tmp_path: Path, stack: Stack, public_url: str | None) -> tuple[int, str]:
    config = {
        "shops": [
            {
                "domain": SHOP,
                "access_token": TOKEN,
                "api_url": stack.shopify_url,
                "api_version": "2026-10",
            }
        ],
        "web": {"public_url": public_url} if public_url else {},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tracker",
        "webhooks",
        "register",
        "--config",
        str(path),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_tracker_webhooks_register_is_idempotent(tmp_path: Path, stack: Stack) -> None:
    code, output = await run_register(tmp_path, stack, "https://tracker.example.com/")
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0] == "Webhook URL: https://tracker.example.com/webhooks/shopify"
    assert lines[1:] == [f"{SHOP} {topic}: created" for topic in REGISTERED_TOPICS]

    code, output = await run_register(tmp_path, stack, "https://tracker.example.com")
    assert code == 0, output
    assert output.splitlines()[1:] == [
        f"{SHOP} {topic}: already registered" for topic in REGISTERED_TOPICS
    ]
    subscriptions = stack.store.webhooks.subscriptions()
    assert len(subscriptions) == len(REGISTERED_TOPICS)
    assert {s.callback_url for s in subscriptions} == {
        "https://tracker.example.com/webhooks/shopify"
    }


async def test_tracker_webhooks_register_needs_a_public_url(tmp_path: Path, stack: Stack) -> None:
    code, output = await run_register(tmp_path, stack, None)
    assert code == 2
    assert "web.public_url is not set" in output
    assert stack.store.webhooks.subscriptions() == []


# -- the daemon --------------------------------------------------------------------------------


def attempt_summary(attempts: list[Any]) -> dict[str, int]:
    return {
        "refused": sum(a.status is None for a in attempts),
        "duplicates": sum(a.duplicate for a in attempts),
        "late": sum(a.delayed for a in attempts),
    }


async def test_sandbox_deliveries_reach_a_running_daemon_and_each_is_processed_once(
    stack: Stack, pool, database_url: str
) -> None:
    store = stack.store
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    config = stack.config(
        database_url,
        web={"port": port, "public_url": public},
        sync={"interval": "1h"},  # after its first run, only webhooks bring changes
    )
    config.shops[0].client_secret = SecretStr(store.client_secret)
    store.webhooks.configure(
        max_attempts=6,
        retry_base_seconds=0.2,
        duplicate_probability=0.4,
        delay_probability=0.3,
        delay_seconds=0.5,
        seed=11,
    )
    numbers = [f"JJD00000000000000000{n}" for n in range(1, 6)]
    stack.dhl.register([timeline(n, [Kind.LABEL, Kind.PICKUP, Kind.TRANSIT]) for n in numbers])

    # The daemon subscribes itself at start-up.
    daemon = Daemon(config, pool)
    await daemon.start()
    try:

        async def subscribed() -> bool:
            return len(store.webhooks.subscriptions()) == len(REGISTERED_TOPICS)

        await eventually(subscribed, what="the daemon's subscriptions")
    finally:
        await daemon.stop()
    store.webhooks.subscribe("ORDERS_FULFILLED", public + "/not-here", "JSON", "2026-10")

    # Changes while the daemon is down: delivery is refused and retried.
    first = store.add_order(fulfillments=[[(DHL, numbers[0], None)]])

    daemon = Daemon(config, pool)
    await daemon.start()
    try:

        async def synced_and_registered() -> bool:
            synced = await pool.fetchval("SELECT last_sync_at IS NOT NULL FROM shops")
            return bool(synced) and store.stats.by_operation["WebhookSubscriptions"] == 2

        await eventually(synced_and_registered, what="first sync and registration")
        # Changes while it runs: only webhooks can bring these.
        second = store.add_order(
            fulfillments=[[(DHL, numbers[1], None)], [(DHL, numbers[3], None)]]
        )
        third = store.add_order(fulfillments=[[(DHL, numbers[4], None)]])
        store.update_tracking(first.fulfillments[0].id, [(DHL, numbers[2], None)])
        store.cancel_fulfillment(second.fulfillments[1].id)
        store.cancel_order(third.id)

        def outside() -> tuple[int, int]:
            return store.webhooks.pending, len(store.all_events())

        async def quiet() -> bool:
            before = outside()
            row = await pool.fetchrow(
                """
                SELECT
                  (SELECT count(*) FROM tracking_events) AS events,
                  (SELECT count(*) FROM tracking_events
                    WHERE writeback_state IN ('pending', 'sending')) AS unwritten,
                  (SELECT count(*) FROM webhook_deliveries WHERE processed_at IS NULL) AS todo
                """
            )
            # Nothing sent, written or echoed while the database was read.
            return (
                before == outside()
                and before[0] == 0
                and row["events"] > 0
                and row["unwritten"] == 0
                and row["todo"] == 0
            )

        await eventually(quiet, timeout=60, what="deliveries made and processed")
    finally:
        await daemon.stop()

    active = {
        r["tracking_number"] for r in await pool.fetch("SELECT * FROM shipments WHERE active")
    }
    assert active == {numbers[1], numbers[2]}
    assert store.stats.by_operation["WebhookSubscriptionCreate"] == len(REGISTERED_TOPICS)

    # Every event the daemon answered is one row, processed exactly once.
    callback = public + "/webhooks/shopify"
    attempts = [a for a in store.webhooks.attempts if a.address == callback]
    answered = {a.event_id for a in attempts if a.status == 200}
    rows = await pool.fetch("SELECT * FROM webhook_deliveries")
    assert {r["event_id"] for r in rows} == answered
    assert len(rows) == len(answered)
    assert all(r["processed_at"] is not None and r["attempts"] == 1 for r in rows)
    echoes = [r for r in rows if r["topic"] == "fulfillment_events/create"]
    assert echoes
    assert all(r["outcome"].endswith("is our own write") for r in echoes)
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM fulfillment_writeback WHERE foreign_event_id IS NOT NULL"
        )
        == 0
    )
    summary = attempt_summary(attempts)
    assert summary["refused"] >= 1, summary  # retried while the daemon was down
    assert summary["duplicates"] >= 1, summary
    assert summary["late"] >= 1, summary
    # Refused while the daemon was down, then refused by it (a cross-site POST to a path that
    # is not the webhook endpoint: 403 from the access check): tried six times, then given up.
    lost = [a for a in store.webhooks.attempts if a.address == public + "/not-here"]
    assert {a.status for a in lost} <= {None, 403}
    assert 403 in {a.status for a in lost}
    tries: dict[str, list[int]] = {}
    for a in lost:
        tries.setdefault(a.webhook_id, []).append(a.attempt)
    assert tries
    assert all(attempt_numbers == [1, 2, 3, 4, 5, 6] for attempt_numbers in tries.values())


async def test_sandbox_config_lets_the_daemon_receive_webhooks() -> None:
    from tracker.config import Config
    from tracker.sandbox.serve import daemon_config, start_sandboxes, webhooks_line

    sandboxes = await start_sandboxes(orders=0, speed=1.0, seed=1)
    try:
        config = Config.model_validate(daemon_config(sandboxes, speed=1.0))
        secret = sandboxes.store.client_secret
    finally:
        await sandboxes.close()
    shop = config.shops[0]
    assert shop.client_secret is not None
    assert shop.client_secret.get_secret_value() == secret
    assert (config.web.port, config.web.public_url) == (8080, "http://127.0.0.1:8080")
    assert webhooks_line(config.web.public_url, secret) == (
        f"Webhooks: http://127.0.0.1:8080/webhooks/shopify secret={secret}"
    )
