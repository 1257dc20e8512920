"""How fast and how often the Shopify client asks a store: the cost bucket, THROTTLED, retries.

Shopify meters the Admin GraphQL API with a leaky bucket per store. :class:`CostBucket` is our
view of it, kept from ``extensions.cost.throttleStatus``; requests reserve their cost before they
are sent, so concurrent requests never overdraw it. A THROTTLED answer says how long the bucket
needs (:func:`throttle_wait`). :func:`retry_policy` is the client's one tenacity policy: only a
:class:`Retry` is asked again, at most ``max_attempts`` times, each wait honouring the answer's
``Retry-After`` or the bucket's figures (never under 0.05 s or over a minute) and otherwise
doubling from 0.5 s up to 30 s.

Nothing here sends a request or sleeps: :mod:`tracker.shopify.client` does, and decides what is
safe to retry (never a mutation once it may have reached Shopify).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

log = logging.getLogger(__name__)


@dataclass
class CostBucket:
    """Our view of the store's leaky bucket, refilled at ``restore_rate`` points per second.

    ``available`` is what Shopify last reported, less what we have reserved since for requests
    it has not answered yet (``in_flight``), so concurrent requests never overdraw it.
    """

    maximum: float = 1000.0
    available: float = 1000.0
    restore_rate: float = 50.0
    observed_at: float = 0.0
    in_flight: float = 0.0
    calibrated: bool = False

    def level(self, now: float) -> float:
        elapsed = max(0.0, now - self.observed_at)
        return min(self.maximum, self.available + elapsed * self.restore_rate)

    def take(self, cost: float, now: float) -> float:
        """Reserve ``cost`` points; return how long to wait before sending (0 if none)."""
        level = self.level(now)
        self.available = level - cost
        self.observed_at = now
        self.in_flight += cost
        if self.available >= 0:
            return 0.0
        return -self.available / self.restore_rate if self.restore_rate > 0 else 1.0

    def settle(self, cost: float, status: object, now: float) -> None:
        """A reserved request was answered; adopt Shopify's figures if it sent them."""
        self.in_flight = max(0.0, self.in_flight - cost)
        if not isinstance(status, dict):
            return
        try:
            maximum = float(status["maximumAvailable"])
            available = float(status["currentlyAvailable"])
            restore_rate = float(status["restoreRate"])
        except (KeyError, TypeError, ValueError):
            return
        self.maximum, self.restore_rate = maximum, restore_rate
        self.available = available - self.in_flight
        self.observed_at = now
        self.calibrated = True


class Retry(Exception):
    """A failure worth asking again, after ``wait`` seconds (None: the policy's backoff)."""

    def __init__(self, message: str, wait: float | None) -> None:
        super().__init__(message)
        self.wait = wait


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, Retry) and exc.wait is not None:
        return min(max(exc.wait, 0.05), 60.0)
    return float(min(0.5 * 2 ** (state.attempt_number - 1), 30.0))


def retry_policy(domain: str, name: str, max_attempts: int) -> AsyncRetrying:
    """The tenacity settings for one document sent to ``domain``; each retry is logged."""
    return AsyncRetrying(
        stop=stop_after_attempt(max_attempts),
        wait=_wait,
        retry=retry_if_exception_type(Retry),
        before_sleep=lambda s: log.info(
            "shopify %s %s: attempt %d failed, retrying: %s",
            domain,
            name,
            s.attempt_number,
            s.outcome.exception() if s.outcome else None,
        ),
        reraise=True,
    )


def throttle_wait(cost: dict[str, Any]) -> float:
    """Seconds until the bucket holds what a THROTTLED request asked for (1 s if unknown)."""
    requested = cost.get("requestedQueryCost")
    throttle = cost.get("throttleStatus") or {}
    if not isinstance(requested, int | float) or not isinstance(throttle, dict):
        return 1.0
    try:
        missing = float(requested) - float(throttle["currentlyAvailable"])
        return max(0.1, missing / float(throttle["restoreRate"]))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return 1.0


def is_throttled(errors: object) -> bool:
    """True when Shopify's top-level ``errors`` include THROTTLED."""
    if not isinstance(errors, list):
        return False
    for error in errors:
        if isinstance(error, dict):
            ext = error.get("extensions")
            if isinstance(ext, dict) and ext.get("code") == "THROTTLED":
                return True
    return False
