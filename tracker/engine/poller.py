"""One poll sweep: claim due shipments, ask their carriers in batches, record what came back.

Claims are leases in PostgreSQL (``FOR UPDATE SKIP LOCKED``), so any number of workers share
the work and a dead worker's claims expire. Each batch's results land in one transaction:
new events (deduplicated by key), the shipment's status, and its next poll, lease cleared.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

from carriers.base import (
    Adapter,
    CarrierAuthError,
    CarrierError,
    CarrierSettings,
    CarrierUnavailable,
    Outcome,
    TrackResult,
)
from tracker.config import PollingConfig, WritebackConfig
from tracker.domain import Status
from tracker.engine.budget import next_budget_day, reserve_up_to
from tracker.engine.circuit import open_circuits, record_failure, record_success
from tracker.engine.claims import ClaimedShipment, claim_due
from tracker.engine.pacing import take_slots
from tracker.engine.policy import PollFacts, decide
from tracker.engine.release import daily_quota, postpone, release_failed
from tracker.engine.story import MULTI_PARCEL, lock_multi_parcel, tell_story
from tracker.text import clean_text

log = logging.getLogger(__name__)

Answer = Mapping[str, TrackResult] | Exception
"""What one request to a carrier gave: its results, or why there are none."""

RECORD_GROUP = 100
"""Shipments reserved against the daily budget together (and stored together when they can be)."""
MAX_SLOT_WAIT_SECONDS = 120.0
"""Longest a group waits for pacing slots (other replicas using the carrier's rate) before the
rest of it is given back; well inside the claim's lease."""
RATE_RETRY = timedelta(seconds=30)

_INSERT_EVENTS = """
INSERT INTO tracking_events (shipment_id, status, happened_at, time_source, carrier_code,
    message, city, province, country, zip, estimated_delivery_at, dedupe_key,
    writeback_state, writeback_error)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[], $5::text[],
    $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[],
    $12::text[], $13::text[], $14::text[])
ON CONFLICT (shipment_id, dedupe_key) DO NOTHING
"""

# Per shipment: the newest event with a status (it gives the shipment its status; in the same
# second, the more advanced status wins) and the newest event of any kind. One index probe each.
_NEWEST = """
SELECT u.id AS shipment_id, c.id, c.status, c.happened_at,
       l.id AS last_id, l.happened_at AS last_happened_at
FROM unnest($1::bigint[]) AS u(id)
LEFT JOIN LATERAL (
    SELECT e.id, e.status, e.happened_at FROM tracking_events e
    WHERE e.shipment_id = u.id AND e.status IS NOT NULL
    ORDER BY e.happened_at DESC, array_position($2::text[], e.status) DESC, e.id DESC
    LIMIT 1
) c ON true
LEFT JOIN LATERAL (
    SELECT e.id, e.happened_at FROM tracking_events e
    WHERE e.shipment_id = u.id
    ORDER BY e.happened_at DESC, e.id DESC
    LIMIT 1
) l ON true
"""

_UPDATE = """
UPDATE shipments AS s SET
    status = u.status, status_at = u.status_at, last_event_id = u.last_event_id,
    carrier_state = u.carrier_state, carrier_message = u.carrier_message,
    estimated_delivery_at = COALESCE(u.eta, s.estimated_delivery_at),
    first_eta = COALESCE(s.first_eta, u.eta),
    poll_failures = u.failures, last_polled_at = now(),
    next_poll_at = COALESCE(now() + u.delay, s.next_poll_at),
    active = u.delay IS NOT NULL,
    poll_priority = u.priority, last_scan_at = u.last_scan_at,
    not_found_since = u.not_found_since, final_confirmed = u.final_confirmed,
    stopped_reason = u.stopped_reason,
    lease_owner = NULL, lease_until = NULL, updated_at = now()
FROM unnest($2::bigint[], $3::text[], $4::timestamptz[], $5::bigint[], $6::text[], $7::text[],
            $8::timestamptz[], $9::int[], $10::interval[], $11::smallint[],
            $12::timestamptz[], $13::timestamptz[], $14::boolean[], $15::text[])
     AS u(id, status, status_at, last_event_id, carrier_state, carrier_message, eta, failures,
          delay, priority, last_scan_at, not_found_since, final_confirmed, stopped_reason)
WHERE s.id = u.id AND s.lease_owner = $1
"""


@dataclass
class PollReport:
    claimed: int = 0
    polled: int = 0
    new_events: int = 0
    failed_batches: int = 0
    over_budget: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    over_budget_by_carrier: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    new_events_by_carrier: dict[str, int] = field(default_factory=lambda: defaultdict(int))


async def poll_due(
    pool: asyncpg.Pool,
    adapters: Mapping[str, Adapter],
    polling: PollingConfig,
    writeback: WritebackConfig,
    worker: str,
    settings: Mapping[str, CarrierSettings] | None = None,
    in_flight: Mapping[str, asyncio.Semaphore] | None = None,
) -> PollReport:
    """Claim one batch of due shipments and poll them; returns what happened.

    ``settings`` (``carriers.<code>`` of the configuration) supplies configured daily quotas.
    ``in_flight`` bounds each carrier's concurrent requests across calls (several sweeps run at
    once in a daemon); without it each call allows ``polling.requests_in_flight`` per carrier.
    """
    report = PollReport()
    resting = await open_circuits(pool)
    carriers = [code for code in adapters if code not in resting]
    if not carriers:
        return report
    claimed = await claim_due(pool, worker, polling.lease, polling.batch_size, carriers)
    report.claimed = len(claimed)
    by_carrier: dict[str, list[ClaimedShipment]] = defaultdict(list)
    for shipment in claimed:
        by_carrier[shipment.carrier].append(shipment)
    await _all_or_none(
        *(
            _poll_carrier(
                pool,
                adapters[code],
                (settings or {}).get(code),
                shipments,
                polling,
                writeback,
                worker,
                report,
                (in_flight or {}).get(code) or asyncio.Semaphore(polling.requests_in_flight),
            )
            for code, shipments in by_carrier.items()
        )
    )
    return report


async def _poll_carrier(
    pool: asyncpg.Pool,
    adapter: Adapter,
    settings: CarrierSettings | None,
    shipments: list[ClaimedShipment],
    polling: PollingConfig,
    writeback: WritebackConfig,
    worker: str,
    report: PollReport,
    in_flight: asyncio.Semaphore,
) -> None:
    """Ask one carrier about its claimed shipments, a group of requests at a time.

    A group is up to ``RECORD_GROUP`` shipments: its requests are reserved from the daily budget
    and paced together, sent concurrently (at most ``in_flight`` at once for this carrier), and
    what came back is stored in one transaction.
    """
    size = max(1, adapter.max_batch)
    requests = [shipments[i : i + size] for i in range(0, len(shipments), size)]
    per_group = max(1, RECORD_GROUP // size)
    per_day = daily_quota(adapter, settings)
    per_second = (settings.requests_per_second if settings else None) or (
        adapter.default_requests_per_second
    )
    circuit_reset = [False]  # the carrier's circuit is reset once per sweep, on a success

    async def ask(batch: list[ClaimedShipment]) -> Answer:
        async with in_flight:
            try:
                return await adapter.track([s.tracking_number for s in batch])
            except (CarrierError, ValueError, TypeError, KeyError) as exc:
                return exc

    async def one_group(group: list[list[ClaimedShipment]]) -> None:
        granted = await reserve_up_to(pool, adapter.code, len(group), per_day)
        if granted < len(group):
            over = [s for batch in group[granted:] for s in batch]
            await postpone(pool, worker, over, next_budget_day())
            report.over_budget += len(over)
            report.over_budget_by_carrier[adapter.code] += len(over)
            group = group[:granted]
        # Requests go out as pacing slots come; answers are stored as they arrive, together
        # when they arrive together, so a slow request never holds back the others' results.
        sent: dict[asyncio.Task[Answer], list[ClaimedShipment]] = {}
        waiting = group
        slot_deadline = time.monotonic() + MAX_SLOT_WAIT_SECONDS
        try:
            while waiting or sent:
                if waiting:
                    slots = await take_slots(
                        pool,
                        adapter.code,
                        per_second,
                        len(waiting),
                        max_wait=max(0.0, slot_deadline - time.monotonic()),
                    )
                    if not slots:
                        # Other replicas hold the carrier's rate: try again on a later sweep.
                        later = [s for batch in waiting for s in batch]
                        await postpone(pool, worker, later, datetime.now(UTC) + RATE_RETRY)
                        waiting = []
                    for batch in waiting[:slots]:
                        sent[asyncio.create_task(ask(batch))] = batch
                    waiting = waiting[slots:]
                if waiting:
                    done = {task for task in sent if task.done()}
                elif sent:
                    done, _ = await asyncio.wait(sent, return_when=asyncio.FIRST_COMPLETED)
                else:
                    break
                if done:
                    await store({task: sent.pop(task) for task in done})
        finally:
            for task in sent:
                task.cancel()

    async def store(done: dict[asyncio.Task[Answer], list[ClaimedShipment]]) -> None:
        answered: list[ClaimedShipment] = []
        results: dict[str, TrackResult] = {}
        for task, batch in done.items():
            outcome = task.result()
            if isinstance(outcome, Exception):
                await _release(pool, adapter, batch, outcome, polling, worker, report)
                continue
            answered += batch
            results.update(outcome)
        if not answered:
            return
        if not circuit_reset[0]:
            circuit_reset[0] = True
            await record_success(pool, adapter.code)
        new_events = await record_results(pool, worker, answered, results, polling, writeback)
        report.new_events += new_events
        report.new_events_by_carrier[adapter.code] += new_events
        report.polled += len(answered)
        for shipment in answered:
            result = results.get(shipment.tracking_number)
            report.outcomes[result.outcome.value if result else Outcome.ERROR.value] += 1

    await _all_or_none(
        *(one_group(requests[i : i + per_group]) for i in range(0, len(requests), per_group))
    )


async def _all_or_none(*jobs: Coroutine[object, object, None]) -> None:
    """Run ``jobs`` side by side; when one fails (the database went away), cancel the others
    rather than let them spend carrier requests whose answers could not be stored."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _release(
    pool: asyncpg.Pool,
    adapter: Adapter,
    batch: list[ClaimedShipment],
    exc: Exception,
    polling: PollingConfig,
    worker: str,
    report: PollReport,
) -> None:
    """Give back the shipments of a request the carrier did not answer, and say why."""
    context = {"carrier": adapter.code, "shipments": len(batch)}
    report.failed_batches += 1
    if isinstance(exc, CarrierAuthError):
        log.error("%s rejected our credentials: %s", adapter.code, exc, extra=context)
        await release_failed(pool, worker, batch, "carrier_error", str(exc), polling)
    elif isinstance(exc, CarrierUnavailable):
        log.warning("%s unavailable: %s", adapter.code, exc, extra=context)
        await release_failed(pool, worker, batch, "unavailable", str(exc), polling)
        await record_failure(
            pool,
            adapter.code,
            str(exc),
            threshold=polling.circuit_failures,
            open_for=polling.circuit_open_for,
        )
    else:
        log.error(
            "%s adapter failed on a batch",
            adapter.code,
            exc_info=(type(exc), exc, exc.__traceback__),
            extra=context,
        )
        await release_failed(pool, worker, batch, "carrier_error", f"adapter error: {exc}", polling)


async def record_results(
    pool: asyncpg.Pool,
    worker: str,
    batch: Sequence[ClaimedShipment],
    results: Mapping[str, TrackResult],
    polling: PollingConfig,
    writeback: WritebackConfig,
) -> int:
    """Store one batch's results in one transaction; returns how many events were new."""
    now = datetime.now(UTC)
    stale_before = now - writeback.max_event_age
    cols: list[list[object]] = [[] for _ in range(14)]
    for shipment in batch:
        result = results.get(shipment.tracking_number)
        if result is None or result.outcome is not Outcome.FOUND:
            continue
        for event in result.events:
            if event.status is None:
                state, reason = "skipped", "no Shopify status for this scan"
            elif event.happened_at < stale_before:
                state, reason = "skipped", "already old when first seen; not sent"
            else:
                state, reason = "pending", None
            row: tuple[object, ...] = (
                shipment.id,
                event.status.value if event.status else None,
                event.happened_at,
                event.time_source,
                clean_text(event.carrier_code, 200),
                clean_text(event.message, 2000),
                _clip(event.city),
                _clip(event.province),
                _clip(event.country),
                _clip(event.zip),
                result.estimated_delivery_at,
                event.dedupe_key,
                state,
                reason,
            )
            for col, cell in zip(cols, row, strict=True):
                col.append(cell)
    ids = [s.id for s in batch]
    async with pool.acquire() as conn, conn.transaction():
        multi = await lock_multi_parcel(conn, ids)
        if multi:
            keys = sorted(multi)
            multi_ids = {
                r["id"]
                for r in await conn.fetch(
                    """
                    SELECT s.id FROM shipments s
                    JOIN unnest($1::bigint[], $2::text[]) AS k(shop_id, fulfillment_id)
                      ON s.shop_id = k.shop_id AND s.fulfillment_id = k.fulfillment_id
                    """,
                    [k[0] for k in keys],
                    [k[1] for k in keys],
                )
            }
            for i, shipment_id in enumerate(cols[0]):
                if shipment_id in multi_ids and cols[12][i] == "pending":
                    cols[12][i], cols[13][i] = "skipped", MULTI_PARCEL
        inserted = 0
        if cols[0]:
            tag = await conn.execute(_INSERT_EVENTS, *cols)
            inserted = int(tag.split()[-1])
        newest_rows = {
            r["shipment_id"]: r for r in await conn.fetch(_NEWEST, ids, [s.value for s in Status])
        }
        update: list[list[object]] = [[] for _ in range(14)]
        for shipment in batch:
            result = results.get(shipment.tracking_number) or TrackResult.error(
                shipment.tracking_number, "the adapter returned no result for this number"
            )
            found = newest_rows.get(shipment.id)
            newest = found if found is not None and found["id"] is not None else None
            latest = found if found is not None and found["last_id"] is not None else None
            status = Status(newest["status"]) if newest else None
            state = result.outcome.value
            failures = shipment.poll_failures + 1 if result.outcome is Outcome.ERROR else 0
            missing = result.outcome in (Outcome.NOT_FOUND, Outcome.INVALID)
            not_found_since = (shipment.not_found_since or now) if missing else None
            decision = decide(
                PollFacts(
                    status=status,
                    carrier_state=state,
                    failures=failures,
                    now=now,
                    eta=result.estimated_delivery_at or shipment.estimated_delivery_at,
                    not_found_since=not_found_since,
                    last_scan_at=latest["last_happened_at"] if latest else None,
                    was_final=shipment.status is not None and shipment.status.is_final,
                ),
                polling,
            )
            values: tuple[object, ...] = (
                shipment.id,
                status.value if status else None,
                newest["happened_at"] if newest else None,
                latest["last_id"] if latest else None,
                state,
                clean_text(result.message, 1000),
                result.estimated_delivery_at,
                failures,
                decision.delay,
                decision.priority,
                latest["last_happened_at"] if latest else None,
                not_found_since,
                decision.final_confirmed,
                decision.stop_reason,
            )
            for col, value in zip(update, values, strict=True):
                col.append(value)
        await conn.execute(_UPDATE, worker, *update)
        if multi:
            await tell_story(conn, multi)
    return inserted


def _clip(value: str | None) -> str | None:
    """A place name as it may be stored. The built-in parsers clean their text already; a
    plugin's may hold a NUL, which PostgreSQL refuses (and with it the whole batch)."""
    return clean_text(value, 200) or None if value else None
