"""One poll sweep: claim due shipments, ask their carriers in batches, record what came back.

Claims are leases in PostgreSQL (``FOR UPDATE SKIP LOCKED``), so any number of workers share
the work and a dead worker's claims expire. Each batch's results land in one transaction:
new events (deduplicated by key), the shipment's status, and its next poll, lease cleared.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
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
from tracker.engine.budget import next_budget_day, reserve
from tracker.engine.circuit import open_circuits, record_failure, record_success
from tracker.engine.claims import ClaimedShipment, claim_due
from tracker.engine.pacing import take_slot
from tracker.engine.policy import PollFacts, decide
from tracker.engine.release import daily_quota, postpone, release_failed
from tracker.engine.story import MULTI_PARCEL, lock_multi_parcel, tell_story

log = logging.getLogger(__name__)

MAX_BATCHES_IN_FLIGHT_PER_CARRIER = 8

_INSERT_EVENTS = """
INSERT INTO tracking_events (shipment_id, status, happened_at, time_source, carrier_code,
    message, city, province, country, zip, estimated_delivery_at, dedupe_key,
    writeback_state, writeback_error)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[], $5::text[],
    $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[],
    $12::text[], $13::text[], $14::text[])
ON CONFLICT (shipment_id, dedupe_key) DO NOTHING
"""

# Newest event with a status gives the shipment its status; same second: the more advanced.
_CURRENT = """
SELECT DISTINCT ON (shipment_id) shipment_id, id, status, happened_at
FROM tracking_events
WHERE shipment_id = ANY($1::bigint[]) AND status IS NOT NULL
ORDER BY shipment_id, happened_at DESC, array_position($2::text[], status) DESC, id DESC
"""

_LAST = """
SELECT DISTINCT ON (shipment_id) shipment_id, id, happened_at
FROM tracking_events WHERE shipment_id = ANY($1::bigint[])
ORDER BY shipment_id, happened_at DESC, id DESC
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
) -> PollReport:
    """Claim one batch of due shipments and poll them; returns what happened.

    ``settings`` (``carriers.<code>`` of the configuration) supplies configured daily quotas.
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
    await asyncio.gather(
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
) -> None:
    in_flight = asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT_PER_CARRIER)
    size = max(1, adapter.max_batch)

    per_day = daily_quota(adapter, settings)
    per_second = (settings.requests_per_second if settings else None) or (
        adapter.default_requests_per_second
    )
    failures_seen = [True]  # reset the carrier's circuit once per sweep on the first success

    async def one_batch(batch: list[ClaimedShipment]) -> None:
        async with in_flight:
            if not await reserve(pool, adapter.code, 1, per_day):
                await postpone(pool, worker, batch, next_budget_day())
                report.over_budget += len(batch)
                report.over_budget_by_carrier[adapter.code] += len(batch)
                return
            context = {"carrier": adapter.code, "shipments": len(batch)}
            if not await take_slot(pool, adapter.code, per_second):
                # Other replicas hold the carrier's rate: try again on a later sweep.
                await postpone(pool, worker, batch, datetime.now(UTC) + timedelta(seconds=30))
                return
            try:
                results = await adapter.track([s.tracking_number for s in batch])
            except CarrierAuthError as exc:
                log.error("%s rejected our credentials: %s", adapter.code, exc, extra=context)
                await release_failed(pool, worker, batch, "carrier_error", str(exc), polling)
                report.failed_batches += 1
                return
            except CarrierUnavailable as exc:
                log.warning("%s unavailable: %s", adapter.code, exc, extra=context)
                await release_failed(pool, worker, batch, "unavailable", str(exc), polling)
                await record_failure(
                    pool,
                    adapter.code,
                    str(exc),
                    threshold=polling.circuit_failures,
                    open_for=polling.circuit_open_for,
                )
                report.failed_batches += 1
                return
            except (CarrierError, ValueError, TypeError, KeyError) as exc:
                log.exception("%s adapter failed on a batch", adapter.code, extra=context)
                await release_failed(
                    pool, worker, batch, "carrier_error", f"adapter error: {exc}", polling
                )
                report.failed_batches += 1
                return
            if failures_seen:
                await record_success(pool, adapter.code)
                failures_seen.clear()
            new_events = await record_results(pool, worker, batch, results, polling, writeback)
            report.new_events += new_events
            report.new_events_by_carrier[adapter.code] += new_events
            report.polled += len(batch)
            for result in results.values():
                report.outcomes[result.outcome.value] += 1

    await asyncio.gather(
        *(one_batch(shipments[i : i + size]) for i in range(0, len(shipments), size))
    )


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
                event.carrier_code[:200],
                event.message[:2000],
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
        current = {
            r["shipment_id"]: r for r in await conn.fetch(_CURRENT, ids, [s.value for s in Status])
        }
        last = {r["shipment_id"]: r for r in await conn.fetch(_LAST, ids)}
        update: list[list[object]] = [[] for _ in range(14)]
        for shipment in batch:
            result = results.get(shipment.tracking_number) or TrackResult.error(
                shipment.tracking_number, "the adapter returned no result for this number"
            )
            newest = current.get(shipment.id)
            latest = last.get(shipment.id)
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
                    last_scan_at=latest["happened_at"] if latest else None,
                    was_final=shipment.status is not None and shipment.status.is_final,
                ),
                polling,
            )
            values: tuple[object, ...] = (
                shipment.id,
                status.value if status else None,
                newest["happened_at"] if newest else None,
                latest["id"] if latest else None,
                state,
                result.message[:1000],
                result.estimated_delivery_at,
                failures,
                decision.delay,
                decision.priority,
                latest["happened_at"] if latest else None,
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
    return value[:200] if value else value
