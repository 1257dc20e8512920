"""The Shopify sandbox's in-memory store: one shop's orders, fulfillments and events.

Tests and the demo world drive it from Python (:class:`ShopifyStore`) or over HTTP (the
``/_sandbox/`` routes of :mod:`tracker.sandbox.shopify_app`); the GraphQL API reads and writes it
like Shopify's Admin API would. Everything is synchronous and single-threaded: the aiohttp
server calls it from its event loop.

Faults for tests (lost answers, 503s, throttling) are counters on the store: see
:mod:`tracker.sandbox.shopify_faults`. :meth:`ShopifyStore.revoke_token` answers 401 to every
request until :meth:`ShopifyStore.restore_token`, :meth:`ShopifyStore.close_shop` answers as a
frozen, locked or inactive shop until :meth:`ShopifyStore.reopen_shop`;
:meth:`ShopifyStore.cancel_fulfillment` makes later ``fulfillmentEventCreate`` calls on it fail
with ``userErrors``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from tracker.sandbox import shopify_bulk
from tracker.sandbox.cost import LeakyBucket
from tracker.sandbox.shopify_faults import FaultCounters, StoreStats
from tracker.sandbox.shopify_models import (
    EVENT_STATUSES,
    FULFILLMENT,
    ORDER,
    Fulfillment,
    FulfillmentEvent,
    Order,
    TrackingInfo,
    legacy_id,
)
from tracker.sandbox.shopify_profile import ShopProfile
from tracker.sandbox.shopify_tokens import AccessTokens
from tracker.sandbox.shopify_webhooks import SandboxWebhooks

log = logging.getLogger(__name__)

TrackingSeed = TrackingInfo | tuple[str | None, str | None, str | None] | tuple[str | None, str]
"""A parcel to register: a :class:`TrackingInfo` or ``(company, number[, url])``."""

ObjectRef = int | str
"""An object named by its legacy id (``123`` or ``"123"``) or its gid."""


class SandboxError(Exception):
    """Base of the errors the store raises to its Python callers."""


class UnknownObjectError(SandboxError, LookupError):
    """No order / fulfillment with that id."""


class FulfillmentCancelledError(SandboxError):
    """The fulfillment is cancelled: it takes no more events or tracking changes."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _tracking(seed: TrackingSeed) -> TrackingInfo:
    if isinstance(seed, TrackingInfo):
        return seed
    if len(seed) == 2:
        return TrackingInfo(seed[0], seed[1])
    return TrackingInfo(seed[0], seed[1], seed[2])


class ShopifyStore(AccessTokens, FaultCounters):
    """One Shopify shop as the sandbox serves it.

    ``domain`` is the ``*.myshopify.com`` name, ``access_token`` the Admin API token a request
    must carry. The cost bucket holds ``bucket_size`` points refilled at ``restore_rate`` per
    second. ``now`` (aware UTC datetimes) and ``monotonic`` (seconds, for the bucket) are clocks
    tests may replace.
    """

    def __init__(
        self,
        domain: str,
        access_token: str,
        *,
        bucket_size: float = 1000,
        restore_rate: float = 50,
        shop_name: str | None = None,
        now: Callable[[], datetime] = _utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        AccessTokens.__init__(self, domain, access_token)
        # Carriers (tracking company names, case-insensitive) Shopify tracks natively here.
        self.native_tracking: set[str] = set()
        # False: the app lacks protected customer data access (name, e-mail are refused).
        self.protected_customer_data = True
        # The plan and the API versions served (older ones fall forward), for `tracker doctor`.
        self.profile = ShopProfile()
        self.shop_name = shop_name or domain.split(".", 1)[0].replace("-", " ").title()
        self.now = now
        self.bucket = LeakyBucket(bucket_size, restore_rate, clock=monotonic)
        FaultCounters.__init__(self)
        self.stats = StoreStats()
        self._orders: dict[int, Order] = {}
        self._fulfillments: dict[int, Fulfillment] = {}
        self._events: list[FulfillmentEvent] = []
        self._next_order_id = 5_000_001
        self._next_fulfillment_id = 7_000_001
        self._next_event_id = 9_000_001
        self._next_number = 1001
        # The scopes the merchant granted the app, and its bulk operations.
        self.access_scopes: set[str] = set(shopify_bulk.DEFAULT_ACCESS_SCOPES)
        self.bulk = shopify_bulk.BulkOperations(self)
        self.webhooks = SandboxWebhooks(domain, lambda: self.client_secret, lambda: self.now())

    # -- reading -------------------------------------------------------------------------------

    def orders(self) -> list[Order]:
        """Every order, oldest id first."""
        return list(self._orders.values())

    def visible_orders(self) -> list[Order]:
        """The orders the app may read: without ``read_all_orders``, the last 60 days only."""
        if "read_all_orders" in self.access_scopes:
            return self.orders()
        since = self.now() - shopify_bulk.RECENT_ORDERS
        return [order for order in self._orders.values() if order.created_at >= since]

    def set_faults(self, **counts: int) -> dict[str, int]:
        """Fault counters by name, the bulk ones (:mod:`shopify_bulk`) included."""
        bulk = self.bulk.take_faults(counts)
        return {**super().set_faults(**counts), **bulk}

    def order(self, order_id: ObjectRef) -> Order:
        """The order with that legacy id or gid; :class:`UnknownObjectError` if none."""
        number = legacy_id(order_id, ORDER)
        order = self._orders.get(number) if number is not None else None
        if order is None:
            raise UnknownObjectError(f"no order {order_id!r}")
        return order

    def fulfillment(self, fulfillment_id: ObjectRef) -> Fulfillment:
        """The fulfillment with that legacy id or gid; :class:`UnknownObjectError` if none."""
        number = legacy_id(fulfillment_id, FULFILLMENT)
        fulfillment = self._fulfillments.get(number) if number is not None else None
        if fulfillment is None:
            raise UnknownObjectError(f"no fulfillment {fulfillment_id!r}")
        return fulfillment

    def fulfillments(self) -> list[Fulfillment]:
        """Every fulfillment, oldest first."""
        return list(self._fulfillments.values())

    def events(self, fulfillment_id: ObjectRef) -> list[FulfillmentEvent]:
        """A fulfillment's events in ``happened_at`` order (ties: creation order)."""
        found = self.fulfillment(fulfillment_id)
        return sorted(found.events, key=lambda e: (e.happened_at, e.id))

    def all_events(self) -> list[FulfillmentEvent]:
        """Every event of the shop, in creation order."""
        return list(self._events)

    # -- writing -------------------------------------------------------------------------------

    def _stamp(self) -> datetime:
        return self.now().astimezone(UTC).replace(microsecond=0)

    def _touch(self, order: Order) -> None:
        """Bump ``order.updated_at``: never backwards, one second at least per change.

        Shopify serves DateTime to the second; a one-second step keeps two changes within the
        same second apart for ``updated_at:>`` searches.
        """
        order.updated_at = max(self._stamp(), order.updated_at + timedelta(seconds=1))

    def add_order(
        self,
        name: str | None = None,
        *,
        email: str | None = None,
        fulfillments: Iterable[Iterable[TrackingSeed]] = (),
        unfulfilled_items: int = 0,
        created_at: datetime | None = None,
    ) -> Order:
        """Create an order, with one fulfillment per entry of ``fulfillments``.

        Each fulfillment ships one item and carries the given parcels (``(company, number,
        url)``). ``unfulfilled_items`` more items are left to ship, so an order with
        fulfillments and unfulfilled items is PARTIALLY_FULFILLED; an order with neither has one
        unfulfilled item. Names default to ``#1001``, ``#1002``... ``created_at`` defaults to
        now.
        """
        seeds = [list(parcels) for parcels in fulfillments]
        if name is None:
            taken = {o.name for o in self._orders.values()}
            while f"#{self._next_number}" in taken:
                self._next_number += 1
            name = f"#{self._next_number}"
            self._next_number += 1
        stamp = (created_at or self._stamp()).astimezone(UTC).replace(microsecond=0)
        order = Order(
            id=self._next_order_id,
            name=name,
            email=email,
            created_at=stamp,
            updated_at=stamp,
            item_count=max(1, len(seeds) + max(0, unfulfilled_items)),
        )
        self._next_order_id += 1
        self._orders[order.id] = order
        for parcels in seeds:
            self._new_fulfillment(order, parcels, created_at=stamp)
        log.debug("sandbox order %s created with %d fulfillments", order.name, len(seeds))
        self.webhooks.order_created(order)
        return order

    def _new_fulfillment(
        self,
        order: Order,
        tracking: Iterable[TrackingSeed],
        *,
        created_at: datetime,
        estimated_delivery_at: datetime | None = None,
    ) -> Fulfillment:
        fulfillment = Fulfillment(
            id=self._next_fulfillment_id,
            order_id=order.id,
            name=f"{order.name}.{len(order.fulfillments) + 1}",
            created_at=created_at,
            updated_at=created_at,
            tracking=[_tracking(seed) for seed in tracking],
            estimated_delivery_at=estimated_delivery_at,
            initial_estimated_delivery_at=estimated_delivery_at,
        )
        self._next_fulfillment_id += 1
        self._fulfillments[fulfillment.id] = fulfillment
        order.fulfillments.append(fulfillment)
        companies = {(t.company or "").casefold() for t in fulfillment.tracking}
        if companies & self.native_tracking:
            # Shopify tracks this carrier itself and records its own first event.
            self.create_event(
                fulfillment.id,
                "CONFIRMED",
                happened_at=created_at,
                message="Tracking by Shopify (carrier-calculated)",
            )
        return fulfillment

    def add_fulfillment(
        self,
        order_id: ObjectRef,
        tracking: Iterable[TrackingSeed],
        *,
        estimated_delivery_at: datetime | None = None,
    ) -> Fulfillment:
        """Ship one more item of an order with the given parcels.

        The order grows by one item if all its items were already shipped, so this never fails
        for a known order; its ``updated_at`` moves on.
        """
        order = self.order(order_id)
        if order.fulfilled_quantity >= order.item_count:
            order.item_count += 1
        fulfillment = self._new_fulfillment(
            order, tracking, created_at=self._stamp(), estimated_delivery_at=estimated_delivery_at
        )
        self._touch(order)
        self.webhooks.fulfillment_created(order, fulfillment)
        return fulfillment

    def update_tracking(
        self, fulfillment_id: ObjectRef, tracking: Iterable[TrackingSeed]
    ) -> Fulfillment:
        """Replace a fulfillment's parcels (``fulfillmentTrackingInfoUpdate``)."""
        fulfillment = self.fulfillment(fulfillment_id)
        if fulfillment.cancelled:
            raise FulfillmentCancelledError(f"fulfillment {fulfillment.id} is cancelled")
        fulfillment.tracking = [_tracking(seed) for seed in tracking]
        fulfillment.updated_at = self._stamp()
        self._touch(self._orders[fulfillment.order_id])
        self.webhooks.fulfillment_updated(self._orders[fulfillment.order_id], fulfillment)
        return fulfillment

    def cancel_fulfillment(self, fulfillment_id: ObjectRef) -> Fulfillment:
        """Cancel a fulfillment: status CANCELLED, its items unshipped again."""
        fulfillment = self.fulfillment(fulfillment_id)
        if not fulfillment.cancelled:
            fulfillment.status = "CANCELLED"
            fulfillment.recompute_from_events()
            fulfillment.updated_at = self._stamp()
            self._touch(self._orders[fulfillment.order_id])
            self.webhooks.fulfillment_updated(self._orders[fulfillment.order_id], fulfillment)
        return fulfillment

    def cancel_order(self, order_id: ObjectRef) -> Order:
        """Cancel an order (``cancelledAt`` set; the order is closed as well)."""
        order = self.order(order_id)
        if order.cancelled_at is None:
            order.cancelled_at = self._stamp()
            order.closed_at = order.closed_at or order.cancelled_at
            self._touch(order)
            self.webhooks.order_cancelled(order)
        return order

    def close_order(self, order_id: ObjectRef) -> Order:
        """Archive an order (``closed`` true) without cancelling it."""
        order = self.order(order_id)
        if order.closed_at is None:
            order.closed_at = self._stamp()
            self._touch(order)
            self.webhooks.order_updated(order)
        return order

    def create_event(
        self,
        fulfillment_id: ObjectRef,
        status: str,
        *,
        happened_at: datetime | None = None,
        estimated_delivery_at: datetime | None = None,
        message: str | None = None,
        address1: str | None = None,
        city: str | None = None,
        province: str | None = None,
        country: str | None = None,
        zip: str | None = None,
        latitude: float | None = None,
        longitude: float | None = None,
    ) -> FulfillmentEvent:
        """Add a fulfillment event, as ``fulfillmentEventCreate`` does.

        ``status`` is a FulfillmentEventStatus in any case (``"in_transit"`` or
        ``"IN_TRANSIT"``); ``happened_at`` defaults to now. The fulfillment's display status,
        ``inTransitAt``, ``deliveredAt`` and ETA are derived again from all its events and the
        order's ``updated_at`` moves on. Raises :class:`UnknownObjectError` or
        :class:`FulfillmentCancelledError`, and ValueError for an unknown status.
        """
        fulfillment = self.fulfillment(fulfillment_id)
        if fulfillment.cancelled:
            raise FulfillmentCancelledError(f"fulfillment {fulfillment.id} is cancelled")
        name = str(status).upper()
        if name not in EVENT_STATUSES:
            raise ValueError(f"unknown fulfillment event status {status!r}")
        created = self.now().astimezone(UTC)
        event = FulfillmentEvent(
            id=self._next_event_id,
            fulfillment_id=fulfillment.id,
            order_id=fulfillment.order_id,
            status=name,
            happened_at=(happened_at or created).astimezone(UTC),
            created_at=created,
            message=message,
            address1=address1,
            city=city,
            province=province,
            country=country,
            zip=zip,
            latitude=latitude,
            longitude=longitude,
            estimated_delivery_at=estimated_delivery_at,
        )
        self._next_event_id += 1
        fulfillment.events.append(event)
        self._events.append(event)
        fulfillment.recompute_from_events()
        fulfillment.updated_at = self._stamp()
        self._touch(self._orders[fulfillment.order_id])
        self.stats.events_created += 1
        log.debug("sandbox event %s %s on fulfillment %s", event.id, name, fulfillment.id)
        self.webhooks.event_created(self._orders[fulfillment.order_id], event)
        return event
