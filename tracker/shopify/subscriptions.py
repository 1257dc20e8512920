"""Webhook subscriptions: the daemon's callback URL registered for every topic it handles.

Idempotent: the shop's subscriptions are listed first (``WebhookSubscriptions``) and only a topic
without a subscription to this exact URL is created (``WebhookSubscriptionCreate``), so running it
twice, or from several replicas, creates nothing new. Subscriptions of other URLs (another
deployment, another app) are left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from tracker.shopify.client import ShopifyClient, ShopifyError, ShopifyOutcomeUnknown

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/shopify"

# WebhookSubscriptionTopic values the daemon subscribes to. orders/updated is handled when it
# comes, but not subscribed: it fires on every order edit and adds nothing for tracking.
REGISTERED_TOPICS: tuple[str, ...] = (
    "ORDERS_FULFILLED",
    "ORDERS_PARTIALLY_FULFILLED",
    "ORDERS_CANCELLED",
    "FULFILLMENTS_CREATE",
    "FULFILLMENTS_UPDATE",
    "FULFILLMENT_EVENTS_CREATE",
    "BULK_OPERATIONS_FINISH",
)
MAX_SUBSCRIPTION_PAGES = 20

Outcome = Literal["created", "exists", "failed"]


def callback_url(public_url: str) -> str:
    """The URL Shopify posts webhooks to: ``<public_url>/webhooks/shopify``."""
    return public_url.rstrip("/") + WEBHOOK_PATH


@dataclass(frozen=True, slots=True)
class TopicRegistration:
    """What registering one topic did."""

    topic: str
    outcome: Outcome
    detail: str = ""

    def describe(self) -> str:
        words = {"created": "created", "exists": "already registered", "failed": "FAILED"}
        text = f"{self.topic}: {words[self.outcome]}"
        return f"{text}: {self.detail}" if self.detail else text


async def subscribed_urls(
    client: ShopifyClient, topics: tuple[str, ...] = REGISTERED_TOPICS
) -> dict[str, set[str]]:
    """Topic -> the HTTP callback URLs subscribed to it."""
    found: dict[str, set[str]] = {}
    after: str | None = None
    for _ in range(MAX_SUBSCRIPTION_PAGES):
        data = await client.query("WebhookSubscriptions", {"topics": list(topics), "after": after})
        connection = data["webhookSubscriptions"]
        for node in connection["nodes"]:
            endpoint = node.get("endpoint") or {}
            url = endpoint.get("callbackUrl")
            if isinstance(url, str):
                found.setdefault(str(node["topic"]), set()).add(url)
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    return found


async def register_webhooks(
    client: ShopifyClient, url: str, topics: tuple[str, ...] = REGISTERED_TOPICS
) -> list[TopicRegistration]:
    """Subscribe ``url`` to each of ``topics`` that it is not subscribed to yet."""
    try:
        existing = await subscribed_urls(client, topics)
    except ShopifyError as exc:
        log.error("%s: cannot list webhook subscriptions: %s", client.domain, exc)
        return [TopicRegistration(topic, "failed", f"cannot list: {exc}") for topic in topics]
    results = []
    for topic in topics:
        if url in existing.get(topic, set()):
            results.append(TopicRegistration(topic, "exists"))
            continue
        results.append(await _create(client, topic, url))
    created = sum(1 for r in results if r.outcome == "created")
    failed = sum(1 for r in results if r.outcome == "failed")
    log.info(
        "%s: webhooks to %s: %d created, %d already there, %d failed",
        client.domain,
        url,
        created,
        len(results) - created - failed,
        failed,
    )
    return results


async def _create(client: ShopifyClient, topic: str, url: str) -> TopicRegistration:
    variables: dict[str, Any] = {
        "topic": topic,
        "webhookSubscription": {"callbackUrl": url, "format": "JSON"},
    }
    try:
        data = await client.mutate("WebhookSubscriptionCreate", variables)
    except ShopifyOutcomeUnknown as exc:
        return TopicRegistration(topic, "failed", f"outcome unknown, run again: {exc}")
    except ShopifyError as exc:
        return TopicRegistration(topic, "failed", str(exc))
    payload = data.get("webhookSubscriptionCreate") or {}
    errors = payload.get("userErrors") or []
    if errors:
        messages = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict))
        log.error("%s: webhook %s refused: %s", client.domain, topic, messages)
        return TopicRegistration(topic, "failed", messages)
    if not payload.get("webhookSubscription"):
        return TopicRegistration(topic, "failed", "no subscription in the answer")
    return TopicRegistration(topic, "created")
