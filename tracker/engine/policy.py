"""When to poll a shipment next: a pure function of what the last poll learned."""

from __future__ import annotations

import random
from datetime import timedelta

from tracker.config import PollingConfig
from tracker.domain import Status

_PRE_TRANSIT = {None, Status.LABEL_PURCHASED, Status.LABEL_PRINTED, Status.CONFIRMED}


def next_poll_delay(
    status: Status | None,
    carrier_state: str,
    failures: int,
    config: PollingConfig,
    *,
    rng: random.Random | None = None,
) -> timedelta | None:
    """How long until the next poll; None: stop polling (the parcel will not move again).

    ``carrier_state`` is what the carrier said on the last poll (``found``, ``not_found``,
    ``invalid_number``, ``carrier_error``, ``unavailable``); ``failures`` counts consecutive
    failed polls, for exponential backoff with jitter.
    """
    if carrier_state in ("carrier_error", "unavailable"):
        base = config.in_transit_every / 8
        delay = min(base * 2 ** max(failures - 1, 0), config.error_backoff_max)
        return _jitter(delay, rng)
    if carrier_state in ("not_found", "invalid_number"):
        return _jitter(config.not_found_every, rng)
    if status is not None and status.is_final:
        return None
    if status is Status.OUT_FOR_DELIVERY:
        return _jitter(config.out_for_delivery_every, rng)
    if status in _PRE_TRANSIT:
        return _jitter(config.pre_transit_every, rng)
    return _jitter(config.in_transit_every, rng)


def _jitter(delay: timedelta, rng: random.Random | None) -> timedelta:
    """Spread polls by +-10 % so shipments synced together do not stay in lockstep."""
    factor = (rng or random).uniform(0.9, 1.1)
    return delay * factor
