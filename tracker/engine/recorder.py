"""Storing poll results: one transaction for many shipments, whichever claim loop polled them.

Answers come back from the carriers one request at a time. Storing each in its own transaction
costs a handful of round trips and statements (and the status-count triggers) per request: more
than the rows themselves. :class:`Recorder` lets every claim loop of a process hand over what it
got; one flush at a time stores everything handed over since the last one began, so the busier
the database, the larger (and fewer) the transactions. A caller gets its own shipments' count of
new events back once they are committed, or the exception that stopped the flush.

Crash safety is unchanged: a result is stored with its events, status, next poll and cleared
claim in one transaction, and only while the claim is still ours; what was never stored is
polled again when the claim expires.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import orjson

from carriers.base import Outcome, TrackResult
from tracker.config import PollingConfig, WritebackConfig
from tracker.domain import Status
from tracker.engine.claims import ClaimedShipment
from tracker.engine.policy import PollFacts, decide
from tracker.engine.story import MULTI_PARCEL, lock_multi_parcel, tell_story
from tracker.text import clean_text

log = logging.getLogger(__name__)

FLUSH_SHIPMENTS = 500
"""Most shipments stored in one transaction (more wait for the next flush)."""
FLUSHES_AT_ONCE = 2
"""Transactions of one process storing results at the same time."""

# The events travel as one JSON document (orjson writes it in a fraction of the time asyncpg
# takes to encode fourteen arrays, which was an eighth of the poller's CPU); PostgreSQL reads
# it back into rows. Every timestamp in it is UTC with its offset written out.
_INSERT_EVENTS = """
INSERT INTO tracking_events (shipment_id, status, happened_at, time_source, carrier_code,
    message, city, province, country, zip, estimated_delivery_at, dedupe_key,
    writeback_state, writeback_error)
SELECT shipment_id, status, happened_at, time_source, carrier_code, message, city, province,
       country, zip, estimated_delivery_at, dedupe_key, writeback_state, writeback_error
FROM json_to_recordset($1::json) AS r(shipment_id bigint, status text, happened_at timestamptz,
    time_source text, carrier_code text, message text, city text, province text, country text,
    zip text, estimated_delivery_at timestamptz, dedupe_key text, writeback_state text,
    writeback_error text)
ON CONFLICT (shipment_id, dedupe_key) DO NOTHING
RETURNING shipment_id
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

# The rows (one JSON document, as for the events) come first (OFFSET 0 keeps them so), then
# one primary-key probe each. Written as ``FROM unnest(...) WHERE s.lease_owner = $1`` the
# planner, whose statistics were taken when nothing was leased, expected the lease to match
# one row and scanned the leased rows instead, reading the unnest for each: 0.5 to 0.9 s for
# 150 rows with 4,000 leased.
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
FROM (SELECT r.*, make_interval(secs => r.delay_seconds) AS delay, $1::text AS owner
      FROM json_to_recordset($2::json) AS r(id bigint, status text, status_at timestamptz,
           last_event_id bigint, carrier_state text, carrier_message text, eta timestamptz,
           failures int, delay_seconds double precision, priority smallint,
           last_scan_at timestamptz, not_found_since timestamptz, final_confirmed boolean,
           stopped_reason text)
      OFFSET 0) AS u
WHERE s.id = u.id AND s.lease_owner = u.owner
"""


@dataclass
class _Handover:
    """What one caller of :meth:`Recorder.record` handed over, and where its answer goes."""

    worker: str
    shipments: Sequence[ClaimedShipment]
    results: Mapping[str, TrackResult]
    stored: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Recorder:
    """Stores poll results handed over by any number of concurrent callers, in few flushes.

    A flush takes everything handed over so far (up to :data:`FLUSH_SHIPMENTS` shipments of one
    worker) and stores it with :func:`record_results` in one transaction. Up to
    :data:`FLUSHES_AT_ONCE` flushes run at once (so the process prepares one transaction while
    PostgreSQL works on another), each in its own task: a caller that is cancelled while
    waiting (a sibling request failed, the daemon is stopping) does not cut short a
    transaction that holds other callers' results. :meth:`close` waits for the flushes under
    way. Concurrent flushes hold different shipments, and take the fulfillment locks of
    :func:`lock_multi_parcel` in one order, so they never wait on each other.
    """

    def __init__(
        self, pool: asyncpg.Pool, polling: PollingConfig, writeback: WritebackConfig
    ) -> None:
        self._pool = pool
        self._polling = polling
        self._writeback = writeback
        self._waiting: list[_Handover] = []
        self._flushers: set[asyncio.Task[None]] = set()

    async def record(
        self,
        worker: str,
        shipments: Sequence[ClaimedShipment],
        results: Mapping[str, TrackResult],
    ) -> int:
        """Store ``shipments``' results; how many new events they got, once committed."""
        handover = _Handover(worker, shipments, results)
        handover.stored.add_done_callback(_retrieve)
        self._waiting.append(handover)
        if len(self._flushers) < FLUSHES_AT_ONCE:
            flusher = asyncio.create_task(self._flush_all())
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        return await asyncio.shield(handover.stored)

    async def close(self) -> None:
        """Wait until everything handed over is stored (or has failed)."""
        while self._flushers:
            await asyncio.shield(next(iter(self._flushers)))

    async def _flush_all(self) -> None:
        while self._waiting:
            taken = self._take()
            try:
                new = await record_results(
                    self._pool,
                    taken[0].worker,
                    [s for handover in taken for s in handover.shipments],
                    _merged(taken),
                    self._polling,
                    self._writeback,
                )
            except Exception as exc:  # the callers decide what a failed store means
                for handover in taken:
                    handover.stored.set_exception(exc)
                continue
            except BaseException as exc:  # cancelled (the loop is closing): tell the callers
                for handover in taken + self._waiting:
                    if not handover.stored.done():
                        handover.stored.set_exception(exc)
                self._waiting.clear()
                raise
            for handover in taken:
                handover.stored.set_result(sum(new[s.id] for s in handover.shipments))

    def _take(self) -> list[_Handover]:
        """The next flush's handovers: the oldest first, one worker, up to the size limit."""
        worker = self._waiting[0].worker
        taken: list[_Handover] = []
        kept: list[_Handover] = []
        size = 0
        for handover in self._waiting:
            fits = not taken or size + len(handover.shipments) <= FLUSH_SHIPMENTS
            if handover.worker == worker and fits:
                taken.append(handover)
                size += len(handover.shipments)
            else:
                kept.append(handover)
        self._waiting = kept
        return taken


def _merged(handovers: Sequence[_Handover]) -> dict[int, TrackResult]:
    """Each shipment's result, by shipment id (handovers are keyed by tracking number, one
    carrier each; a flush mixes carriers, and two carriers may use the same number)."""
    merged: dict[int, TrackResult] = {}
    for handover in handovers:
        for shipment in handover.shipments:
            result = handover.results.get(shipment.tracking_number)
            if result is not None:
                merged[shipment.id] = result
    return merged


def _retrieve(future: asyncio.Future[int]) -> None:
    """Mark a failure as seen: its caller may have been cancelled and never look."""
    if not future.cancelled():
        future.exception()


async def record_results(
    pool: asyncpg.Pool,
    worker: str,
    batch: Sequence[ClaimedShipment],
    results: Mapping[int, TrackResult],
    polling: PollingConfig,
    writeback: WritebackConfig,
) -> Counter[int]:
    """Store these shipments' results in one transaction: their new events, their status and
    next poll, their claims cleared (only claims ``worker`` still holds). Returns how many new
    events each shipment got (shipments with none are left out).

    ``results`` is keyed by shipment id (two carriers may use the same tracking number); a
    shipment without a result is stored as a carrier error for that number.
    """
    now = datetime.now(UTC)
    stale_before = now - writeback.max_event_age
    events: list[dict[str, object]] = []
    for shipment in batch:
        result = results.get(shipment.id)
        if result is None or result.outcome is not Outcome.FOUND:
            continue
        eta = result.estimated_delivery_at
        if eta is not None:
            eta = eta.astimezone(UTC)  # as asyncpg read it: a naive time is local time
        for event in result.events:
            if event.status is None:
                state, reason = "skipped", "no Shopify status for this scan"
            elif event.happened_at < stale_before:
                state, reason = "skipped", "already old when first seen; not sent"
            else:
                state, reason = "pending", None
            events.append(
                {
                    "shipment_id": shipment.id,
                    "status": event.status.value if event.status else None,
                    "happened_at": event.happened_at,  # UTC: TrackingEvent sees to it
                    "time_source": clean_text(event.time_source, 200),
                    "carrier_code": clean_text(event.carrier_code, 200),
                    "message": clean_text(event.message, 2000),
                    "city": _clip(event.city),
                    "province": _clip(event.province),
                    "country": _clip(event.country),
                    "zip": _clip(event.zip),
                    "estimated_delivery_at": eta,
                    "dedupe_key": event.dedupe_key,
                    "writeback_state": state,
                    "writeback_error": reason,
                }
            )
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
            for row in events:
                if row["shipment_id"] in multi_ids and row["writeback_state"] == "pending":
                    row["writeback_state"], row["writeback_error"] = "skipped", MULTI_PARCEL
        inserted: Counter[int] = Counter()
        if events:
            document = orjson.dumps(events).decode()
            inserted.update(r[0] for r in await conn.fetch(_INSERT_EVENTS, document))
        newest_rows = {
            r["shipment_id"]: r for r in await conn.fetch(_NEWEST, ids, [s.value for s in Status])
        }
        update: list[dict[str, object]] = []
        for shipment in batch:
            result = results.get(shipment.id) or TrackResult.error(
                shipment.tracking_number, "the adapter returned no result for this number"
            )
            found = newest_rows.get(shipment.id)
            newest = found if found is not None and found["id"] is not None else None
            latest = found if found is not None and found["last_id"] is not None else None
            status = Status(newest["status"]) if newest else None
            state = result.outcome.value
            failures = shipment.poll_failures + 1 if result.outcome is Outcome.ERROR else 0
            not_found_since = None  # found: a run of "not found" ends
            if result.outcome in (Outcome.NOT_FOUND, Outcome.INVALID):
                not_found_since = shipment.not_found_since or now
            elif result.outcome is Outcome.ERROR:  # says nothing of the number: the run goes on
                not_found_since = shipment.not_found_since
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
                    fulfilled_at=shipment.fulfilled_at,
                ),
                polling,
            )
            eta = result.estimated_delivery_at
            update.append(
                {
                    "id": shipment.id,
                    "status": status.value if status else None,
                    "status_at": newest["happened_at"] if newest else None,
                    "last_event_id": latest["last_id"] if latest else None,
                    "carrier_state": state,
                    "carrier_message": clean_text(result.message, 1000),
                    "eta": eta.astimezone(UTC) if eta is not None else None,
                    "failures": failures,
                    "delay_seconds": (
                        decision.delay.total_seconds() if decision.delay is not None else None
                    ),
                    "priority": decision.priority,
                    "last_scan_at": latest["last_happened_at"] if latest else None,
                    "not_found_since": not_found_since,
                    "final_confirmed": decision.final_confirmed,
                    "stopped_reason": decision.stop_reason,
                }
            )
        await conn.execute(_UPDATE, worker, orjson.dumps(update).decode())
        if multi:
            await tell_story(conn, multi)
    return inserted


def _clip(value: str | None) -> str | None:
    """A place name as it may be stored. The built-in parsers clean their text already; a
    plugin's may hold a NUL, which PostgreSQL refuses (and with it the whole batch)."""
    return clean_text(value, 200) or None if value else None
