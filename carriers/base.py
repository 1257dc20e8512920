"""The adapter contract every carrier follows.

An adapter turns tracking numbers into :class:`TrackResult` objects. It does I/O only: the
carrier's JSON is turned into results by the pure ``parse`` module of its package, so parsing is
tested on recorded bodies without a server.

The contract, which one parametrized test suite checks for every adapter:

* ``track(numbers)`` returns exactly one result per requested number, keyed by the number as
  given. It sends at most ``max_batch`` numbers per request and stays inside its
  :class:`~carriers.http.RateLimiter`.
* What the carrier says about a number (not found, invalid, an error for that number) is data:
  a result with the matching :class:`Outcome`, never an exception. One bad number never fails
  the others.
* When the carrier cannot be asked at all (timeouts, resets, 5xx, 429, an HTML or text page
  instead of JSON, after the retries in :func:`carriers.http.request_json`; or a
  ``Retry-After`` not yet passed) the adapter raises :class:`CarrierUnavailable`; rejected
  credentials raise :class:`CarrierAuthError`. The engine reschedules the batch with backoff.
* Every timestamp is aware UTC (:class:`tracker.domain.TrackingEvent` refuses naive ones).

The engine paces one request per ``track`` call across every replica (through PostgreSQL). An
adapter whose call may send more than that (AfterShip registers the numbers its list does not
show, then reads them again) may define ``use_shared_pacing(pacing: SharedPacing) -> None``:
the daemon calls it once, and the adapter takes a :class:`SharedPacing` slot for each request
beyond the first, so that the replicas together, not only each process, keep the carrier's
rate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from tracker.domain import TrackingEvent

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    """What the carrier said about one number."""

    FOUND = "found"
    NOT_FOUND = "not_found"
    INVALID = "invalid_number"
    ERROR = "carrier_error"


@dataclass(frozen=True, slots=True)
class TrackResult:
    """Everything one poll learned about one tracking number."""

    tracking_number: str
    outcome: Outcome
    events: tuple[TrackingEvent, ...] = ()
    estimated_delivery_at: datetime | None = None
    message: str = ""
    raw_status: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def not_found(cls, number: str, message: str = "not found") -> TrackResult:
        return cls(number, Outcome.NOT_FOUND, message=message)

    @classmethod
    def error(cls, number: str, message: str) -> TrackResult:
        return cls(number, Outcome.ERROR, message=message)


class CarrierError(Exception):
    """Base of every error an adapter raises."""


class CarrierUnavailable(CarrierError):
    """The carrier could not be asked (transport failure, 5xx, rate limited) after retries.

    ``retry_after`` is the carrier's own hint in seconds, when it gave one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SharedRateSpent(CarrierUnavailable):
    """No :class:`SharedPacing` slot came in time: the other replicas are using the carrier's
    rate. Nothing is wrong with the carrier: the engine asks again a little later, counting no
    failure against the shipments or the carrier's circuit."""


class CarrierAuthError(CarrierError):
    """The carrier rejected our credentials; polling it again will not help until they change."""


class CarrierResponseError(CarrierError):
    """The carrier answered with a body we cannot read (not JSON, wrong shape)."""


class CarrierSettings(BaseModel):
    """``carriers.<code>`` in the configuration file: the same keys for every carrier."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr | None = Field(None, description="API key (key-based carriers).")
    client_id: str | None = Field(None, description="OAuth client id (OAuth carriers).")
    client_secret: SecretStr | None = Field(
        None, description="OAuth client secret (OAuth carriers)."
    )
    base_url: str | None = Field(
        None, description="API root; empty means the carrier's production host."
    )
    requests_per_second: float | None = Field(
        None,
        gt=0,
        description="Most requests per second sent to the carrier, all replicas together; "
        "empty: the carrier's default.",
    )
    requests_per_day: int | None = Field(
        None, gt=0, description="Daily request quota; empty means the carrier's default."
    )
    timeout_seconds: float = Field(20.0, gt=0, le=300, description="Per-request timeout.")
    max_attempts: int = Field(
        3, ge=1, le=10, description="Tries per request on timeouts, 5xx and 429."
    )
    test_number: str | None = Field(
        None,
        description="A tracking number `tracker doctor` looks up to prove the credentials work. "
        "Empty: the example number from the carrier's API reference (none for AfterShip).",
    )


class Adapter(Protocol):
    """A carrier's tracking API. See the module docstring for the contract."""

    code: ClassVar[str]
    """Short lower-case name used in configuration and storage, e.g. ``dhl``."""

    display_name: ClassVar[str]
    max_batch: ClassVar[int]
    """Most numbers one API request may carry."""

    default_requests_per_second: ClassVar[float]
    """Budget when ``requests_per_second`` is not configured (the carrier's published limit)."""

    default_requests_per_day: ClassVar[int | None]
    """Daily quota when ``requests_per_day`` is not configured; None: not published."""

    async def track(self, numbers: Sequence[str]) -> dict[str, TrackResult]:
        """One result per number in ``numbers`` (at most ``max_batch`` of them)."""
        ...

    def public_url(self, number: str) -> str:
        """The carrier's public tracking page for ``number``."""
        ...


class SharedPacing(Protocol):
    """Request slots of one carrier shared by every replica (see the module docstring)."""

    async def take(self, endpoint: str, rate: float, wanted: int) -> int:
        """Slots for up to ``wanted`` requests to send now, at most ``rate`` a second for all
        replicas together; waits for a pacing window with room. ``endpoint`` ``""`` is the one
        the engine paces (its slots are the engine's); another name is a limit of its own.

        Returns how many were granted (at least one); raises :class:`SharedRateSpent` when none
        came in time (the other replicas hold the rate).
        """
        ...


class AdapterFactory(Protocol):
    """How the registry builds an adapter: settings and a shared HTTP session in."""

    code: ClassVar[str]

    def __call__(self, settings: CarrierSettings, session: aiohttp.ClientSession) -> Adapter: ...
