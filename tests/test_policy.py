"""When shipments are polled next."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from tracker.config import PollingConfig
from tracker.domain import Status
from tracker.engine.policy import next_poll_delay

CONFIG = PollingConfig()


def delay(status, state="found", failures=0):
    return next_poll_delay(status, state, failures, CONFIG, rng=random.Random(1))


@pytest.mark.parametrize("final", [Status.DELIVERED, Status.FAILURE])
def test_final_statuses_stop_polling(final):
    assert delay(final) is None


@pytest.mark.parametrize(
    ("status", "base"),
    [
        (None, CONFIG.pre_transit_every),
        (Status.LABEL_PURCHASED, CONFIG.pre_transit_every),
        (Status.IN_TRANSIT, CONFIG.in_transit_every),
        (Status.ATTEMPTED_DELIVERY, CONFIG.in_transit_every),
        (Status.OUT_FOR_DELIVERY, CONFIG.out_for_delivery_every),
    ],
)
def test_interval_follows_the_status_within_ten_percent(status, base):
    got = delay(status)
    assert got is not None
    assert base * 0.9 <= got <= base * 1.1


def test_not_found_is_polled_on_its_own_interval():
    got = delay(None, "not_found")
    assert got is not None
    assert CONFIG.not_found_every * 0.9 <= got <= CONFIG.not_found_every * 1.1


def test_errors_back_off_exponentially_up_to_the_cap():
    delays = [delay(Status.IN_TRANSIT, "unavailable", n) for n in range(1, 12)]
    assert all(d is not None for d in delays)
    bases = [d / 1.1 for d in delays if d is not None]
    assert bases[1] > bases[0] * 1.5
    assert max(delays) <= CONFIG.error_backoff_max * 1.1  # type: ignore[type-var]
    assert delays[-1] >= CONFIG.error_backoff_max * 0.9  # type: ignore[operator]


def test_jitter_spreads_shipments():
    rng = random.Random(3)
    seen = {next_poll_delay(Status.IN_TRANSIT, "found", 0, CONFIG, rng=rng) for _ in range(20)}
    assert len(seen) > 10
    assert all(d is not None and d > timedelta(0) for d in seen)
