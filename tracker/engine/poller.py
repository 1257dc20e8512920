"""One poll sweep: claim due shipments, ask their carriers in batches, record what came back.

Claims are leases in PostgreSQL (``FOR UPDATE SKIP LOCKED``), so any number of workers share
the work and a dead worker's claims expire. Results are stored by a :class:`Recorder`: a
shipment's new events (deduplicated by key), its status and its next poll land in one
transaction with its lease cleared, together with whatever else was answered meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import Coroutine, Mapping
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
    SharedRateSpent,
    TrackResult,
)
from carriers.http import MAX_RETRY_WAIT
from tracker.config import PollingConfig, WritebackConfig
from tracker.engine.budget import next_budget_day, reserve_up_to
from tracker.engine.circuit import Reason, circuit_states, record_failure, record_success
from tracker.engine.claims import ClaimedShipment, claim_due
from tracker.engine.pacing import next_window, take_slots, window_of
from tracker.engine.recorder import Recorder
from tracker.engine.release import daily_quota, give_back, hold_until, postpone, release_failed

log = logging.getLogger(__name__)

Answer = Mapping[str, TrackResult] | Exception
"""What one request to a carrier gave: its results, or why there are none."""

RECORD_GROUP = 100
"""Shipments whose requests are reserved against the daily budget and paced together."""
MAX_SLOT_WAIT_SECONDS = 120.0
"""Longest a group waits for pacing slots (other replicas using the carrier's rate) before the
rest of it is given back; well inside the claim's lease."""
RATE_RETRY = timedelta(seconds=30)
PACED_AHEAD_SECONDS = 10.0
"""A process claims no more of a carrier's shipments than its rate lets it ask in this long."""


@dataclass
class SlowCarriers:
    """What the claim loops of one process know of their slow carriers (see :func:`claim_caps`).

    ``unsent``: requests claimed for and not sent yet, per carrier. ``resting``: when (the
    ``time.time()`` a pacing window starts) a carrier whose window was found spent may be
    claimed again.
    """

    unsent: Counter[str] = field(default_factory=Counter)
    resting: dict[str, float] = field(default_factory=dict)


@dataclass
class PollReport:
    claimed: int = 0
    capped_full: bool = False  # a slow carrier's claim took all its cap: more may be due
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
    recorder: Recorder | None = None,
    slow: SlowCarriers | None = None,
) -> PollReport:
    """Claim one batch of due shipments and poll them; returns what happened.

    ``settings`` (``carriers.<code>`` of the configuration) supplies configured daily quotas.
    ``in_flight`` bounds each carrier's concurrent requests across calls (several sweeps run at
    once in a daemon); without it each call allows ``polling.requests_in_flight`` per carrier.
    ``recorder`` stores the results, shared by the calls running at once in a daemon; without
    it each call stores through a recorder of its own. ``slow`` is what the process knows of
    its slow carriers (shared by the calls running at once in a daemon, as ``in_flight`` is):
    see :func:`claim_caps`.
    """
    if recorder is None:
        recorder = Recorder(pool, polling, writeback)
        try:
            return await poll_due(
                pool, adapters, polling, writeback, worker, settings, in_flight, recorder, slow
            )
        finally:
            await recorder.close()
    if slow is None:
        slow = SlowCarriers()
    unsent = slow.unsent
    report = PollReport()
    circuits = await circuit_states(pool)
    carriers = [code for code in adapters if code not in circuits.resting]
    if not carriers:
        return report
    caps = claim_caps(adapters, settings or {}, carriers, polling.batch_size, slow)
    # Requests claimed for and not sent yet count against the caps of the calls running beside
    # this one: reserved before the claim, corrected to what it took, given back at the end.
    held = {code: _requests(adapters[code], most) for code, most in caps.items() if most}
    unsent.update(held)
    try:
        claimed = await claim_due(
            pool,
            worker,
            polling.lease,
            polling.batch_size,
            [code for code in carriers if code not in caps],
            caps,
        )
        report.claimed = len(claimed)
        by_carrier: dict[str, list[ClaimedShipment]] = defaultdict(list)
        for shipment in claimed:
            by_carrier[shipment.carrier].append(shipment)
        report.capped_full = any(
            len(by_carrier.get(code, ())) >= most for code, most in caps.items() if most
        )
        taken = {code: _requests(adapters[code], len(by_carrier.get(code, ()))) for code in held}
        unsent.subtract({code: held[code] - taken[code] for code in held})
        held = taken
        await _all_or_none(
            *(
                _poll_carrier(
                    pool,
                    adapters[code],
                    (settings or {}).get(code),
                    shipments,
                    polling,
                    recorder,
                    worker,
                    report,
                    (in_flight or {}).get(code) or asyncio.Semaphore(polling.requests_in_flight),
                    code in circuits.troubled,
                    slow if code in caps else None,
                )
                for code, shipments in by_carrier.items()
            )
        )
    finally:
        unsent.subtract(held)
    return report


def claim_caps(
    adapters: Mapping[str, Adapter],
    settings: Mapping[str, CarrierSettings],
    carriers: list[str],
    batch_size: int,
    slow: SlowCarriers,
) -> dict[str, int]:
    """How many shipments of each slow carrier one claim may take (carriers left out: no cap).

    A carrier whose rate cannot ask a whole batch's worth within :data:`PACED_AHEAD_SECONDS`
    (USPS's 60 an hour, DHL's one a second) gets at most what it can ask in that time, less
    what this process has claimed for it and not sent yet; none while it rests (its pacing
    window was found spent: the shipments stay due, in their order, until the next window).
    Without the cap a claim took hundreds of that carrier's shipments and its loop waited up
    to two minutes for pacing slots, polling nothing else meanwhile.
    """
    caps: dict[str, int] = {}
    now = time.time()
    for code in carriers:
        adapter = adapters[code]
        per_request = max(1, adapter.max_batch)
        ahead = math.ceil(_rate(adapter, settings.get(code)) * PACED_AHEAD_SECONDS)
        if ahead * per_request >= batch_size:
            continue
        if slow.resting.get(code, 0.0) > now:
            caps[code] = 0
            continue
        caps[code] = max(0, ahead - slow.unsent.get(code, 0)) * per_request
    return caps


def _rate(adapter: Adapter, settings: CarrierSettings | None) -> float:
    """Requests per second the carrier may be sent, all replicas together."""
    return (settings.requests_per_second if settings else None) or (
        adapter.default_requests_per_second
    )


def _requests(adapter: Adapter, shipments: int) -> int:
    return math.ceil(shipments / max(1, adapter.max_batch))


async def _poll_carrier(
    pool: asyncpg.Pool,
    adapter: Adapter,
    settings: CarrierSettings | None,
    shipments: list[ClaimedShipment],
    polling: PollingConfig,
    recorder: Recorder,
    worker: str,
    report: PollReport,
    in_flight: asyncio.Semaphore,
    troubled: bool,
    slow: SlowCarriers | None = None,
) -> None:
    """Ask one carrier about its claimed shipments, a group of requests at a time.

    A group is up to ``RECORD_GROUP`` shipments: its requests are reserved from the daily budget
    and paced together, sent concurrently (at most ``in_flight`` at once for this carrier), and
    what came back is handed to ``recorder`` as it arrives. The first success resets the
    carrier's circuit if it was ``troubled`` when the batch was claimed (a failure counted by
    a concurrent batch since is reset by the next batch's success).
    """
    size = max(1, adapter.max_batch)
    requests = [shipments[i : i + size] for i in range(0, len(shipments), size)]
    per_group = max(1, RECORD_GROUP // size)
    per_day = daily_quota(adapter, settings)
    per_second = _rate(adapter, settings)
    circuit_reset = [not troubled]  # a troubled circuit is reset once per batch, on a success

    async def ask(batch: list[ClaimedShipment]) -> Answer:
        async with in_flight:
            try:
                return await adapter.track([s.tracking_number for s in batch])
            except (CarrierError, ValueError, TypeError, KeyError) as exc:
                return exc

    async def one_group(group: list[list[ClaimedShipment]]) -> None:
        granted = await reserve_up_to(pool, adapter.code, len(group), per_day)
        if granted < len(group):
            # The day's budget is spent: the rest stay due, in their place in the order (the
            # urgent, then the longest overdue, go first when it renews), held from every
            # replica's claims until then.
            over = [s for batch in group[granted:] for s in batch]
            await hold_until(pool, worker, over, next_budget_day())
            report.over_budget += len(over)
            report.over_budget_by_carrier[adapter.code] += len(over)
            group = group[:granted]
        # Requests go out as pacing slots come; answers are stored as they arrive, together
        # when they arrive together, so a slow request never holds back the others' results.
        sent: dict[asyncio.Task[Answer], list[ClaimedShipment]] = {}
        # Finished requests queue up here (asyncio.wait would re-register on every pending
        # request each time one finishes: quadratic in the requests in flight).
        finished: asyncio.Queue[asyncio.Task[Answer]] = asyncio.Queue()
        waiting = group
        # A slow carrier's group was sized to go out within PACED_AHEAD_SECONDS: it waits no
        # longer, and not at all for a window that starts later than that (USPS's minute).
        patience = MAX_SLOT_WAIT_SECONDS
        if slow:
            patience = PACED_AHEAD_SECONDS if window_of(per_second)[0] <= PACED_AHEAD_SECONDS else 0
        slot_deadline = time.monotonic() + patience
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
                        later = [s for batch in waiting for s in batch]
                        if slow:
                            # Its rate is spent: back as they were, and none claimed until its
                            # next window.
                            await give_back(pool, worker, later)
                            slow.resting[adapter.code] = next_window(per_second)
                        else:
                            # Other replicas hold the carrier's rate: try again on a later sweep.
                            await postpone(pool, worker, later, datetime.now(UTC) + RATE_RETRY)
                        waiting = []
                    for batch in waiting[:slots]:
                        task = asyncio.create_task(ask(batch))
                        task.add_done_callback(finished.put_nowait)
                        sent[task] = batch
                    waiting = waiting[slots:]
                if not sent:
                    continue  # nothing in flight: ask for slots again (or end, if none wait)
                done = [] if waiting else [await finished.get()]
                while not finished.empty():
                    done.append(finished.get_nowait())
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
        new_events = await recorder.record(worker, answered, results)
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


def _asked_pause(exc: CarrierError) -> timedelta | None:
    """The carrier's ``Retry-After``, when longer than a process waits by itself: the whole
    carrier pauses for it, every replica alike (:func:`record_failure` opens the circuit)."""
    wait = exc.retry_after if isinstance(exc, CarrierUnavailable) else None
    return timedelta(seconds=wait) if wait is not None and wait > MAX_RETRY_WAIT else None


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
    if isinstance(exc, SharedRateSpent):
        # Other replicas hold the carrier's rate (an adapter's extra requests found no shared
        # slot): as when the engine finds none, asked again shortly, no failure counted.
        log.info("%s: %s; asking again in %s", adapter.code, exc, RATE_RETRY, extra=context)
        await postpone(pool, worker, batch, datetime.now(UTC) + RATE_RETRY)
        return
    report.failed_batches += 1
    reason: Reason
    if isinstance(exc, CarrierAuthError):
        log.error("%s rejected our credentials: %s", adapter.code, exc, extra=context)
        state, reason = "carrier_error", "credentials"
    elif isinstance(exc, CarrierUnavailable):
        log.warning("%s unavailable: %s", adapter.code, exc, extra=context)
        state, reason = "unavailable", "unavailable"
    else:
        log.error(
            "%s adapter failed on a batch",
            adapter.code,
            exc_info=(type(exc), exc, exc.__traceback__),
            extra=context,
        )
        await release_failed(pool, worker, batch, "carrier_error", f"adapter error: {exc}", polling)
        return
    await release_failed(pool, worker, batch, state, str(exc), polling)
    await record_failure(
        pool,
        adapter.code,
        str(exc),
        threshold=polling.circuit_failures,
        open_for=polling.circuit_open_for,
        reason=reason,
        pause=_asked_pause(exc),
    )
