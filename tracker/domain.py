"""The vocabulary every part shares: statuses, normalized tracking events, their order.

Pure: no I/O. Statuses are Shopify's ``FulfillmentEventStatus`` values; this module is the only
place that knows their order, their urgency and which API version has which of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from hashlib import sha256
from typing import Any, Final


class Status(StrEnum):
    """Shopify's FulfillmentEventStatus, stored and served in lower case."""

    LABEL_PURCHASED = "label_purchased"
    LABEL_PRINTED = "label_printed"
    CONFIRMED = "confirmed"
    CARRIER_PICKED_UP = "carrier_picked_up"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    ATTEMPTED_DELIVERY = "attempted_delivery"
    READY_FOR_PICKUP = "ready_for_pickup"
    DELAYED = "delayed"
    DELIVERED = "delivered"
    FAILURE = "failure"

    @property
    def shopify(self) -> str:
        """The GraphQL enum value, e.g. ``IN_TRANSIT``."""
        return self.value.upper()

    @property
    def is_final(self) -> bool:
        """A parcel in this status is not expected to move again."""
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({Status.DELIVERED, Status.FAILURE})

# Statuses newer than some API versions: (status, first version that has it, stand-in before).
_INTRODUCED_IN: dict[Status, tuple[str, Status]] = {
    Status.CARRIER_PICKED_UP: ("2025-10", Status.IN_TRANSIT),
    Status.DELAYED: ("2025-01", Status.IN_TRANSIT),
}


def status_for_api_version(status: Status, api_version: str) -> Status:
    """The status to send to a store on ``api_version`` (``YYYY-MM``).

    Shopify rejects enum values an API version does not know, so a newer status is sent as its
    closest older one (``CARRIER_PICKED_UP`` as ``IN_TRANSIT`` before 2025-10).
    """
    introduced = _INTRODUCED_IN.get(status)
    if introduced is None or api_version == "unstable" or api_version >= introduced[0]:
        return status
    return introduced[1]


# Attention first: lower rank = shown higher in the status table.
URGENCY: dict[Status | None, int] = {
    Status.FAILURE: 0,
    Status.ATTEMPTED_DELIVERY: 1,
    Status.DELAYED: 2,
    Status.READY_FOR_PICKUP: 3,
    Status.OUT_FOR_DELIVERY: 4,
    Status.IN_TRANSIT: 5,
    Status.CARRIER_PICKED_UP: 6,
    Status.CONFIRMED: 7,
    Status.LABEL_PRINTED: 8,
    Status.LABEL_PURCHASED: 9,
    None: 10,
    Status.DELIVERED: 11,
}


def utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime; a naive one is refused rather than guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} has no time zone")
    return moment.astimezone(UTC)


_set = object.__setattr__
_NEW_DICT: Final[Any] = object()
"""Default of ``TrackingEvent.extra``: a new empty dict for each event."""


@dataclass(frozen=True, slots=True)
class TrackingEvent:
    """One carrier scan, normalized.

    ``status`` is None for scans that map to no Shopify status (kept and shown, never written
    back). ``carrier_code`` and ``message`` keep the carrier's own words. ``time_source`` says
    how ``happened_at`` became UTC: ``utc`` (the carrier said so), ``offset`` (a local time with
    its offset), or ``local:<reason>`` when the zone had to be assumed.
    """

    happened_at: datetime
    status: Status | None
    carrier_code: str = ""
    message: str = ""
    city: str | None = None
    province: str | None = None
    country: str | None = None
    zip: str | None = None
    time_source: str = "utc"
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    # Written out rather than generated: parsers build one of these for every scan, and the
    # generated __init__ of a frozen dataclass (object.__setattr__ looked up per field, then
    # __post_init__) costs twice as much. Same parameters, defaults and checks.
    def __init__(
        self,
        happened_at: datetime,
        status: Status | None,
        carrier_code: str = "",
        message: str = "",
        city: str | None = None,
        province: str | None = None,
        country: str | None = None,
        zip: str | None = None,
        time_source: str = "utc",
        extra: dict[str, str] = _NEW_DICT,
    ) -> None:
        if happened_at.tzinfo is not UTC:  # already UTC: utc() would give it back unchanged
            happened_at = utc(happened_at)
        _set(self, "happened_at", happened_at)
        _set(self, "status", status)
        _set(self, "carrier_code", carrier_code)
        _set(self, "message", message)
        _set(self, "city", city)
        _set(self, "province", province)
        _set(self, "country", country)
        _set(self, "zip", zip)
        _set(self, "time_source", time_source)
        _set(self, "extra", {} if extra is _NEW_DICT else extra)

    @property
    def location(self) -> str:
        """Place as one line, e.g. ``Leipzig, 04109, DE``."""
        return ", ".join([p for p in (self.city, self.province, self.zip, self.country) if p])

    @property
    def dedupe_key(self) -> str:
        """Same scan seen twice -> same key: status, time to the second, place, carrier code.

        Stored with every event: never change what it is computed from or how.
        """
        moment = self.happened_at
        if moment.microsecond:
            moment = moment.replace(microsecond=0)
        raw = "\x1f".join(
            (self.status or "", moment.isoformat(), self.location.casefold(), self.carrier_code)
        )
        return sha256(raw.encode()).hexdigest()[:32]


def current_status(events: list[TrackingEvent]) -> TrackingEvent | None:
    """The event that gives the shipment its status: the newest one that has a status.

    Ties on time go to the more advanced status, so a delivery scan recorded in the same second
    as an out-for-delivery scan wins.
    """
    with_status = [e for e in events if e.status is not None]
    if not with_status:
        return None
    return max(with_status, key=lambda e: (e.happened_at, _progress(e.status)))


def _progress(status: Status | None) -> int:
    order = list(Status)
    return order.index(status) if status is not None else -1


PROBLEMS = (Status.FAILURE, Status.ATTEMPTED_DELIVERY, Status.DELAYED)
"""Statuses that need someone's attention, most urgent first."""

ADVANCEMENT = (
    Status.LABEL_PURCHASED,
    Status.LABEL_PRINTED,
    Status.CONFIRMED,
    Status.CARRIER_PICKED_UP,
    Status.IN_TRANSIT,
    Status.OUT_FOR_DELIVERY,
    Status.READY_FOR_PICKUP,
    Status.DELIVERED,
)
"""How far a parcel has come, least first (problems are not on this scale)."""


def fulfillment_status(parcels: list[Status | None]) -> Status | None:
    """One status for a fulfillment of several parcels (None: nothing to say yet).

    The most urgent problem if any parcel has one; else the least advanced parcel that has a
    status; DELIVERED only when every parcel is delivered. Parcels without any scan yet hold
    back DELIVERED but otherwise say nothing.
    """
    for problem in PROBLEMS:
        if problem in parcels:
            return problem
    if parcels and all(p is Status.DELIVERED for p in parcels):
        return Status.DELIVERED
    moving = [p for p in parcels if p is not None and p is not Status.DELIVERED]
    if not moving:
        return None
    return min(moving, key=ADVANCEMENT.index)
