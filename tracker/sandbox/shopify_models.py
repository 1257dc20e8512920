"""The records the Shopify sandbox keeps: orders, fulfillments, tracking, fulfillment events.

Plain dataclasses with Shopify's meanings; ids are the numeric legacy ids, ``gid`` gives the
global id. Enum-valued fields hold the GraphQL enum names (``"IN_TRANSIT"``, ``"SUCCESS"``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime

ORDER = "Order"
FULFILLMENT = "Fulfillment"
FULFILLMENT_EVENT = "FulfillmentEvent"
SHOP = "Shop"
CUSTOMER = "Customer"

_GID = re.compile(r"^gid://shopify/(?P<type>[A-Za-z]+)/(?P<id>\d+)(?:\?.*)?$")

# FulfillmentEventStatus as of API 2025-10 (CARRIER_PICKED_UP is the newest).
EVENT_STATUSES = frozenset(
    {
        "LABEL_PURCHASED",
        "LABEL_PRINTED",
        "CONFIRMED",
        "CARRIER_PICKED_UP",
        "IN_TRANSIT",
        "OUT_FOR_DELIVERY",
        "ATTEMPTED_DELIVERY",
        "READY_FOR_PICKUP",
        "DELAYED",
        "DELIVERED",
        "FAILURE",
    }
)
# Event statuses that mean the parcel is moving (they start ``inTransitAt``).
MOVING_STATUSES = frozenset(
    {"CARRIER_PICKED_UP", "IN_TRANSIT", "OUT_FOR_DELIVERY", "ATTEMPTED_DELIVERY", "DELAYED"}
)
# FulfillmentDisplayStatus for an event status; the rest have a display status of the same name.
DISPLAY_STATUS_FOR_EVENT = {"CARRIER_PICKED_UP": "IN_TRANSIT"}


def gid(type_name: str, legacy_id: int) -> str:
    """``gid://shopify/{type_name}/{legacy_id}``."""
    return f"gid://shopify/{type_name}/{legacy_id}"


def parse_gid(value: str) -> tuple[str, int] | None:
    """``(type name, legacy id)`` of a global id, or None when ``value`` is not one."""
    match = _GID.match(value.strip())
    if match is None:
        return None
    return match["type"], int(match["id"])


def legacy_id(value: int | str, type_name: str) -> int | None:
    """The legacy id in ``value``: an int, a numeric string, or a gid of ``type_name``."""
    if isinstance(value, int):
        return value
    text = value.strip()
    if text.isdigit():
        return int(text)
    parsed = parse_gid(text)
    if parsed is None or parsed[0] != type_name:
        return None
    return parsed[1]


@dataclass(frozen=True)
class TrackingInfo:
    """One parcel of a fulfillment: ``FulfillmentTrackingInfo``."""

    company: str | None
    number: str | None
    url: str | None = None


@dataclass
class FulfillmentEvent:
    """A ``FulfillmentEvent``: a tracking update shown on the order status page."""

    id: int
    fulfillment_id: int
    order_id: int
    status: str
    happened_at: datetime
    created_at: datetime
    message: str | None = None
    address1: str | None = None
    city: str | None = None
    province: str | None = None
    country: str | None = None
    zip: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    estimated_delivery_at: datetime | None = None

    @property
    def gid(self) -> str:
        return gid(FULFILLMENT_EVENT, self.id)


@dataclass
class Fulfillment:
    """A ``Fulfillment``: shipped items of an order with their tracking numbers and events.

    ``display_status``, ``in_transit_at``, ``delivered_at`` and ``estimated_delivery_at`` follow
    the events (see :meth:`ShopifyStore.create_event`); ``quantity`` is how many of the order's
    items this fulfillment shipped.
    """

    id: int
    order_id: int
    name: str
    created_at: datetime
    updated_at: datetime
    tracking: list[TrackingInfo]
    status: str = "SUCCESS"
    display_status: str = "FULFILLED"
    quantity: int = 1
    estimated_delivery_at: datetime | None = None
    initial_estimated_delivery_at: datetime | None = None
    in_transit_at: datetime | None = None
    delivered_at: datetime | None = None
    events: list[FulfillmentEvent] = field(default_factory=list)

    @property
    def gid(self) -> str:
        return gid(FULFILLMENT, self.id)

    @property
    def cancelled(self) -> bool:
        return self.status == "CANCELLED"

    def recompute_from_events(self) -> None:
        """Derive display status and dates from the events, as Shopify does after each one.

        The display status follows the latest event by ``happened_at`` (ties: the later
        created); ``inTransitAt`` is the first moment the parcel moved; ``deliveredAt`` the last
        delivery scan; the ETA is the latest event's that carries one.
        """
        if self.cancelled:
            self.display_status = "CANCELED"
            return
        ordered = sorted(self.events, key=lambda e: (e.happened_at, e.id))
        if ordered:
            latest = ordered[-1].status
            self.display_status = DISPLAY_STATUS_FOR_EVENT.get(latest, latest)
        else:
            self.display_status = "FULFILLED"
        moving = [e.happened_at for e in ordered if e.status in MOVING_STATUSES]
        self.in_transit_at = min(moving) if moving else None
        delivered = [e.happened_at for e in ordered if e.status == "DELIVERED"]
        self.delivered_at = max(delivered) if delivered else None
        etas = [e.estimated_delivery_at for e in ordered if e.estimated_delivery_at is not None]
        self.estimated_delivery_at = etas[-1] if etas else self.initial_estimated_delivery_at


@dataclass
class Order:
    """An ``Order``: ``item_count`` items, some of them shipped by its fulfillments."""

    id: int
    name: str
    email: str | None
    created_at: datetime
    updated_at: datetime
    item_count: int
    fulfillments: list[Fulfillment] = field(default_factory=list)
    cancelled_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def gid(self) -> str:
        return gid(ORDER, self.id)

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    @property
    def number(self) -> int:
        """The order number in the name (``#1001`` -> 1001), 0 when there is none."""
        digits = "".join(char for char in self.name if char.isdigit())
        return int(digits) if digits else 0

    @property
    def fulfilled_quantity(self) -> int:
        return sum(f.quantity for f in self.fulfillments if not f.cancelled)

    @property
    def display_fulfillment_status(self) -> str:
        """``OrderDisplayFulfillmentStatus``: FULFILLED, PARTIALLY_FULFILLED or UNFULFILLED."""
        shipped = self.fulfilled_quantity
        if shipped <= 0:
            return "UNFULFILLED"
        return "FULFILLED" if shipped >= self.item_count else "PARTIALLY_FULFILLED"

    @property
    def customer(self) -> Customer | None:
        """The order's customer: none without an e-mail address (a guest order with none)."""
        return Customer.for_email(self.email) if self.email else None


@dataclass(frozen=True)
class Customer:
    """A ``Customer``, one per e-mail address; its names come from the address's local part.

    ``jane.doe@example.com`` is Jane Doe. An address with no such name has no first or last
    name, and then ``displayName`` is the address, as Shopify falls back to it.
    """

    id: int
    email: str
    first_name: str | None
    last_name: str | None

    @classmethod
    def for_email(cls, email: str) -> Customer:
        number = int.from_bytes(hashlib.sha256(email.lower().encode()).digest()[:6], "big")
        parts = [p for p in re.split(r"[._-]+", email.partition("@")[0]) if p.isalpha()]
        if len(parts) >= 2:
            return cls(number, email, parts[0].capitalize(), " ".join(parts[1:]).title())
        return cls(number, email, None, None)

    @property
    def gid(self) -> str:
        return gid(CUSTOMER, self.id)

    @property
    def display_name(self) -> str:
        names = " ".join(n for n in (self.first_name, self.last_name) if n)
        return names or self.email
