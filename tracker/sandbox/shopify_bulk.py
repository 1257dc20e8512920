"""Bulk operations in the Shopify sandbox: ``bulkOperationRunQuery`` and its JSONL result.

``bulkOperationRunQuery(query:)`` checks the inner query (:mod:`shopify_bulk_query`), refuses a
second operation while one runs (``OPERATION_IN_PROGRESS``), and runs it as a background task:
CREATED, RUNNING (``objectCount`` growing), then COMPLETED with a ``url`` to a JSONL file served
by the sandbox at ``/_sandbox/bulk/<id>.jsonl`` (signed, and refused once expired), or with
``url`` null when nothing matched. ``node(id:)`` and ``currentBulkOperation`` read it back.

Faults (``store.set_faults(...)`` or ``POST /_sandbox/faults``), each taken by the next operation:

* ``bulk_fail_next``: FAILED with ``errorCode`` INTERNAL_SERVER_ERROR, no data;
* ``bulk_expire_next``: EXPIRED (the result URL already gone);
* ``bulk_partial_next``: FAILED with ``errorCode`` TIMEOUT after half the orders, their lines at
  ``partialDataUrl`` (Shopify gives partial data only for failed operations);
* ``bulk_slow_seconds``: stays RUNNING that long first (:meth:`BulkOperations.release_slow`
  ends the wait early).

When an operation finishes, the store's webhook subscribers get ``bulk_operations/finish``
(:mod:`shopify_webhooks`), and so does every callable in :attr:`BulkOperations.finish_listeners`
(tests, or anything else that wants to know in-process).

The GraphQL fields and the result-file route are in :mod:`shopify_bulk_api`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphql import ExecutionResult, GraphQLSchema, execute

from tracker.sandbox.order_search import order_matches
from tracker.sandbox.search_query import SearchSyntaxError, parse_search_query
from tracker.sandbox.shopify_bulk_query import (
    BulkPlan,
    BulkQueryError,
    connection_nodes,
    flatten,
    plan_bulk_query,
)
from tracker.sandbox.shopify_models import gid

if TYPE_CHECKING:
    from tracker.sandbox.shopify_store import ShopifyStore

log = logging.getLogger(__name__)

BULK_OPERATION = "BulkOperation"
BULK_FAULT_NAMES = ("bulk_fail_next", "bulk_expire_next", "bulk_partial_next", "bulk_slow_seconds")
FINISH_TOPIC = "bulk_operations/finish"
IN_PROGRESS = frozenset({"CREATED", "RUNNING", "CANCELING"})
WINDOW = 250  # root objects executed at once
URL_LIFETIME = timedelta(days=7)
DEFAULT_ACCESS_SCOPES = frozenset(
    {"read_orders", "read_all_orders", "read_fulfillments", "write_fulfillments"}
)
RECENT_ORDERS = timedelta(days=60)
"""Without ``read_all_orders`` an app sees only orders created this recently."""


@dataclass
class BulkOperation:
    """One bulk query as ``BulkOperation`` shows it, plus where its result file is."""

    id: int
    query: str
    api_version: str
    created_at: datetime
    status: str = "CREATED"
    error_code: str | None = None
    object_count: int = 0
    root_object_count: int = 0
    file_size: int | None = None
    completed_at: datetime | None = None
    type: str = "QUERY"
    path: Path | None = None
    partial: bool = False
    """The file holds the partial data of a failed operation (``partialDataUrl``)."""
    expires_at: datetime | None = None
    fault: str | None = None
    hold_until: float = 0.0
    signature: str = field(default_factory=lambda: secrets.token_hex(16))

    @property
    def gid(self) -> str:
        return gid(BULK_OPERATION, self.id)

    @property
    def in_progress(self) -> bool:
        return self.status in IN_PROGRESS

    def file_url(self, base_url: str) -> str:
        expires = int(self.expires_at.timestamp()) if self.expires_at else 0
        query = f"expires={expires}&signature={self.signature}"
        return f"{base_url}/_sandbox/bulk/{self.id}.jsonl?{query}"


class BulkUserError(Exception):
    def __init__(self, code: str, message: str, field: list[str] | None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class BulkOperations:
    """A store's bulk operations: one bulk query at a time, results in a temporary directory."""

    def __init__(self, store: ShopifyStore) -> None:
        self._store = store
        self.operations: dict[int, BulkOperation] = {}
        self.base_url = ""
        """Where clients reach the sandbox (set from each GraphQL request)."""
        self.url_lifetime = URL_LIFETIME
        self.finish_listeners: list[Callable[[dict[str, Any]], object]] = []
        self.bulk_fail_next = 0
        self.bulk_expire_next = 0
        self.bulk_partial_next = 0
        self.bulk_slow_seconds = 0.0
        self._next_id = 4_100_001
        self._tasks: set[asyncio.Task[None]] = set()
        self._released = asyncio.Event()
        self._directory: Path | None = None

    # -- faults --------------------------------------------------------------------------------

    def set_faults(self, **values: float) -> None:
        for name, value in values.items():
            if name not in BULK_FAULT_NAMES:
                known = ", ".join(BULK_FAULT_NAMES)
                raise ValueError(f"unknown bulk fault {name!r}; known: {known}")
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"fault {name} needs a number >= 0, not {value!r}")
            if name != "bulk_slow_seconds" and not isinstance(value, int):
                raise ValueError(f"fault {name} needs a count >= 0, not {value!r}")
            setattr(self, name, value)

    def faults(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in BULK_FAULT_NAMES}

    def take_faults(self, counts: dict[str, int]) -> dict[str, int]:
        """Set the bulk faults among ``counts`` (removing them from it); all of them, as ints."""
        self.set_faults(
            **{name: counts.pop(name) for name in list(counts) if name in BULK_FAULT_NAMES}
        )
        return {name: int(value) for name, value in self.faults().items()}

    def release_slow(self) -> None:
        """Let operations held RUNNING by ``bulk_slow_seconds`` go on now."""
        self._released.set()
        self._released = asyncio.Event()

    # -- reading -------------------------------------------------------------------------------

    def get(self, operation_id: int) -> BulkOperation | None:
        operation = self.operations.get(operation_id)
        if operation is not None:
            self._check_expiry(operation)
        return operation

    def current(self, type_: str = "QUERY") -> BulkOperation | None:
        """The most recent operation of that type (``currentBulkOperation``)."""
        mine = [op for op in self.operations.values() if op.type == type_]
        return self.get(mine[-1].id) if mine else None

    def _check_expiry(self, operation: BulkOperation) -> None:
        if operation.expires_at is not None and self._store.now() >= operation.expires_at:
            self.expire(operation)

    def expire(self, operation: BulkOperation) -> None:
        """The result URL expires: status EXPIRED, the file is gone."""
        if operation.in_progress:
            return
        operation.status = "EXPIRED"
        operation.expires_at = None
        if operation.path is not None:
            operation.path.unlink(missing_ok=True)
            operation.path = None

    def cancel(self, operation: BulkOperation) -> None:
        """``bulkOperationCancel``: a running operation stops as CANCELED."""
        if operation.in_progress:
            operation.status = "CANCELING"

    # -- running -------------------------------------------------------------------------------

    def run_query(self, query: str, api_version: str) -> BulkOperation:
        """Start a bulk query; :class:`BulkUserError` when Shopify would refuse it."""
        running = next((op for op in self.operations.values() if op.in_progress), None)
        if running is not None:
            raise BulkUserError(
                "OPERATION_IN_PROGRESS",
                "A bulk query operation for this app and shop is already in progress: "
                f"{running.gid}.",
                None,
            )
        from tracker.sandbox.shopify_schema import schema_for_version  # imports the store

        try:
            plan = plan_bulk_query(schema_for_version(api_version), query)
            search = parse_search_query(plan.search)
        except (BulkQueryError, SearchSyntaxError) as error:
            raise BulkUserError("INVALID", str(error), ["query"]) from None
        operation = BulkOperation(self._next_id, query, api_version, self._stamp())
        self._next_id += 1
        operation.fault = self._take_fault()
        if self.bulk_slow_seconds > 0:
            operation.hold_until = time.monotonic() + self.bulk_slow_seconds
            self.bulk_slow_seconds = 0.0
        self.operations[operation.id] = operation
        roots = [o for o in self._store.visible_orders() if order_matches(o, search)]
        roots.sort(key=lambda order: order.id)
        task = asyncio.get_running_loop().create_task(self._run(operation, plan, roots))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info("sandbox %s: bulk operation %s created", self._store.domain, operation.gid)
        return operation

    def _take_fault(self) -> str | None:
        for fault in ("bulk_fail_next", "bulk_expire_next", "bulk_partial_next"):
            if getattr(self, fault) > 0:
                setattr(self, fault, getattr(self, fault) - 1)
                return fault
        return None

    def _stamp(self) -> datetime:
        return self._store.now().replace(microsecond=0)

    async def _run(self, operation: BulkOperation, plan: BulkPlan, roots: list[Any]) -> None:
        try:
            await asyncio.sleep(0)
            if operation.status == "CREATED":  # not canceled in the meantime
                operation.status = "RUNNING"
            while operation.status == "RUNNING" and time.monotonic() < operation.hold_until:
                released = self._released
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(released.wait(), operation.hold_until - time.monotonic())
                if released.is_set():
                    break
            if operation.fault == "bulk_partial_next":
                roots = roots[: max(1, len(roots) // 2)] if roots else roots
            if operation.fault != "bulk_fail_next":
                await self._write(operation, plan, roots)
            self._finish(operation)
        except asyncio.CancelledError:
            raise
        except AccessDenied:  # protected customer data the app may not read: Shopify's code
            operation.status, operation.error_code = "FAILED", "ACCESS_DENIED"
            operation.completed_at = None
        except Exception:
            log.exception("sandbox bulk operation %s broke", operation.gid)
            operation.status, operation.error_code = "FAILED", "INTERNAL_SERVER_ERROR"
            operation.completed_at = None
        self._notify(operation)

    def _notify(self, operation: BulkOperation) -> None:
        """Send ``bulk_operations/finish`` to the store's subscribers and to every listener."""
        payload = self.webhook_payload(operation)
        self._store.webhooks.emit(FINISH_TOPIC, lambda: payload)
        for listener in list(self.finish_listeners):
            try:
                outcome = listener(payload)
                if asyncio.iscoroutine(outcome):
                    task = asyncio.get_running_loop().create_task(outcome)
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            except Exception:
                log.exception("bulk_operations/finish listener failed for %s", operation.gid)

    async def _write(self, operation: BulkOperation, plan: BulkPlan, roots: list[Any]) -> None:
        from tracker.sandbox.shopify_schema import RequestContext, schema_for_version

        schema = schema_for_version(operation.api_version)
        path = self._results_dir() / f"{operation.id}-{secrets.token_hex(4)}.jsonl"
        operation.path = path
        path.touch()
        for start in range(0, len(roots), WINDOW):
            if operation.status != "RUNNING":
                return
            context = RequestContext(self._store, operation.api_version)
            context.bulk_nodes = roots[start : start + WINDOW]
            lines = _execute_window(schema, plan, context)
            _append(path, lines)
            operation.object_count += len(lines)
            operation.root_object_count += len(context.bulk_nodes)
            await asyncio.sleep(0)

    def _finish(self, operation: BulkOperation) -> None:
        if operation.status == "CANCELING":
            operation.status = "CANCELED"
            self._drop_file(operation)
            return
        now = self._stamp()
        if operation.fault == "bulk_fail_next":
            operation.status, operation.error_code = "FAILED", "INTERNAL_SERVER_ERROR"
            return
        if operation.fault == "bulk_partial_next":
            operation.status, operation.error_code = "FAILED", "TIMEOUT"
            operation.partial = True
        else:
            operation.status = "COMPLETED"
            operation.completed_at = now
        if operation.object_count == 0:
            self._drop_file(operation)
        elif operation.path is not None:
            operation.file_size = operation.path.stat().st_size
            operation.expires_at = now + self.url_lifetime
        if operation.fault == "bulk_expire_next":
            self.expire(operation)
        log.info(
            "sandbox %s: bulk operation %s %s (%d objects)",
            self._store.domain,
            operation.gid,
            operation.status,
            operation.object_count,
        )

    def _drop_file(self, operation: BulkOperation) -> None:
        if operation.path is not None:
            operation.path.unlink(missing_ok=True)
            operation.path = None

    def _results_dir(self) -> Path:
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="shopify-sandbox-bulk-"))
        return self._directory

    def webhook_payload(self, operation: BulkOperation) -> dict[str, Any]:
        """The ``bulk_operations/finish`` webhook body Shopify sends for this operation."""

        def stamp(moment: datetime | None) -> str | None:
            return None if moment is None else moment.isoformat().replace("+00:00", "Z")

        return {
            "admin_graphql_api_id": operation.gid,
            "completed_at": stamp(operation.completed_at),
            "created_at": stamp(operation.created_at),
            "error_code": operation.error_code.lower() if operation.error_code else None,
            "status": operation.status.lower(),
            "type": operation.type.lower(),
        }

    async def close(self) -> None:
        """Stop running operations and delete every result file."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None


class AccessDenied(Exception):
    """The query reads a field the app may not (Shopify fails the operation ACCESS_DENIED)."""


def _execute_window(schema: GraphQLSchema, plan: BulkPlan, context: Any) -> list[str]:
    """JSONL lines of one window of root objects (the sandbox's resolvers are synchronous)."""
    result = execute(
        schema, plan.document, context_value=context, operation_name=plan.operation_name
    )
    assert isinstance(result, ExecutionResult)
    if result.errors:
        if any((e.extensions or {}).get("code") == "ACCESS_DENIED" for e in result.errors):
            raise AccessDenied(result.errors[0].message)
        raise RuntimeError(f"bulk query failed: {result.errors[0].message}")
    data = result.data or {}
    return [
        json.dumps(line, separators=(",", ":"))
        for node in connection_nodes(data.get(plan.root_key))
        for line in flatten(node, plan)
    ]


def _append(path: Path, lines: list[str]) -> None:
    if lines:
        with path.open("a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")


def window_connection(nodes: list[Any]) -> dict[str, Any]:
    """A bulk window as a connection: every node, no further pages."""
    return {
        "edges": [{"cursor": "", "node": node} for node in nodes],
        "nodes": nodes,
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        },
    }
