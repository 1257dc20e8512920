"""Shopify's bulk operations as the backfill uses them: start one, read its status, wait.

One bulk query runs per app and shop at a time. :func:`start_operation` records the operation it
starts in ``bulk_operations`` at once, and resumes the one recorded there if a run was cut off.
When Shopify answers ``OPERATION_IN_PROGRESS``, an operation running our query (started by a run
whose answer was lost, or by another process) is waited on; anything else raises
:class:`OperationInProgress` with what is running and what to do.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg
from graphql import REMOVE, FieldNode, Visitor, parse, print_ast, visit

from tracker.shopify.client import ShopifyClient, ShopifyError, ShopifyOutcomeUnknown, load_document
from tracker.shopify.sync import ShopRow

log = logging.getLogger(__name__)

BULK_QUERY = "BulkFulfilledOrders"
CUSTOMER_FIELDS = frozenset({"email", "customer"})
"""The order's protected customer data: what FulfilledOrders reads only ``@include(if:
$withCustomer)`` (a bulk query takes no variables, so its other text goes without them)."""
FINISHED = frozenset({"COMPLETED", "FAILED", "CANCELED", "EXPIRED"})


class BackfillError(ShopifyError):
    """The backfill could not start or go on; the message says why and what to do."""


class OperationInProgress(BackfillError):
    """Shopify is running a bulk query for this app that is not ours."""


class UnknownOperation(BackfillError):
    """Shopify does not know a bulk operation id we recorded."""


@dataclass(frozen=True, slots=True)
class BulkStatus:
    """A ``BulkOperation`` as Shopify last described it."""

    gid: str
    status: str
    error_code: str | None
    object_count: int
    url: str | None
    partial_data_url: str | None
    created_at: datetime | None
    query: str | None = None

    @classmethod
    def from_node(cls, node: Mapping[str, Any]) -> BulkStatus:
        return cls(
            gid=str(node["id"]),
            status=str(node.get("status") or "CREATED"),
            error_code=node.get("errorCode"),
            object_count=int(node.get("objectCount") or 0),
            url=node.get("url"),
            partial_data_url=node.get("partialDataUrl"),
            created_at=_parse_time(node.get("createdAt")),
            query=node.get("query"),
        )

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True, slots=True)
class Progress:
    shop: str
    phase: Literal["waiting", "reading"]
    status: str
    done: int
    """Objects Shopify has processed (waiting) or we have read (reading)."""
    total: int | None


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """Backoff of ``node(id:)`` polls: ``first`` seconds, times ``factor``, at most ``longest``."""

    first: float = 1.0
    factor: float = 1.5
    longest: float = 15.0


async def start_operation(
    pool: asyncpg.Pool, client: ShopifyClient, shop: ShopRow, enabled_carriers: Collection[str]
) -> tuple[str, bool]:
    """The id of the bulk operation to wait on, and whether it was started before this call."""
    recorded = await pool.fetchval(
        "SELECT operation_id FROM bulk_operations WHERE shop_id = $1 AND state = 'running'"
        " ORDER BY recorded_at DESC LIMIT 1",
        shop.id,
    )
    if recorded is not None:
        log.info("%s: resuming: waiting on %s, started by an earlier run", shop.domain, recorded)
        return str(recorded), True
    query = bulk_query(customer_data=client.customer_data)
    asked_at = datetime.now(UTC)
    try:
        data = await client.mutate("BulkOperationRunQuery", {"query": query})
    except ShopifyOutcomeUnknown:
        current = await current_operation(client)
        recent = (
            current is not None
            and current.created_at is not None
            and (current.created_at >= asked_at - timedelta(minutes=1))
        )
        if current is None or not _same_query(current.query, query) or not recent:
            raise
        log.info("%s: the answer was lost but %s is ours", shop.domain, current.gid)
        await _record(pool, shop, current, enabled_carriers)
        return current.gid, False
    payload = data["bulkOperationRunQuery"]
    errors: list[dict[str, Any]] = payload.get("userErrors") or []
    if any(error.get("code") == "OPERATION_IN_PROGRESS" for error in errors):
        current = await current_operation(client)
        if current is not None and not current.finished and _same_query(current.query, query):
            log.info("%s: %s is already running our query: waiting on it", shop.domain, current.gid)
            await _record(pool, shop, current, enabled_carriers)
            return current.gid, True
        raise OperationInProgress(_in_progress_message(shop, current))
    if errors or not payload.get("bulkOperation"):
        reasons = "; ".join(str(error.get("message")) for error in errors) or "no operation"
        raise BackfillError(f"{shop.domain}: Shopify refused the bulk query: {reasons}")
    started = BulkStatus.from_node(payload["bulkOperation"])
    await _record(pool, shop, started, enabled_carriers)
    log.info("%s: bulk operation %s started", shop.domain, started.gid)
    return started.gid, False


@functools.cache
def bulk_query(*, customer_data: bool) -> str:
    """The backfill's query; without ``customer_data``, without :data:`CUSTOMER_FIELDS`."""
    text = load_document(BULK_QUERY)
    if customer_data:
        return text

    class WithoutCustomer(Visitor):
        def enter_field(self, node: FieldNode, *_: object) -> object:
            return REMOVE if node.name.value in CUSTOMER_FIELDS else None

    return print_ast(visit(parse(text), WithoutCustomer()))


def _in_progress_message(shop: ShopRow, current: BulkStatus | None) -> str:
    what = "another bulk query"
    if current is not None:
        created = current.created_at.isoformat() if current.created_at else "at an unknown time"
        what = (
            f"bulk operation {current.gid} ({current.status}, created {created}, "
            f"{current.object_count} objects so far)"
        )
    return (
        f"{shop.domain}: Shopify is already running {what} for this app, and it is not the "
        "backfill's. Shopify runs one bulk query per app and shop at a time: wait for it to "
        "finish (or cancel it with bulkOperationCancel), then run `tracker sync --full` again"
    )


def _same_query(theirs: str | None, ours: str) -> bool:
    return theirs is not None and theirs.split() == ours.split()


async def _record(
    pool: asyncpg.Pool, shop: ShopRow, operation: BulkStatus, enabled_carriers: Collection[str]
) -> None:
    await pool.execute(
        """
        INSERT INTO bulk_operations (operation_id, shop_id, enabled_carriers, shopify_status,
                                     created_at)
        VALUES ($1, $2, $3, $4, $5) ON CONFLICT (operation_id) DO NOTHING
        """,
        operation.gid,
        shop.id,
        sorted(enabled_carriers),
        operation.status,
        operation.created_at,
    )


async def current_operation(client: ShopifyClient) -> BulkStatus | None:
    """The app's most recent bulk query (``currentBulkOperation``), if any."""
    data = await client.query("CurrentBulkOperation")
    node = data.get("currentBulkOperation")
    return BulkStatus.from_node(node) if node else None


async def fetch_status(client: ShopifyClient, operation: str) -> BulkStatus:
    data = await client.query("BulkOperation", {"id": operation})
    node = data.get("node")
    if not node:
        raise UnknownOperation(f"{client.domain}: Shopify does not know bulk operation {operation}")
    return BulkStatus.from_node(node)


async def wait_for_operation(
    client: ShopifyClient,
    operation: str,
    shop: ShopRow,
    *,
    poll: PollPolicy | None = None,
    progress: ProgressCallback | None = None,
) -> BulkStatus:
    """Poll ``node(id:)`` with backoff until the operation is COMPLETED, FAILED, ... ."""
    poll = poll or PollPolicy()
    delay = poll.first
    while True:
        status = await fetch_status(client, operation)
        if progress is not None:
            progress(Progress(shop.domain, "waiting", status.status, status.object_count, None))
        if status.finished:
            return status
        log.debug("%s: %s is %s", shop.domain, operation, status.status)
        await asyncio.sleep(delay)
        delay = min(delay * poll.factor, poll.longest)


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
