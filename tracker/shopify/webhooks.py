"""Process the Shopify webhook deliveries that ``POST /webhooks/shopify`` stored.

A webhook's payload is never trusted for state: deliveries come late, out of order and more
than once. Order and fulfillment topics only name the order; it is read fresh from Shopify
(``OrderForSync``) and applied with :func:`tracker.shopify.sync.apply_orders`, in one
transaction with marking the delivery processed. Deliveries of one order are serialized across
replicas by an advisory lock held from the read to the commit, so an older read never lands
after a newer one. ``fulfillment_events/create`` of an event this daemon wrote is its own echo;
any other event tells :mod:`tracker.shopify.writeback_policy` that someone else writes to that
fulfillment. ``bulk_operations/finish`` goes to the bulk backfill.

Claiming moves ``next_attempt_at`` past a lease (``FOR UPDATE SKIP LOCKED``), so replicas share
the work and a crashed worker's deliveries come back. A failure (Shopify unavailable) retries
the delivery with backoff; after ``max_attempts`` it is kept with its error and ``failed_at``.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import asyncpg

from tracker.db import Connection
from tracker.db.connection import reset_on_release
from tracker.shopify.client import ShopifyClient, ShopifyError
from tracker.shopify.sync import ShopRow, apply_orders
from tracker.shopify.webhook_topics import (
    BULK_TOPIC,
    EVENT_TOPIC,
    ORDER_TOPICS,
    event_gids,
    order_gid,
)
from tracker.shopify.writeback_policy import record_foreign_event

log = logging.getLogger(__name__)

BATCH_SIZE = 50
CLAIM_LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 12
RETRY_BASE_SECONDS = 5.0
RETRY_MAX_SECONDS = 3600.0
# An event of ours may be echoed before its write is recorded: look again this much later.
IN_FLIGHT_RECHECK = timedelta(seconds=3)
_ORDER_LOCK = 0x77686B73  # "whks", combined with hashtext(shop id and order id)

BulkHandler = Callable[[asyncpg.Pool, ShopifyClient, ShopRow, str], Awaitable[object]]


@dataclass
class WebhookReport:
    claimed: int = 0
    processed: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0

    def add(self, other: WebhookReport) -> None:
        self.claimed += other.claimed
        self.processed += other.processed
        self.retried += other.retried
        self.failed += other.failed
        self.deferred += other.deferred


@dataclass(frozen=True, slots=True)
class Delivery:
    webhook_id: str
    shop_id: int
    topic: str
    payload: dict[str, Any]
    attempts: int


def retry_delay(attempts: int) -> timedelta:
    """Wait before the next attempt after ``attempts`` failed ones: 5 s doubling, 1 h at most."""
    exponent = min(max(attempts - 1, 0), 20)
    return timedelta(seconds=min(RETRY_BASE_SECONDS * 2**exponent, RETRY_MAX_SECONDS))


async def claim_deliveries(pool: asyncpg.Pool, limit: int, lease: timedelta) -> list[Delivery]:
    """Claim up to ``limit`` due deliveries for ``lease``, oldest first; count the attempt."""
    rows = await pool.fetch(
        """
        UPDATE webhook_deliveries SET attempts = attempts + 1,
               next_attempt_at = now() + $2::interval
        WHERE webhook_id IN (
            SELECT webhook_id FROM webhook_deliveries
            WHERE processed_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
            ORDER BY next_attempt_at, received_at
            LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING webhook_id, shop_id, topic, payload, attempts, received_at
        """,
        limit,
        lease,
    )
    rows = sorted(rows, key=lambda r: (r["received_at"], r["webhook_id"]))
    deliveries = []
    for row in rows:
        payload = json.loads(row["payload"])
        deliveries.append(
            Delivery(
                row["webhook_id"],
                row["shop_id"],
                row["topic"],
                payload if isinstance(payload, dict) else {},
                row["attempts"],
            )
        )
    return deliveries


async def process_deliveries(
    pool: asyncpg.Pool,
    clients_by_shop_id: Mapping[int, ShopifyClient],
    shops: Mapping[int, ShopRow],
    enabled_carriers: Collection[str],
    *,
    batch_size: int = BATCH_SIZE,
    lease: timedelta = CLAIM_LEASE,
    max_attempts: int = MAX_ATTEMPTS,
) -> WebhookReport:
    """Claim one batch of due deliveries and process it; the report says what happened."""
    run = _Run(pool, clients_by_shop_id, shops, list(enabled_carriers), max_attempts)
    deliveries = await claim_deliveries(pool, batch_size, lease)
    run.report.claimed = len(deliveries)
    # Deliveries about the same order are answered by one fresh read of it.
    by_order: dict[tuple[int, str], list[Delivery]] = {}
    for delivery in deliveries:
        if delivery.shop_id not in clients_by_shop_id:
            await run.give_up([delivery], "the shop is no longer configured")
        elif delivery.topic in ORDER_TOPICS:
            order = order_gid(delivery.topic, delivery.payload)
            if order is None:
                await run.give_up([delivery], f"{delivery.topic} payload names no order")
            else:
                by_order.setdefault((delivery.shop_id, order), []).append(delivery)
        elif delivery.topic == EVENT_TOPIC:
            await run.guarded([delivery], run.fulfillment_event(delivery))
        elif delivery.topic == BULK_TOPIC:
            await run.guarded([delivery], run.bulk_finished(delivery))
        else:
            await run.done(pool, [delivery], f"ignored: topic {delivery.topic} is not handled")
    for (shop_id, order), group in by_order.items():
        await run.guarded(group, run.order(shop_id, order, group))
    return run.report


class _Run:
    """One batch: the shared arguments and the report."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        clients: Mapping[int, ShopifyClient],
        shops: Mapping[int, ShopRow],
        enabled: list[str],
        max_attempts: int,
    ) -> None:
        self.pool = pool
        self.clients = clients
        self.shops = shops
        self.enabled = enabled
        self.max_attempts = max_attempts
        self.report = WebhookReport()

    async def guarded(self, deliveries: list[Delivery], work: Awaitable[None]) -> None:
        """Run ``work``; an unexpected error retries its deliveries instead of the batch's."""
        try:
            await work
        except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
            raise  # the database is gone: the claim's lease brings them back
        except Exception as exc:
            log.exception("webhook deliveries %s failed", [d.webhook_id for d in deliveries])
            await self.retry(deliveries, f"{type(exc).__name__}: {exc}")

    async def order(self, shop_id: int, order: str, group: list[Delivery]) -> None:
        client = self.clients[shop_id]
        async with self.pool.acquire() as conn:
            key = f"{shop_id}:{order}"
            reset_on_release(conn)
            await conn.execute("SELECT pg_advisory_lock($1, hashtext($2))", _ORDER_LOCK, key)
            try:
                try:
                    data = await client.query("OrderForSync", {"id": order})
                except ShopifyError as exc:
                    await self.retry(group, f"reading {order}: {exc}")
                    return
                node = data.get("order")
                async with conn.transaction():
                    if node is None:
                        outcome = f"ignored: {order} not found at Shopify"
                    else:
                        applied = await apply_orders(conn, shop_id, [node], self.enabled)
                        outcome = f"applied {order}: {applied.parcels} parcels"
                        if applied.retired:
                            outcome += f", {applied.retired} retired"
                    await self.done(conn, group, outcome)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", _ORDER_LOCK, key)

    async def fulfillment_event(self, delivery: Delivery) -> None:
        event, fulfillment = event_gids(delivery.payload)
        if event is None or fulfillment is None:
            await self.give_up([delivery], f"{EVENT_TOPIC} payload names no event or fulfillment")
            return
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """
                SELECT COALESCE(bool_or(e.shopify_event_id = $3), false) AS ours,
                       COALESCE(bool_or(e.writeback_state = 'sending'), false) AS in_flight
                FROM tracking_events e JOIN shipments s ON s.id = e.shipment_id
                WHERE s.shop_id = $1 AND (s.fulfillment_id = $2 OR e.shopify_event_id = $3)
                """,
                delivery.shop_id,
                fulfillment,
                event,
            )
            assert row is not None
            if row["ours"]:
                await self.done(conn, [delivery], f"ignored: {event} is our own write")
            elif row["in_flight"]:
                # Our write to this fulfillment may have created it; its id is not recorded yet.
                await self.defer(conn, delivery, "an event of ours is being written to it")
            elif await record_foreign_event(conn, delivery.shop_id, fulfillment, event):
                await self.done(conn, [delivery], f"foreign event {event} recorded")
            else:
                await self.done(conn, [delivery], f"ignored: {event} is our own write")

    async def bulk_finished(self, delivery: Delivery) -> None:
        operation = delivery.payload.get("admin_graphql_api_id")
        if not isinstance(operation, str) or not operation:
            await self.give_up([delivery], f"{BULK_TOPIC} payload names no bulk operation")
            return
        handler = _bulk_handler()
        if handler is None:
            await self.done(
                self.pool, [delivery], "ignored: no bulk backfill (tracker.shopify.backfill)"
            )
            return
        shop = self.shops.get(delivery.shop_id)
        if shop is None:
            await self.give_up([delivery], "the shop is no longer configured")
            return
        try:
            await handler(self.pool, self.clients[delivery.shop_id], shop, operation)
        except ShopifyError as exc:
            await self.retry([delivery], f"bulk operation {operation}: {exc}")
            return
        await self.done(self.pool, [delivery], f"bulk operation {operation} handed to backfill")

    async def done(
        self, db: Connection | asyncpg.Pool, deliveries: list[Delivery], outcome: str
    ) -> None:
        await db.execute(
            """
            UPDATE webhook_deliveries SET processed_at = now(), outcome = $2, error = NULL
            WHERE webhook_id = ANY($1::text[]) AND processed_at IS NULL
            """,
            [d.webhook_id for d in deliveries],
            outcome[:1000],
        )
        self.report.processed += len(deliveries)
        for delivery in deliveries:
            log.debug("webhook %s %s: %s", delivery.webhook_id, delivery.topic, outcome)

    async def defer(self, conn: Connection, delivery: Delivery, reason: str) -> None:
        """Look again shortly, without spending an attempt."""
        await conn.execute(
            """
            UPDATE webhook_deliveries SET attempts = attempts - 1, error = $2,
                   next_attempt_at = now() + $3::interval
            WHERE webhook_id = $1 AND processed_at IS NULL
            """,
            delivery.webhook_id,
            reason,
            IN_FLIGHT_RECHECK,
        )
        self.report.deferred += 1

    async def retry(self, deliveries: list[Delivery], error: str) -> None:
        """Try again later with backoff, or give up after the last attempt."""
        last = [d for d in deliveries if d.attempts >= self.max_attempts]
        again = [d for d in deliveries if d.attempts < self.max_attempts]
        if last:
            await self.give_up(last, error)
        if again:
            await self.pool.executemany(
                """
                UPDATE webhook_deliveries SET error = $2, next_attempt_at = now() + $3::interval
                WHERE webhook_id = $1 AND processed_at IS NULL
                """,
                [(d.webhook_id, error[:1000], retry_delay(d.attempts)) for d in again],
            )
            self.report.retried += len(again)
            log.warning(
                "%d webhook deliveries will be retried (attempt %d): %s",
                len(again),
                max(d.attempts for d in again),
                error,
            )

    async def give_up(self, deliveries: list[Delivery], error: str) -> None:
        await self.pool.execute(
            """
            UPDATE webhook_deliveries SET failed_at = now(), error = $2
            WHERE webhook_id = ANY($1::text[]) AND processed_at IS NULL
            """,
            [d.webhook_id for d in deliveries],
            error[:1000],
        )
        self.report.failed += len(deliveries)
        for delivery in deliveries:
            log.error(
                "webhook %s (%s) given up after %d attempts: %s",
                delivery.webhook_id,
                delivery.topic,
                delivery.attempts,
                error,
            )


def _bulk_handler() -> BulkHandler | None:
    """``tracker.shopify.backfill.bulk_operation_finished``, when that module provides it."""
    try:
        module = importlib.import_module("tracker.shopify.backfill")
    except ModuleNotFoundError as exc:
        if exc.name != "tracker.shopify.backfill":
            raise
        return None
    handler = getattr(module, "bulk_operation_finished", None)
    return cast(BulkHandler, handler) if callable(handler) else None


class WebhookProcessor:
    """The daemon's webhook job: process due deliveries until none is left.

    :meth:`notify` is called by the web handler when it stored a delivery; a run under way then
    goes round once more instead of leaving it for the next interval.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        clients_by_shop_id: Mapping[int, ShopifyClient],
        shops: Mapping[int, ShopRow],
        enabled_carriers: Collection[str],
        *,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self._pool = pool
        self._clients = clients_by_shop_id
        self._shops = shops
        self._enabled = list(enabled_carriers)
        self._batch_size = batch_size
        self._running = False
        self._again = False

    def notify(self) -> bool:
        """A delivery was stored; True when no run is under way and one should start now."""
        self._again = True
        return not self._running

    async def run(self) -> WebhookReport:
        total = WebhookReport()
        self._running = True
        try:
            while True:
                self._again = False
                report = await process_deliveries(
                    self._pool,
                    self._clients,
                    self._shops,
                    self._enabled,
                    batch_size=self._batch_size,
                )
                total.add(report)
                if report.claimed < self._batch_size and not self._again:
                    return total
        finally:
            self._running = False
