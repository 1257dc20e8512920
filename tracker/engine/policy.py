"""When to poll a shipment next, and how urgently: a pure function of what is known about it.

Defaults (all configurable under ``polling``): a new shipment at once; pre-transit every 6 h;
in transit every 4 h; out for delivery, or on its way with an ETA today (:func:`expected_today`),
every hour and first in line (the rest wait their turn by how long they are overdue, whatever
their status); attempted delivery or ready for pickup every 4 h; delivered or failed: one
confirming poll after 24 h, then stop; not found: every 6 h for 3 days, then stop; no new scan
for 30 days (none at all: 30 days since fulfilment): stop (expired); carrier errors: exponential
backoff with jitter, never past ``error_backoff_max``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from tracker.config import PollingConfig
from tracker.domain import Status

_PRE_TRANSIT = {None, Status.LABEL_PURCHASED, Status.LABEL_PRINTED, Status.CONFIRMED}
_ON_ITS_WAY = {Status.CARRIER_PICKED_UP, Status.IN_TRANSIT, Status.DELAYED}
"""Statuses whose polls an ETA today hastens (at a pickup point or after an attempt, the
parcel waits for the customer: every 4 h, whatever the ETA said)."""
_MOST_DOUBLINGS = 60
"""Backoff doublings computed at most: far past any cap, far short of overflowing."""

# poll_priority: lower goes first when a carrier's budget cannot cover everything that is due;
# within a priority, the longest overdue goes first (claims order by next_poll_at). Only two:
# a tier for parcels in transit above labels and confirming polls would, under a quota that
# never covers the volume (USPS's and DHL's defaults do not), leave those unpolled for good.
URGENT = 0  # out for delivery, or expected today
ROUTINE = 100


@dataclass(frozen=True, slots=True)
class PollFacts:
    """What one poll left us knowing about a shipment."""

    status: Status | None
    carrier_state: str  # found, not_found, invalid_number, carrier_error, unavailable
    failures: int  # consecutive failed polls
    now: datetime
    eta: datetime | None = None
    not_found_since: datetime | None = None
    last_scan_at: datetime | None = None
    was_final: bool = False  # the status was already final before this poll
    fulfilled_at: datetime | None = None  # stands in for the last scan while there is none


@dataclass(frozen=True, slots=True)
class Decision:
    delay: timedelta | None  # None: stop polling
    priority: int = ROUTINE
    stop_reason: str | None = None
    final_confirmed: bool = False


def decide(facts: PollFacts, config: PollingConfig, rng: random.Random | None = None) -> Decision:
    """The next poll for a shipment, from the facts of its last poll."""
    if facts.carrier_state in ("carrier_error", "unavailable"):
        return Decision(_backoff(facts.failures, config, rng), ROUTINE)
    if facts.carrier_state in ("not_found", "invalid_number"):
        since = facts.not_found_since or facts.now
        if facts.now - since >= config.not_found_give_up_after:
            return Decision(None, stop_reason="not found")
        return Decision(_jitter(config.not_found_every, rng), ROUTINE)
    status = facts.status
    if status is not None and status.is_final:
        if facts.was_final:
            return Decision(None, stop_reason=None, final_confirmed=True)
        return Decision(config.final_confirm_after, ROUTINE)
    quiet_since = facts.last_scan_at or facts.fulfilled_at
    if quiet_since is not None and facts.now - quiet_since >= config.expire_after:
        return Decision(None, stop_reason="expired")
    if status is Status.OUT_FOR_DELIVERY or (
        status in _ON_ITS_WAY and expected_today(facts.eta, facts.now)
    ):
        return Decision(_jitter(config.out_for_delivery_every, rng), URGENT)
    if status in _PRE_TRANSIT:
        return Decision(_jitter(config.pre_transit_every, rng), ROUTINE)
    return Decision(_jitter(config.in_transit_every, rng), ROUTINE)


def next_poll_delay(
    status: Status | None,
    carrier_state: str,
    failures: int,
    config: PollingConfig,
    *,
    rng: random.Random | None = None,
) -> timedelta | None:
    """The delay alone, for callers that know only the status (failed batches)."""
    from datetime import UTC

    facts = PollFacts(status, carrier_state, failures, datetime.now(UTC))
    return decide(facts, config, rng).delay


def expected_today(eta: datetime | None, now: datetime) -> bool:
    """Whether ``now`` falls in the day the parcel is expected: from 12 h before the ETA until a
    day after it. Carriers give a day (read as its start at the destination) or the end of a
    time window; either way the delivery day's working hours are inside. A parcel later than
    that is polled as in transit, not hourly for as long as it is late."""
    return eta is not None and eta - _BEFORE_ETA <= now < eta + _AFTER_ETA


_BEFORE_ETA = timedelta(hours=12)
_AFTER_ETA = timedelta(hours=24)


def _backoff(failures: int, config: PollingConfig, rng: random.Random | None) -> timedelta:
    """After ``failures`` failed polls in a row: an eighth of the in-transit interval, doubled
    per failure, jittered, never longer than ``error_backoff_max`` (jitter that would pass the
    cap is folded back below it, so shipments at the cap still spread out)."""
    cap = config.error_backoff_max
    doublings = min(max(failures - 1, 0), _MOST_DOUBLINGS)
    seconds = (config.in_transit_every / 8).total_seconds() * 2.0**doublings
    delay = _jitter(timedelta(seconds=min(seconds, cap.total_seconds())), rng)
    return min(delay, 2 * cap - delay)


def _jitter(delay: timedelta, rng: random.Random | None) -> timedelta:
    """Spread polls by +-10 % so shipments synced together do not stay in lockstep."""
    factor = (rng or random).uniform(0.9, 1.1)
    return delay * factor
