"""What ``bench/webhook_burst.py`` sends: orders in the Shopify sandbox store, the webhook
deliveries made of them, signed and posted at the daemon as Shopify posts them.

Every order is fulfilled with one DHL parcel (every fifth with two) and has one carrier event.
Each delivery is an ``orders/fulfilled``, ``orders/updated``, ``fulfillments/create``,
``fulfillments/update`` or ``fulfillment_events/create`` payload of one of those orders, topics
picked by the weights in :data:`TOPICS`; an original has a webhook id and an event id of its
own. On purpose, a share :data:`SAME_WEBHOOK_ID` of the deliveries repeat an original with its
webhook id (Shopify's retry) and a share :data:`SAME_EVENT_ID` repeat one under a new webhook id
with the same event id (Shopify's duplicate event), shuffled among the rest. :func:`post_all`
posts them ``concurrency`` at a time with Shopify's headers and HMAC, keeping each answer and
how long it took.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

SHOP = "bench-burst.myshopify.com"
TOPICS = {
    "orders/fulfilled": 30,
    "orders/updated": 20,
    "fulfillments/create": 15,
    "fulfillments/update": 25,
    "fulfillment_events/create": 10,
}
SAME_WEBHOOK_ID = 0.10
"""Share of the deliveries sent that repeat an earlier one's webhook id (a retry)."""
SAME_EVENT_ID = 0.05
"""Share that repeat an earlier one's event id under a new webhook id."""


@dataclass(frozen=True)
class Delivery:
    webhook_id: str
    event_id: str
    topic: str
    order: int  # the order's numeric id
    body: bytes
    kind: str  # original, same_webhook_id or same_event_id


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def make_orders(store: Any, count: int) -> list[Any]:
    """``count`` fulfilled orders, every fifth with two parcels, each with one carrier event."""
    from carriers.dhl.sandbox import sample_number

    orders = []
    for n in range(count):
        parcels = [("DHL Express", sample_number(2 * n + 1), None)]
        if n % 5 == 0:
            parcels.append(("DHL Express", sample_number(2 * n + 2), None))
        order = store.add_order(email=f"burst{n}@example.com", fulfillments=[parcels])
        store.create_event(order.fulfillments[0].id, "IN_TRANSIT", message="Departed hub")
        orders.append(order)
    return orders


def make_deliveries(store: Any, orders: list[Any], total: int, seed: int) -> list[Delivery]:
    """``total`` deliveries: originals, then repeats of some, shuffled."""
    from tracker.sandbox.webhook_payloads import event_payload, fulfillment_payload, order_payload

    rng = random.Random(seed)
    retries = round(total * SAME_WEBHOOK_ID)
    again = round(total * SAME_EVENT_ID)
    originals: list[Delivery] = []
    topics, weights = list(TOPICS), list(TOPICS.values())
    for n in range(total - retries - again):
        order = orders[n % len(orders)]
        topic = rng.choices(topics, weights)[0]
        fulfillment = order.fulfillments[0]
        if topic.startswith("orders/"):
            payload = order_payload(order)
        elif topic == "fulfillment_events/create":
            payload = event_payload(store.events(fulfillment.id)[0])
        else:
            payload = fulfillment_payload(fulfillment)
        body = json.dumps(payload).encode()
        originals.append(
            Delivery(str(uuid.uuid4()), str(uuid.uuid4()), topic, order.id, body, "original")
        )
    repeats = [
        Delivery(d.webhook_id, d.event_id, d.topic, d.order, d.body, "same_webhook_id")
        for d in rng.sample(originals, retries)
    ] + [
        Delivery(str(uuid.uuid4()), d.event_id, d.topic, d.order, d.body, "same_event_id")
        for d in rng.sample(originals, again)
    ]
    sent = originals + repeats
    rng.shuffle(sent)
    return sent


async def post_all(
    url: str, deliveries: list[Delivery], secret: str, concurrency: int
) -> tuple[list[tuple[Delivery, int, str, float]], float]:
    """Post every delivery, ``concurrency`` at a time; (delivery, status, answer, ms), seconds."""
    import aiohttp

    queue = list(reversed(deliveries))
    answers: list[tuple[Delivery, int, str, float]] = []

    async def worker(http: aiohttp.ClientSession) -> None:
        while queue:
            delivery = queue.pop()
            headers = {
                "Content-Type": "application/json",
                "X-Shopify-Topic": delivery.topic,
                "X-Shopify-Shop-Domain": SHOP,
                "X-Shopify-API-Version": "2026-10",
                "X-Shopify-Webhook-Id": delivery.webhook_id,
                "X-Shopify-Event-Id": delivery.event_id,
                "X-Shopify-Triggered-At": "2026-03-02T09:00:00.123456789Z",
                "X-Shopify-Hmac-Sha256": sign(delivery.body, secret),
            }
            started = time.perf_counter()
            try:
                async with http.post(url, data=delivery.body, headers=headers) as response:
                    status = response.status
                    text = await response.text()
                    answer = json.loads(text).get("status", text) if status == 200 else text
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                status, answer = 0, f"{type(exc).__name__}: {exc}"
            answers.append((delivery, status, answer, (time.perf_counter() - started) * 1000))

    connector = aiohttp.TCPConnector(limit=concurrency)
    started = time.perf_counter()
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return answers, time.perf_counter() - started
