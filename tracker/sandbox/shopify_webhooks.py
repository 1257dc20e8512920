"""The Shopify sandbox's webhooks: subscriptions, and deliveries the way Shopify makes them.

The store calls :class:`SandboxWebhooks` on each change (an order fulfilled, partially fulfilled
or cancelled; a fulfillment created, its tracking edited, cancelled; a fulfillment event
created, the daemon's own writes included). Every subscription of the topic gets one delivery:
a REST-shaped JSON payload snapshotted at that moment, with Shopify's headers
(``X-Shopify-Topic``, ``-Shop-Domain``, ``-API-Version``, ``-Webhook-Id``, ``-Event-Id``,
``-Triggered-At``, ``-Hmac-Sha256`` signed with the store's client secret).

A background task (:meth:`SandboxWebhooks.background`, run by the sandbox app) sends them one at
a time. A failed delivery (non-2xx, connection error, timeout) is retried with short doubling
backoff, up to ``max_attempts``. :class:`DeliverySettings` can also make deliveries arrive twice
(the same webhook id again, or the same event under a new webhook id) and late (held back so a
later one overtakes it); those choices come from a seeded random generator, so a test sees the
same sequence every run. Everything is off by default. Each attempt is logged for tests
(``GET /_sandbox/webhooks/deliveries``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from tracker.sandbox.shopify_models import Fulfillment, FulfillmentEvent, Order
from tracker.sandbox.webhook_payloads import event_payload, fulfillment_payload, order_payload

log = logging.getLogger(__name__)

# WebhookSubscriptionTopic value -> the topic name deliveries carry.
TOPICS: dict[str, str] = {
    "ORDERS_FULFILLED": "orders/fulfilled",
    "ORDERS_PARTIALLY_FULFILLED": "orders/partially_fulfilled",
    "ORDERS_CANCELLED": "orders/cancelled",
    "ORDERS_UPDATED": "orders/updated",
    "FULFILLMENTS_CREATE": "fulfillments/create",
    "FULFILLMENTS_UPDATE": "fulfillments/update",
    "FULFILLMENT_EVENTS_CREATE": "fulfillment_events/create",
    "BULK_OPERATIONS_FINISH": "bulk_operations/finish",
}
LOG_LENGTH = 10_000


@dataclass
class Subscription:
    """A ``WebhookSubscription`` with an HTTP endpoint."""

    id: int
    topic: str
    callback_url: str
    format: str
    api_version: str
    created_at: datetime
    updated_at: datetime

    @property
    def gid(self) -> str:
        return f"gid://shopify/WebhookSubscription/{self.id}"


@dataclass
class DeliverySettings:
    """How deliveries behave; tests change these (``POST /_sandbox/webhooks/settings``)."""

    max_attempts: int = 5
    retry_base_seconds: float = 0.1
    timeout_seconds: float = 5.0
    duplicate_probability: float = 0.0
    delay_probability: float = 0.0
    delay_seconds: float = 1.0
    seed: int = 0

    def check(self) -> None:
        if not 1 <= self.max_attempts <= 20:
            raise ValueError("max_attempts must be from 1 to 20")
        for name in ("duplicate_probability", "delay_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be from 0 to 1")
        for name in ("retry_base_seconds", "timeout_seconds", "delay_seconds"):
            if not 0.0 <= getattr(self, name) <= 60.0:
                raise ValueError(f"{name} must be from 0 to 60 seconds")


@dataclass
class Outgoing:
    """One webhook on its way to one subscription."""

    webhook_id: str
    event_id: str
    topic: str
    address: str
    api_version: str
    triggered_at: str
    body: bytes
    due: float
    sequence: int
    attempt: int = 0
    duplicate: bool = False
    delayed: bool = False
    resend: str | None = None  # "same_id" / "new_id": send once more after it succeeds


@dataclass(frozen=True)
class DeliveryAttempt:
    """One POST the sandbox made, for tests to assert on."""

    webhook_id: str
    event_id: str
    topic: str
    address: str
    attempt: int
    status: int | None
    error: str | None
    duplicate: bool
    delayed: bool
    sequence: int
    """Order of emission: a smaller number logged after a larger one arrived out of order."""
    payload: dict[str, Any]


@dataclass
class SandboxWebhooks:
    """A shop's webhook subscriptions and its outbox of deliveries."""

    domain: str
    secret: Callable[[], str]
    now: Callable[[], datetime]
    settings: DeliverySettings = field(default_factory=DeliverySettings)
    attempts: deque[DeliveryAttempt] = field(default_factory=lambda: deque(maxlen=LOG_LENGTH))
    _subscriptions: list[Subscription] = field(default_factory=list)
    _outbox: list[Outgoing] = field(default_factory=list)
    _next_id: int = 3_000_001
    _sequence: int = 0
    _in_flight: int = 0
    _rng: random.Random = field(default_factory=lambda: random.Random(0))
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    # -- subscriptions -------------------------------------------------------------------------

    def configure(self, **changes: Any) -> DeliverySettings:
        """Change delivery settings (ValueError for a bad one); reseeds the generator."""
        settings = replace(self.settings, **changes)
        settings.check()
        self.settings = settings
        self._rng = random.Random(settings.seed)
        return settings

    def subscriptions(
        self,
        topics: list[str] | None = None,
        callback_url: str | None = None,
        format: str | None = None,
    ) -> list[Subscription]:
        return [
            s
            for s in self._subscriptions
            if (topics is None or s.topic in topics)
            and (callback_url is None or s.callback_url == callback_url)
            and (format is None or s.format == format)
        ]

    def subscribe(
        self, topic: str, callback_url: str | None, format: str, api_version: str
    ) -> tuple[Subscription | None, list[dict[str, Any]]]:
        """``webhookSubscriptionCreate``: the subscription, or Shopify's userErrors."""

        def error(message: str) -> tuple[None, list[dict[str, Any]]]:
            return None, [{"field": ["webhookSubscription", "callbackUrl"], "message": message}]

        if not callback_url:
            return error("Address can't be blank")
        parts = urlsplit(callback_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return error("Address is invalid")
        if format != "JSON":
            return None, [
                {
                    "field": ["webhookSubscription", "format"],
                    "message": "The sandbox only delivers JSON",
                }
            ]
        if self.subscriptions([topic], callback_url):
            return error("Address for this topic has already been taken")
        stamp = self.now().astimezone(UTC).replace(microsecond=0)
        subscription = Subscription(
            self._next_id, topic, callback_url, format, api_version, stamp, stamp
        )
        self._next_id += 1
        self._subscriptions.append(subscription)
        log.info("sandbox %s: %s subscribed to %s", self.domain, callback_url, topic)
        return subscription, []

    # -- what the store calls ------------------------------------------------------------------

    def emit(self, topic: str, payload: Callable[[], dict[str, Any]]) -> int:
        """Queue one delivery of ``topic`` per subscription; returns how many."""
        targets = [s for s in self._subscriptions if TOPICS.get(s.topic) == topic]
        if not targets:
            return 0
        body = json.dumps(payload(), separators=(",", ":")).encode()
        event_id = str(uuid.uuid4())
        triggered_at = self.now().astimezone(UTC).isoformat(timespec="milliseconds")
        now = time.monotonic()
        for subscription in targets:
            delayed = self._chance(self.settings.delay_probability)
            resend = None
            if self._chance(self.settings.duplicate_probability):
                resend = "same_id" if self._rng.random() < 0.5 else "new_id"
            self._sequence += 1
            self._outbox.append(
                Outgoing(
                    webhook_id=str(uuid.uuid4()),
                    event_id=event_id,
                    topic=topic,
                    address=subscription.callback_url,
                    api_version=subscription.api_version,
                    triggered_at=triggered_at.replace("+00:00", "Z"),
                    body=body,
                    due=now + (self.settings.delay_seconds if delayed else 0.0),
                    sequence=self._sequence,
                    delayed=delayed,
                    resend=resend,
                )
            )
        self._wake.set()
        return len(targets)

    def _chance(self, probability: float) -> bool:
        return probability > 0 and self._rng.random() < probability

    def order_fulfillment_changed(self, order: Order) -> None:
        """A fulfillment was added: orders/fulfilled or orders/partially_fulfilled."""
        status = order.display_fulfillment_status
        if status == "FULFILLED":
            self.emit("orders/fulfilled", lambda: order_payload(order))
        elif status == "PARTIALLY_FULFILLED":
            self.emit("orders/partially_fulfilled", lambda: order_payload(order))
        self.order_updated(order)

    def order_updated(self, order: Order) -> None:
        self.emit("orders/updated", lambda: order_payload(order))

    def order_cancelled(self, order: Order) -> None:
        self.emit("orders/cancelled", lambda: order_payload(order))
        self.order_updated(order)

    def order_created(self, order: Order) -> None:
        """A new order, perhaps with fulfillments already."""
        for fulfillment in order.fulfillments:
            self.emit("fulfillments/create", functools.partial(fulfillment_payload, fulfillment))
        if order.fulfillments:
            self.order_fulfillment_changed(order)

    def fulfillment_created(self, order: Order, fulfillment: Fulfillment) -> None:
        self.emit("fulfillments/create", lambda: fulfillment_payload(fulfillment))
        self.order_fulfillment_changed(order)

    def fulfillment_updated(self, order: Order, fulfillment: Fulfillment) -> None:
        """Tracking edited or the fulfillment cancelled."""
        self.emit("fulfillments/update", lambda: fulfillment_payload(fulfillment))
        self.order_updated(order)

    def event_created(self, order: Order, event: FulfillmentEvent) -> None:
        self.emit("fulfillment_events/create", lambda: event_payload(event))
        self.order_updated(order)

    # -- delivery ------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Deliveries not yet made, being made, or to be tried again."""
        return len(self._outbox) + self._in_flight

    def attempts_json(self) -> list[dict[str, Any]]:
        return [asdict(attempt) for attempt in self.attempts]

    async def background(self, _app: web.Application) -> AsyncIterator[None]:
        """``cleanup_ctx`` of the sandbox app: deliver while it runs."""
        async with aiohttp.ClientSession() as session:
            task = asyncio.create_task(self.deliver_forever(session))
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def deliver_forever(self, session: aiohttp.ClientSession) -> None:
        """Send due deliveries one at a time, oldest first; sleep until the next is due."""
        while True:
            self._wake.clear()
            now = time.monotonic()
            due = [item for item in self._outbox if item.due <= now]
            if not due:
                wait = min((item.due for item in self._outbox), default=now + 60.0) - now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(wait, 0.001))
                continue
            item = min(due, key=lambda o: (o.due, o.sequence))
            self._outbox.remove(item)
            self._in_flight += 1
            try:
                await self._send(session, item)
            finally:
                self._in_flight -= 1

    def _headers(self, item: Outgoing) -> dict[str, str]:
        digest = hmac.new(self.secret().encode(), item.body, hashlib.sha256).digest()
        return {
            "Content-Type": "application/json",
            "X-Shopify-Topic": item.topic,
            "X-Shopify-Shop-Domain": self.domain,
            "X-Shopify-API-Version": item.api_version,
            "X-Shopify-Webhook-Id": item.webhook_id,
            "X-Shopify-Event-Id": item.event_id,
            "X-Shopify-Triggered-At": item.triggered_at,
            "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        }

    async def _send(self, session: aiohttp.ClientSession, item: Outgoing) -> None:
        item.attempt += 1
        status: int | None = None
        error: str | None = None
        timeout = aiohttp.ClientTimeout(
            total=self.settings.timeout_seconds, connect=min(1.0, self.settings.timeout_seconds)
        )
        try:
            async with session.post(
                item.address, data=item.body, headers=self._headers(item), timeout=timeout
            ) as response:
                status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        self.attempts.append(
            DeliveryAttempt(
                item.webhook_id,
                item.event_id,
                item.topic,
                item.address,
                item.attempt,
                status,
                error,
                item.duplicate,
                item.delayed,
                item.sequence,
                json.loads(item.body),
            )
        )
        now = time.monotonic()
        if status is None or not 200 <= status < 300:
            if item.attempt < self.settings.max_attempts:
                item.due = now + self.settings.retry_base_seconds * 2 ** (item.attempt - 1)
                self._outbox.append(item)
            else:
                log.warning(
                    "sandbox webhook %s to %s given up: %s",
                    item.topic,
                    item.address,
                    error or status,
                )
            return
        if item.resend is not None:
            self._sequence += 1
            webhook_id = item.webhook_id if item.resend == "same_id" else str(uuid.uuid4())
            self._outbox.append(
                replace(
                    item,
                    webhook_id=webhook_id,
                    attempt=0,
                    duplicate=True,
                    resend=None,
                    due=now + self.settings.retry_base_seconds,
                    sequence=self._sequence,
                )
            )
