"""When shipments are polled next, and which go first."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from tracker.config import PollingConfig
from tracker.domain import Status
from tracker.engine.policy import (
    ROUTINE,
    URGENT,
    PollFacts,
    decide,
    next_poll_delay,
)

CONFIG = PollingConfig()
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def facts(status=None, state="found", **kwargs) -> PollFacts:
    return PollFacts(status, state, kwargs.pop("failures", 0), NOW, **kwargs)


def within(got: timedelta | None, base: timedelta) -> bool:
    return got is not None and base * 0.9 <= got <= base * 1.1


@pytest.mark.parametrize(
    ("status", "base", "priority"),
    [
        (None, CONFIG.pre_transit_every, ROUTINE),
        (Status.LABEL_PURCHASED, CONFIG.pre_transit_every, ROUTINE),
        (Status.IN_TRANSIT, CONFIG.in_transit_every, ROUTINE),
        (Status.ATTEMPTED_DELIVERY, CONFIG.in_transit_every, ROUTINE),
        (Status.READY_FOR_PICKUP, CONFIG.in_transit_every, ROUTINE),
        (Status.OUT_FOR_DELIVERY, CONFIG.out_for_delivery_every, URGENT),
    ],
)
def test_interval_and_priority_follow_the_status(status, base, priority):
    decision = decide(facts(status), CONFIG, random.Random(1))
    assert within(decision.delay, base)
    assert decision.priority == priority


def test_an_eta_within_the_day_is_polled_hourly_and_first():
    decision = decide(facts(Status.IN_TRANSIT, eta=NOW + timedelta(hours=5)), CONFIG)
    assert within(decision.delay, CONFIG.out_for_delivery_every)
    assert decision.priority == URGENT
    later = decide(facts(Status.IN_TRANSIT, eta=NOW + timedelta(days=3)), CONFIG)
    assert later.priority == ROUTINE


@pytest.mark.parametrize(
    ("eta_hours", "status", "urgent"),
    [
        (-2, Status.IN_TRANSIT, True),  # the day began at the destination two hours ago
        (11, Status.CARRIER_PICKED_UP, True),
        (22, Status.IN_TRANSIT, False),  # tomorrow
        (-23, Status.DELAYED, True),
        (-25, Status.IN_TRANSIT, False),  # late: polled as in transit, not hourly for weeks
        (-12 * 24, Status.IN_TRANSIT, False),
        (2, Status.READY_FOR_PICKUP, False),  # waiting for the customer: every 4 h
        (2, Status.ATTEMPTED_DELIVERY, False),
        (2, Status.LABEL_PRINTED, False),
    ],
)
def test_only_a_parcel_on_its_way_expected_today_is_hastened(eta_hours, status, urgent):
    decision = decide(facts(status, eta=NOW + timedelta(hours=eta_hours)), CONFIG)
    assert (decision.priority == URGENT) is urgent
    if not urgent:
        assert decision.delay is not None
        assert decision.delay >= CONFIG.in_transit_every * 0.9


@pytest.mark.parametrize("final", [Status.DELIVERED, Status.FAILURE])
def test_final_status_gets_one_confirming_poll_then_stops(final):
    first = decide(facts(final), CONFIG)
    assert first.delay == CONFIG.final_confirm_after
    assert first.priority == ROUTINE
    confirmed = decide(facts(final, was_final=True), CONFIG)
    assert confirmed.delay is None
    assert confirmed.final_confirmed is True


def test_not_found_is_polled_then_given_up_after_three_days():
    fresh = decide(facts(state="not_found", not_found_since=NOW - timedelta(days=1)), CONFIG)
    assert within(fresh.delay, CONFIG.not_found_every)
    old = decide(facts(state="not_found", not_found_since=NOW - timedelta(days=3)), CONFIG)
    assert (old.delay, old.stop_reason) == (None, "not found")


def test_thirty_days_without_a_scan_expires():
    quiet = decide(facts(Status.IN_TRANSIT, last_scan_at=NOW - timedelta(days=30)), CONFIG)
    assert (quiet.delay, quiet.stop_reason) == (None, "expired")
    recent = decide(facts(Status.IN_TRANSIT, last_scan_at=NOW - timedelta(days=29)), CONFIG)
    assert recent.delay is not None


def test_a_parcel_found_without_any_scan_expires_thirty_days_after_fulfilment():
    long_ago = NOW - timedelta(days=45)
    never = decide(facts(None, fulfilled_at=long_ago), CONFIG)
    assert (never.delay, never.stop_reason) == (None, "expired")
    young = decide(facts(None, fulfilled_at=NOW - timedelta(days=2)), CONFIG)
    assert within(young.delay, CONFIG.pre_transit_every)
    # A scan, however old the fulfilment, counts from the scan.
    scanned = decide(
        facts(Status.IN_TRANSIT, fulfilled_at=long_ago, last_scan_at=NOW - timedelta(days=1)),
        CONFIG,
    )
    assert scanned.delay is not None


def test_errors_back_off_exponentially_up_to_the_cap():
    delays = [next_poll_delay(Status.IN_TRANSIT, "unavailable", n, CONFIG) for n in range(1, 12)]
    assert all(d is not None for d in delays)
    bases = [d / 1.1 for d in delays if d is not None]
    assert bases[1] > bases[0] * 1.5
    assert max(d for d in delays if d) <= CONFIG.error_backoff_max
    assert delays[-1] is not None
    assert delays[-1] >= CONFIG.error_backoff_max * 0.9


@pytest.mark.parametrize("failures", [36, 37, 64, 1_000, 10**9])
def test_backoff_after_any_number_of_failures_stays_under_the_cap_and_spread(failures):
    rng = random.Random(failures)
    delays = [decide(facts(state="carrier_error", failures=failures), CONFIG, rng).delay
              for _ in range(200)]  # fmt: skip
    assert all(d is not None and CONFIG.error_backoff_max * 0.9 <= d <= CONFIG.error_backoff_max
               for d in delays)  # fmt: skip
    assert len(set(delays)) > 150


def test_jitter_spreads_shipments():
    rng = random.Random(3)
    seen = {decide(facts(Status.IN_TRANSIT), CONFIG, rng).delay for _ in range(20)}
    assert len(seen) > 10
