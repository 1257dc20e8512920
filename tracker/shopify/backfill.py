"""Bulk backfill: every order's tracking numbers through one Shopify bulk operation.

``tracker sync --full`` runs :func:`backfill_shop`:

1. It reads the app's scopes. Without ``read_all_orders`` Shopify shows the app only the last 60
   days of orders: the report, the log and ``shops.notice`` say that older ones were not read.
2. It starts (or resumes) the bulk query ``BulkFulfilledOrders`` and waits for it, polling with
   backoff (:mod:`tracker.shopify.bulk_operations`). A running daemon is told by the
   ``bulk_operations/finish`` webhook instead, through :func:`bulk_operation_finished`.
3. It streams the JSONL result (:mod:`tracker.shopify.bulk_results`) into
   :func:`~tracker.shopify.sync.apply_orders`, ``BATCH_SIZE`` orders per transaction, under the
   shop's sync lock, then sets the sync cursor to the operation's ``createdAt``: the next
   incremental sync re-reads what changed after the snapshot began, so a change the snapshot
   missed or caught half-way is not lost. Partial data (``partialDataUrl``) is applied too but
   leaves the cursor alone, since orders are missing from it. Each operation is read once: the
   outcome is kept in ``bulk_operations``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import aiohttp
import asyncpg

from tracker.db.connection import reset_on_release
from tracker.shopify.bulk_operations import (
    BackfillError,
    BulkStatus,
    OperationInProgress,
    PollPolicy,
    Progress,
    ProgressCallback,
    UnknownOperation,
    fetch_status,
    start_operation,
    wait_for_operation,
)
from tracker.shopify.bulk_results import BulkResultExpired, BulkResultReader
from tracker.shopify.client import ShopifyClient
from tracker.shopify.sync import _SYNC_LOCK as SYNC_LOCK  # the incremental sync's per-shop lock
from tracker.shopify.sync import ShopRow, apply_orders

__all__ = [
    "BackfillError",
    "BackfillReport",
    "OperationInProgress",
    "Outcome",
    "PollPolicy",
    "Progress",
    "backfill_shop",
    "bulk_operation_finished",
    "process_operation",
]

log = logging.getLogger(__name__)

BATCH_SIZE = 500

READ_ALL_ORDERS_NOTICE = (
    "the app lacks the read_all_orders scope: Shopify shows it only orders from the last 60 "
    "days, so older orders are not visible and were not backfilled (grant read_all_orders, "
    "then run `tracker sync --full` again)"
)


class Outcome(StrEnum):
    COMPLETED = "completed"  # the whole result applied, cursor moved to the snapshot's start
    EMPTY = "empty"  # nothing matched: no orders
    PARTIAL = "partial"  # a failed operation's partial data applied; cursor untouched
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELED = "canceled"


@dataclass
class BackfillReport:
    """What one backfill came to, for the CLI, the log and the status table."""

    shop: str
    operation: str
    outcome: Outcome
    status: str
    error_code: str | None = None
    objects: int = 0
    orders: int = 0
    parcels: int = 0
    retired: int = 0
    orphans: int = 0
    cursor: datetime | None = None
    notice: str | None = None
    resumed: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.COMPLETED, Outcome.EMPTY)

    def summary(self) -> str:
        applied = f"{self.orders} orders, {self.parcels} parcels, {self.retired} retired"
        where = f"bulk operation {self.operation}"
        again = "run `tracker sync --full` again"
        code = f" ({self.error_code})" if self.error_code else ""
        if self.outcome is Outcome.COMPLETED:
            since = self.cursor.strftime("%Y-%m-%dT%H:%M:%SZ") if self.cursor else "now"
            text = f"backfill complete: {applied} ({where}); incremental sync goes on from {since}"
        elif self.outcome is Outcome.EMPTY:
            text = f"backfill complete: the store has no orders to read ({where})"
        elif self.outcome is Outcome.PARTIAL:
            text = (
                f"backfill PARTIAL: {where} ended {self.status}{code}; its partial data was "
                f"applied ({applied}) and the sync cursor left as it was: {again}"
            )
        elif self.outcome is Outcome.EXPIRED:
            text = f"backfill FAILED: the result of {where} expired before it was read: {again}"
        elif self.outcome is Outcome.CANCELED:
            text = f"backfill FAILED: {where} was canceled: {again}"
        else:
            text = f"backfill FAILED: {where} failed{code}; nothing was applied: {again}"
        if self.orphans:
            text += f"; {self.orphans} nested lines had no parent in reach and were skipped"
        return text


async def backfill_shop(
    pool: asyncpg.Pool,
    client: ShopifyClient,
    shop: ShopRow,
    enabled_carriers: Collection[str],
    *,
    progress: ProgressCallback | None = None,
    poll: PollPolicy | None = None,
) -> BackfillReport:
    """Backfill every order of ``shop``: start (or resume) a bulk query, wait, apply its result.

    Raises :class:`OperationInProgress` when another bulk query of this app is running, and
    :class:`~tracker.shopify.client.ShopifyError` when Shopify cannot be asked.
    """
    notice = await check_read_all_orders(pool, client, shop)
    operation, resumed = await start_operation(pool, client, shop, enabled_carriers)
    try:
        status = await wait_for_operation(client, operation, shop, poll=poll, progress=progress)
    except UnknownOperation:
        if not resumed:
            raise
        log.warning("%s: Shopify does not know %s any more; starting anew", shop.domain, operation)
        await _forget(pool, operation)
        operation, resumed = await start_operation(pool, client, shop, enabled_carriers)
        status = await wait_for_operation(client, operation, shop, poll=poll, progress=progress)
    if status.error_code == "ACCESS_DENIED" and client.customer_data:
        # Refused for the customer's name and e-mail (protected customer data, which the
        # incremental sync may not have met yet in this process): once more without them.
        client.without_customer_data()
        await _forget(pool, operation)
        operation, resumed = await start_operation(pool, client, shop, enabled_carriers)
        status = await wait_for_operation(client, operation, shop, poll=poll, progress=progress)
    report = await process_operation(
        pool, shop, status, enabled_carriers=enabled_carriers, progress=progress
    )
    report.notice, report.resumed = notice, resumed
    return report


async def _forget(pool: asyncpg.Pool, operation: str) -> None:
    """Mark a recorded operation failed without reading it: the backfill starts another."""
    await pool.execute(
        "UPDATE bulk_operations SET state = 'failed', finished_at = now() WHERE operation_id = $1",
        operation,
    )


async def check_read_all_orders(
    pool: asyncpg.Pool, client: ShopifyClient, shop: ShopRow
) -> str | None:
    """The notice to show when the app lacks ``read_all_orders`` (stored on the shop row)."""
    data = await client.query("AppAccessScopes")
    scopes = {s.get("handle") for s in data["currentAppInstallation"]["accessScopes"]}
    notice = None if "read_all_orders" in scopes else READ_ALL_ORDERS_NOTICE
    await pool.execute("UPDATE shops SET notice = $2 WHERE id = $1", shop.id, notice)
    if notice is not None:
        log.warning("%s: %s", shop.domain, notice)
    return notice


async def bulk_operation_finished(
    pool: asyncpg.Pool,
    client: ShopifyClient,
    shop: ShopRow,
    operation_gid: str,
    *,
    enabled_carriers: Collection[str] | None = None,
) -> None:
    """The ``bulk_operations/finish`` webhook: read the result of one of our operations.

    Operations we did not record are ignored; one already read is not read again. Carriers
    default to those of the run that started the operation.
    """
    state = await pool.fetchval(
        "SELECT state FROM bulk_operations WHERE operation_id = $1 AND shop_id = $2",
        operation_gid,
        shop.id,
    )
    if state is None:
        log.info("%s: bulk operation %s is not a backfill of ours", shop.domain, operation_gid)
        return
    if state != "running":
        log.info("%s: bulk operation %s was already read", shop.domain, operation_gid)
        return
    status = await fetch_status(client, operation_gid)
    if not status.finished:
        log.info("%s: %s is still %s", shop.domain, operation_gid, status.status)
        return
    await process_operation(pool, shop, status, enabled_carriers=enabled_carriers)


async def process_operation(
    pool: asyncpg.Pool,
    shop: ShopRow,
    status: BulkStatus,
    *,
    enabled_carriers: Collection[str] | None = None,
    progress: ProgressCallback | None = None,
    batch_size: int = BATCH_SIZE,
) -> BackfillReport:
    """Apply a finished operation's result once, under the shop's sync lock."""
    async with pool.acquire() as lock:
        reset_on_release(lock)
        await lock.execute("SELECT pg_advisory_lock($1, $2)", SYNC_LOCK, shop.id)
        try:
            row = await lock.fetchrow(
                "SELECT * FROM bulk_operations WHERE operation_id = $1", status.gid
            )
            if row is not None and row["state"] != "running":
                return _report_from_row(shop, row)
            if enabled_carriers is None:
                enabled_carriers = list(row["enabled_carriers"]) if row is not None else []
            report = await _apply_result(pool, shop, status, enabled_carriers, progress, batch_size)
            async with lock.transaction():
                await lock.execute(
                    """
                    UPDATE bulk_operations SET state = $2, shopify_status = $3, error_code = $4,
                           object_count = $5, orders = $6, parcels = $7, retired = $8,
                           finished_at = now()
                    WHERE operation_id = $1
                    """,
                    status.gid,
                    report.outcome.value,
                    status.status,
                    status.error_code,
                    status.object_count,
                    report.orders,
                    report.parcels,
                    report.retired,
                )
                if report.ok and status.created_at is not None:
                    await lock.execute(
                        "UPDATE shops SET sync_cursor = $2, last_sync_at = now(),"
                        " last_sync_error = NULL WHERE id = $1",
                        shop.id,
                        status.created_at,
                    )
                    report.cursor = status.created_at
        finally:
            await lock.execute("SELECT pg_advisory_unlock($1, $2)", SYNC_LOCK, shop.id)
    _log_report(report)
    return report


async def _apply_result(
    pool: asyncpg.Pool,
    shop: ShopRow,
    status: BulkStatus,
    enabled_carriers: Collection[str],
    progress: ProgressCallback | None,
    batch_size: int,
) -> BackfillReport:
    report = BackfillReport(shop.domain, status.gid, Outcome.FAILED, status.status)
    report.error_code = status.error_code
    if status.partial_data_url:  # incomplete whatever the status: read, but no cursor
        report.outcome = Outcome.PARTIAL
        url = status.url if status.status == "COMPLETED" and status.url else status.partial_data_url
    elif status.status == "COMPLETED" and status.url:
        report.outcome, url = Outcome.COMPLETED, status.url
    elif status.status == "COMPLETED":
        report.outcome = Outcome.EMPTY
        return report
    else:
        report.outcome = {"EXPIRED": Outcome.EXPIRED, "CANCELED": Outcome.CANCELED}.get(
            status.status, Outcome.FAILED
        )
        return report
    total = status.object_count or None
    enabled = list(enabled_carriers)
    async with aiohttp.ClientSession() as http:  # no Shopify credentials for the file's host
        reader = BulkResultReader(http, url)
        try:
            async for batch in reader.root_batches(batch_size):
                async with pool.acquire() as conn, conn.transaction():
                    applied = await apply_orders(conn, shop.id, batch, enabled)
                report.orders += len(batch)
                report.parcels += applied.parcels
                report.retired += applied.retired
                if progress is not None:
                    progress(
                        Progress(shop.domain, "reading", status.status, reader.delivered, total)
                    )
        except BulkResultExpired as exc:
            log.warning("%s: %s: %s", shop.domain, status.gid, exc)
            report.outcome = Outcome.EXPIRED
        report.objects, report.orphans = reader.lines, reader.orphans
    return report


def _report_from_row(shop: ShopRow, row: asyncpg.Record) -> BackfillReport:
    outcome = Outcome(row["state"])
    return BackfillReport(
        shop=shop.domain,
        operation=row["operation_id"],
        outcome=outcome,
        status=row["shopify_status"] or "",
        error_code=row["error_code"],
        objects=int(row["object_count"] or 0),
        orders=int(row["orders"]),
        parcels=int(row["parcels"]),
        retired=int(row["retired"]),
        cursor=row["created_at"] if outcome in (Outcome.COMPLETED, Outcome.EMPTY) else None,
    )


def _log_report(report: BackfillReport) -> None:
    level = logging.INFO if report.ok else logging.WARNING
    log.log(level, "%s: %s", report.shop, report.summary())
