"""``GET /metrics``: a real daemon's figures agree with the sandboxes and with PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from carriers.sandbox_base import Kind, RequestRecord
from tests.harness import SHOP, Stack, eventually, start_stack, timeline
from tracker.db.pool import create_pool
from tracker.engine.daemon import Daemon
from tracker.metrics import Metrics, MetricsSource
from tracker.sandbox.serve import serve
from tracker.sandbox.webhook_payloads import order_payload
from tracker.web.metrics import add_metrics_route
from tracker.web.webhooks import sign

BUCKET_SIZE = 400.0
WEBHOOK_SECRET = "metrics-webhook-secret"
# Generous: other work may share the machine (the waits end as soon as the condition holds).
WAIT = 90.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    stack = await start_stack(bucket_size=BUCKET_SIZE, restore_rate=40)
    yield stack
    await stack.close()


async def scrape(url: str) -> Samples:
    """``GET /metrics``, parsed by prometheus-client's own parser."""
    async with aiohttp.ClientSession() as http, http.get(url + "metrics") as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample; a KeyError (failing the test) when the daemon does not export it."""
    return samples[(name, frozenset(labels.items()))]


def local(daemon: Daemon, name: str, **labels: str) -> float:
    """A sample straight from the daemon's registry (to wait on; assertions use the scrape)."""
    return daemon.metrics.registry.get_sample_value(name, labels) or 0.0


def track_requests(stack: Stack) -> list[RequestRecord]:
    """The tracking requests the DHL sandbox answered (its request log)."""
    return [r for r in stack.dhl.requests if r.path.endswith("/track/shipments")]


async def post_webhook(url: str, topic: str, payload: dict[str, object]) -> int:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-API-Version": "2026-10",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Hmac-Sha256": sign(body, WEBHOOK_SECRET),
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(url + "webhooks/shopify", data=body, headers=headers) as response,
    ):
        return response.status


async def settled(pool: asyncpg.Pool, shipments: int) -> bool:
    """Every shipment polled once, every event resolved (written, failed or skipped)."""
    row = await pool.fetchrow(
        """
        SELECT count(*) AS shipments,
               count(*) FILTER (WHERE last_polled_at IS NULL) AS unpolled,
               (SELECT count(*) FROM tracking_events
                 WHERE writeback_state IN ('pending', 'sending')) AS unwritten
        FROM shipments
        """
    )
    return row["shipments"] == shipments and row["unpolled"] == 0 and row["unwritten"] == 0


async def test_metrics_agree_with_the_sandboxes_and_the_database(
    stack: Stack, pool: asyncpg.Pool, database_url: str
) -> None:
    delivered, moving, unknown = "JJD000000000000000101", "JJD000000000000000102", "9999999999"
    stack.dhl.register(
        [
            timeline(delivered, [Kind.LABEL, Kind.PICKUP, Kind.TRANSIT, Kind.DELIVERED]),
            timeline(moving, [Kind.LABEL, Kind.PICKUP, Kind.INFO, Kind.TRANSIT]),
        ]
    )
    orders = [
        stack.store.add_order(fulfillments=[[("DHL Express", number, None)]])
        for number in (delivered, moving, unknown)
    ]
    config = stack.config(database_url)
    config.shops[0].client_secret = SecretStr(WEBHOOK_SECRET)
    daemon = Daemon(config, pool)
    await daemon.start()
    try:
        await eventually(
            lambda: settled(pool, 3), what="every shipment polled and written", timeout=WAIT
        )

        async def counted() -> bool:
            row = await pool.fetchrow(
                "SELECT count(*) AS found, count(*) FILTER (WHERE writeback_state = 'written')"
                " AS written FROM tracking_events"
            )
            return (
                local(daemon, "tracker_claims_total") == len(track_requests(stack))
                and local(daemon, "tracker_events_found_total", carrier="dhl") == row["found"]
                and local(daemon, "tracker_events_written_total", shop=SHOP) == row["written"]
            )

        # The counters follow the jobs' reports, which come a moment after the rows land.
        await eventually(counted, what="the jobs' reports to be counted", timeout=WAIT)
        assert await post_webhook(daemon.url, "orders/updated", order_payload(orders[0])) == 200
        assert await post_webhook(daemon.url, "products/create", {"id": 1}) == 200
        samples = await scrape(daemon.url)
        states = dict(await pool.fetch("SELECT carrier_state, count(*) FROM shipments GROUP BY 1"))
        events = await pool.fetchval("SELECT count(*) FROM tracking_events")
        written = await pool.fetchval(
            "SELECT count(*) FROM tracking_events WHERE writeback_state = 'written'"
        )
        due = await pool.fetchval(
            "SELECT count(*) FROM shipments WHERE active AND next_poll_at <= now()"
        )
    finally:
        await daemon.stop()

    requests = track_requests(stack)
    answered = {status: sum(r.status == status for r in requests) for status in (200, 404)}
    assert answered == {200: 2, 404: 1}
    assert states == {"found": 2, "not_found": 1}

    # Polls by outcome: one per request DHL logged, one per shipment state in PostgreSQL.
    polls = {
        outcome: value(samples, "tracker_polls_total", carrier="dhl", outcome=outcome)
        for outcome in (
            "found",
            "not_found",
            "invalid_number",
            "carrier_error",
            "unavailable",
            "over_budget",
        )
    }
    assert polls == {
        "found": answered[200],
        "not_found": answered[404],
        "invalid_number": 0,
        "carrier_error": 0,
        "unavailable": 0,
        "over_budget": 0,
    }
    assert polls["found"] == states["found"]
    assert polls["not_found"] == states["not_found"]
    assert value(samples, "tracker_claims_total") == len(requests)
    # DHL sends one number per request: one adapter call, one latency sample, per request.
    assert value(samples, "tracker_carrier_request_seconds_count", carrier="dhl") == len(requests)
    assert value(samples, "tracker_carrier_request_seconds_sum", carrier="dhl") > 0

    # Events: found = rows stored; written = what the store holds, each once.
    store_events = stack.store.all_events()
    assert value(samples, "tracker_events_found_total", carrier="dhl") == events
    assert events == 4 + 4  # every scan of both parcels, the one without a status included
    assert value(samples, "tracker_events_written_total", shop=SHOP) == len(store_events)
    assert len(store_events) == written == 4 + 3
    assert value(samples, "tracker_writeback_failed_total", shop=SHOP) == 0
    assert value(samples, "tracker_writeback_backlog", shop=SHOP) == 0

    assert value(samples, "tracker_due_shipments", carrier="dhl") == due == 0
    assert value(samples, "tracker_carrier_circuit_open", carrier="dhl") == 0
    for reason in ("credentials", "unavailable"):
        assert value(samples, "tracker_carrier_circuit_reason", carrier="dhl", reason=reason) == 0

    # The bucket as the sandbox store sized it.
    assert value(samples, "tracker_shopify_bucket_maximum", shop=SHOP) == BUCKET_SIZE
    assert 0 <= value(samples, "tracker_shopify_bucket_available", shop=SHOP) <= BUCKET_SIZE

    assert value(samples, "tracker_webhooks_received_total", topic="orders/updated") == 1
    assert value(samples, "tracker_webhooks_received_total", topic="other") == 1
    assert value(samples, "tracker_sync_orders_total", shop=SHOP) >= len(orders)


async def test_polls_put_off_for_lack_of_budget_are_counted(
    stack: Stack, pool: asyncpg.Pool, database_url: str
) -> None:
    numbers = [f"JJD00000000000000020{i}" for i in range(3)]
    stack.dhl.register([timeline(n, [Kind.LABEL, Kind.PICKUP]) for n in numbers])
    for number in numbers:
        stack.store.add_order(fulfillments=[[("DHL Express", number, None)]])
    config = stack.config(database_url)
    config.carriers["dhl"].requests_per_day = 2
    daemon = Daemon(config, pool)
    await daemon.start()
    try:

        async def all_claimed() -> bool:
            return local(daemon, "tracker_claims_total") >= len(numbers)

        await eventually(all_claimed, what="every shipment claimed once", timeout=WAIT)
        samples = await scrape(daemon.url)
    finally:
        await daemon.stop()

    put_off = await pool.fetchval(
        "SELECT count(*) FROM shipments WHERE last_polled_at IS NULL AND lease_owner IS NULL"
        " AND next_poll_at <= now()"
    )
    assert put_off == 1
    assert value(samples, "tracker_polls_total", carrier="dhl", outcome="over_budget") == put_off
    requests = track_requests(stack)
    assert value(samples, "tracker_polls_total", carrier="dhl", outcome="found") == len(requests)
    assert len(requests) == 2
    assert value(samples, "tracker_claims_total") == len(numbers)
    # Put off until the budget renews: still due, in its place in the order.
    assert value(samples, "tracker_due_shipments", carrier="dhl") == put_off


@pytest.fixture
async def metrics_url(pool: asyncpg.Pool) -> AsyncIterator[str]:
    """``/metrics`` alone, on ``pool``, with a short database timeout."""
    app = web.Application()
    source = MetricsSource(Metrics(), pool, ("dhl",), {}, {}, timeout=0.5)
    add_metrics_route(app, source)
    runner, url = await serve(app, 0)
    yield url + "/metrics"
    await runner.cleanup()


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, response.headers["Content-Type"], await response.text()


async def test_a_database_that_does_not_answer_in_time_gives_503_then_recovers(
    metrics_url: str, pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as locker, locker.transaction():
        await locker.execute("LOCK TABLE shipments IN ACCESS EXCLUSIVE MODE")
        status, content_type, text = await get(metrics_url)
    assert status == 503
    assert content_type.startswith("text/plain")
    assert text == "metrics unavailable: the database did not answer within 0.5 s\n"

    status, _, text = await get(metrics_url)
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    (due,) = families["tracker_due_shipments"].samples
    assert due.labels == {"carrier": "dhl"}
    assert due.value == 0


async def test_a_database_that_is_down_gives_503_without_a_traceback(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    app = web.Application()
    add_metrics_route(app, MetricsSource(Metrics(), pool, ("dhl",), {}, {}))
    runner, url = await serve(app, 0)
    try:
        await pool.close()
        status, content_type, text = await get(url + "/metrics")
    finally:
        await runner.cleanup()
    assert status == 503
    assert content_type.startswith("text/plain")
    assert text.startswith("metrics unavailable: the database is unavailable (")
    assert "Traceback" not in text
