"""Write each new tracking event to Shopify exactly once (``fulfillmentEventCreate``).

Shopify has no idempotency key, so exactly-once rests on local state (DESIGN.md):

1. An event is marked ``sending`` (committed) before the mutation is sent.
2. Success marks it ``written`` with Shopify's event id; ``userErrors`` mark it ``failed``.
3. A ``sending`` event whose outcome is unknown (lost answer, 5xx or INTERNAL_SERVER_ERROR,
   crash) is never retried blind: once its lease has passed, the fulfillment's events are read
   from Shopify. A matching event (same status, same ``happenedAt`` to the second, not already
   claimed by another local event) makes it ``written``; otherwise it goes back to ``pending``
   (:mod:`tracker.shopify.writeback_reconcile`).

Per shop, one writer at a time (advisory lock); per fulfillment, events go in ``happened_at``
order and a fulfillment with an unresolved ``sending`` event waits.

When the store refuses the token (401), is frozen, locked or inactive (402, 423, SHOP_INACTIVE:
:class:`~tracker.shopify.client.ShopifyShopClosed`, handled as a refused token) or stays
unavailable through the client's retries, the pass stops for the whole store: its other
fulfillments would only meet the same answer. A refusal is no attempt of the event's (it is not
failed however long the merchant takes to fix it); its pending events carry the reason until
they are written.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from tracker.config import WritebackConfig
from tracker.db.connection import reset_on_release
from tracker.domain import Status, status_for_api_version
from tracker.shopify.client import (
    GraphQLError,
    ShopifyAuthError,
    ShopifyClient,
    ShopifyOutcomeUnknown,
    ShopifyUnavailable,
)
from tracker.shopify.fulfillment_events import fetch_remote_events, shopify_time
from tracker.shopify.sync import ShopRow
from tracker.shopify.writeback_policy import (
    foreign_event,
    mark_checked,
    needs_check,
    record_foreign_event,
    skip_pending,
)
from tracker.shopify.writeback_reconcile import mark_written, reconcile_sending

log = logging.getLogger(__name__)

_WRITE_LOCK = 0x77726974  # "writ", combined with the shop id
PENDING_PER_DRAIN = 2000

_PENDING = """
SELECT e.id, COALESCE(e.writeback_status, e.status) AS status, e.happened_at,
       CASE WHEN e.writeback_status IS DISTINCT FROM NULL AND e.writeback_status <> e.status
            THEN '' ELSE e.message END AS message,
       e.city, e.province, e.country, e.zip,
       e.estimated_delivery_at, e.writeback_next_at <= now() AS due, e.writeback_attempts,
       s.fulfillment_id, s.carrier
FROM tracking_events e JOIN shipments s ON s.id = e.shipment_id
WHERE s.shop_id = $1 AND e.writeback_state = 'pending'
ORDER BY s.fulfillment_id, e.happened_at, e.id
LIMIT $2
"""


@dataclass
class WriteReport:
    written: int = 0
    failed: int = 0
    deferred: int = 0
    reconciled: int = 0
    reverted: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PendingEvent:
    id: int
    fulfillment_id: str
    status: Status
    happened_at: datetime
    message: str
    city: str | None
    province: str | None
    country: str | None
    zip: str | None
    estimated_delivery_at: datetime | None
    attempts: int
    carrier: str | None


def event_input(event: PendingEvent, api_version: str) -> dict[str, Any]:
    """The ``FulfillmentEventInput`` for one event, with only the fields we know."""
    fields: dict[str, Any] = {
        "fulfillmentId": event.fulfillment_id,
        "status": status_for_api_version(event.status, api_version).shopify,
        "happenedAt": shopify_time(event.happened_at),
    }
    optional = {
        "message": event.message or None,
        "city": event.city,
        "province": event.province,
        "country": event.country,
        "zip": event.zip,
        "estimatedDeliveryAt": shopify_time(event.estimated_delivery_at)
        if event.estimated_delivery_at
        else None,
    }
    fields.update({k: v for k, v in optional.items() if v})
    return fields


def retry_delay(attempts: int) -> timedelta:
    """After a transport failure: 10 s, 20 s, 40 s, ... capped at 30 min."""
    return timedelta(seconds=min(10 * 2 ** max(attempts - 1, 0), 1800))


class Writer:
    """Drains pending events to Shopify for every configured shop."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        clients: Mapping[int, ShopifyClient],
        shops: Mapping[int, ShopRow],
        config: WritebackConfig,
        worker: str,
    ) -> None:
        self._pool = pool
        self._clients = clients
        self._shops = shops
        self._config = config
        self._worker = worker

    async def drain(self) -> WriteReport:
        report = WriteReport()
        for shop_id, client in self._clients.items():
            await self.drain_shop(self._shops[shop_id], client, report)
        return report

    async def drain_shop(self, shop: ShopRow, client: ShopifyClient, report: WriteReport) -> None:
        async with self._pool.acquire() as lock_conn:
            reset_on_release(lock_conn)
            if not await lock_conn.fetchval(
                "SELECT pg_try_advisory_lock($1, $2)", _WRITE_LOCK, shop.id
            ):
                return
            try:
                blocked = await reconcile_sending(
                    self._pool, shop, client, self._config.lease, report
                )
                await self._send_pending(shop, client, blocked, report)
            except ShopifyAuthError as exc:
                report.errors.append(str(exc))
                await self._show_refusal(shop, str(exc))
                if not exc.paused:  # the client logged the refusal itself
                    log.warning("write-back to %s stopped: %s", shop.domain, exc)
            except ShopifyUnavailable as exc:
                report.errors.append(str(exc))
                log.warning("write-back to %s paused until the next pass: %s", shop.domain, exc)
            finally:
                await lock_conn.execute("SELECT pg_advisory_unlock($1, $2)", _WRITE_LOCK, shop.id)

    async def _send_pending(
        self, shop: ShopRow, client: ShopifyClient, blocked: set[str], report: WriteReport
    ) -> None:
        rows = await self._pool.fetch(_PENDING, shop.id, PENDING_PER_DRAIN)
        queues: dict[str, list[PendingEvent]] = defaultdict(list)
        stopped: set[str] = set(blocked)
        for row in rows:
            fid = row["fulfillment_id"]
            if fid in stopped:
                continue
            if not row["due"]:
                stopped.add(fid)  # an earlier event waits for its retry: keep the order
                continue
            queues[fid].append(
                PendingEvent(
                    row["id"],
                    fid,
                    Status(row["status"]),
                    row["happened_at"],
                    row["message"],
                    row["city"],
                    row["province"],
                    row["country"],
                    row["zip"],
                    row["estimated_delivery_at"],
                    row["writeback_attempts"],
                    row["carrier"],
                )
            )
        slots = asyncio.Semaphore(self._config.concurrency)
        halted: list[ShopifyAuthError | ShopifyUnavailable] = []

        async def write_fulfillment(events: list[PendingEvent]) -> None:
            async with slots:
                try:
                    if halted or not await self._allowed(shop, client, events[0], report):
                        return
                    for event in events:
                        if halted or not await self._write_one(shop, client, event, report):
                            return
                except (ShopifyAuthError, ShopifyUnavailable) as exc:
                    halted.append(exc)  # the store's answer, not the fulfillment's: stop them all

        writes = [asyncio.ensure_future(write_fulfillment(q)) for q in queues.values()]
        try:
            await asyncio.gather(*writes)
        finally:
            # One failed (the database went away): the others stop rather than write on
            # unrecorded; a write cut short stays 'sending' and is checked against Shopify.
            for write in writes:
                write.cancel()
            await asyncio.gather(*writes, return_exceptions=True)
        if halted:
            raise next((e for e in halted if isinstance(e, ShopifyAuthError)), halted[0])

    async def _allowed(
        self, shop: ShopRow, client: ShopifyClient, first: PendingEvent, report: WriteReport
    ) -> bool:
        """Apply the store's write-back policy to a fulfillment before writing to it."""
        fid = first.fulfillment_id
        policy = client.shop.writeback_policy(first.carrier)
        if policy == "always":
            return True
        async with self._pool.acquire() as conn:
            if policy == "never":
                reason = f"write-back is off ('never') for {first.carrier} on this store"
                report.skipped += await skip_pending(conn, shop.id, fid, reason)
                return False
            foreign = await foreign_event(conn, shop.id, fid)
            if foreign is None and await needs_check(conn, shop.id, fid):
                try:
                    remote = await fetch_remote_events(client, fid)
                except GraphQLError as exc:
                    log.warning(
                        "cannot read %s's events yet: %s", fid, exc, extra={"fulfillment_id": fid}
                    )
                    return False
                for event_id, _, _ in remote:
                    if await record_foreign_event(conn, shop.id, fid, event_id):
                        foreign = event_id
                        break
                else:
                    await mark_checked(conn, shop.id, fid)
            if foreign is not None:
                reason = (
                    f"Shopify or another app already writes this fulfillment's events ({foreign}):"
                    " tracked here, not written, so the customer never sees a scan twice"
                )
                report.skipped += await skip_pending(conn, shop.id, fid, reason)
                return False
        return True

    async def _write_one(
        self, shop: ShopRow, client: ShopifyClient, event: PendingEvent, report: WriteReport
    ) -> bool:
        """Send one event; False when this fulfillment must stop for now."""
        claimed = await self._pool.execute(
            """
            UPDATE tracking_events SET writeback_state = 'sending', writeback_owner = $2,
                   writeback_started_at = now(), writeback_attempts = writeback_attempts + 1
            WHERE id = $1 AND writeback_state = 'pending'
            """,
            event.id,
            self._worker,
        )
        if claimed != "UPDATE 1":
            return False
        ids = {"event_id": event.id, "fulfillment_id": event.fulfillment_id}
        try:
            data = await client.mutate(
                "FulfillmentEventCreate",
                {"fulfillmentEvent": event_input(event, shop.api_version)},
            )
        except ShopifyOutcomeUnknown as exc:
            # Leave it 'sending': after the lease, reconcile_sending reads Shopify to decide.
            log.warning(
                "event %s: outcome unknown (%s); will check Shopify", event.id, exc, extra=ids
            )
            report.deferred += 1
            return False
        except ShopifyUnavailable as exc:
            await self._back_to_pending(event, str(exc), report)
            raise
        except GraphQLError as exc:
            await self._back_to_pending(event, str(exc), report)
            return False
        except ShopifyAuthError as exc:
            # Refused before it ran (token, closed shop), not the event's fault: no attempt, no
            # backoff of its own (the client's pause on the store paces the next try).
            await self._pool.execute(
                """
                UPDATE tracking_events SET writeback_state = 'pending', writeback_owner = NULL,
                       writeback_attempts = GREATEST(writeback_attempts - 1, 0),
                       writeback_error = $2, writeback_next_at = now()
                WHERE id = $1
                """,
                event.id,
                str(exc)[:1000],
            )
            raise
        # Cancelled mid-call (shutdown): the outcome is unknown, so the event stays 'sending'.
        payload = data.get("fulfillmentEventCreate") or {}
        errors = payload.get("userErrors") or []
        created = payload.get("fulfillmentEvent") or {}
        if errors or not created.get("id"):
            reason = "; ".join(str(e.get("message")) for e in errors) or "no event returned"
            await self._pool.execute(
                """
                UPDATE tracking_events SET writeback_state = 'failed', writeback_error = $2,
                       writeback_owner = NULL
                WHERE id = $1
                """,
                event.id,
                f"Shopify refused the event: {reason}"[:1000],
            )
            report.failed += 1
            log.warning(
                "Shopify refused event %s on %s: %s",
                event.id,
                event.fulfillment_id,
                reason,
                extra=ids,
            )
            return True
        await mark_written(self._pool, event.id, str(created["id"]))
        report.written += 1
        return True

    async def _show_refusal(self, shop: ShopRow, reason: str) -> None:
        """Every pending event of the store says why it waits (shipment page and API)."""
        await self._pool.execute(
            """
            UPDATE tracking_events e SET writeback_error = $2
            FROM shipments s
            WHERE s.id = e.shipment_id AND s.shop_id = $1 AND e.writeback_state = 'pending'
              AND e.writeback_error IS DISTINCT FROM $2
            """,
            shop.id,
            reason[:1000],
        )

    async def _back_to_pending(self, event: PendingEvent, reason: str, report: WriteReport) -> None:
        attempts = event.attempts + 1
        final = attempts >= self._config.max_attempts
        await self._pool.execute(
            """
            UPDATE tracking_events SET writeback_state = $2, writeback_error = $3,
                   writeback_owner = NULL, writeback_next_at = now() + $4::interval
            WHERE id = $1
            """,
            event.id,
            "failed" if final else "pending",
            (f"gave up after {attempts} attempts: " if final else "") + reason[:900],
            retry_delay(attempts),
        )
        if final:
            report.failed += 1
