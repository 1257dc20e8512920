"""Reading a fulfillment's events back from Shopify, and Shopify's way of writing times."""

from __future__ import annotations

from datetime import UTC, datetime

from tracker.shopify.client import ShopifyClient


async def fetch_remote_events(
    client: ShopifyClient, fulfillment_id: str
) -> list[tuple[str, str, str]]:
    """(id, STATUS, happenedAt to the second in UTC) of every event on the fulfillment."""
    events: list[tuple[str, str, str]] = []
    after: str | None = None
    while True:
        data = await client.query("FulfillmentEvents", {"id": fulfillment_id, "after": after})
        fulfillment = data.get("fulfillment")
        if fulfillment is None:
            return events
        connection = fulfillment["events"]
        for node in connection["nodes"]:
            happened = datetime.fromisoformat(str(node["happenedAt"]).replace("Z", "+00:00"))
            events.append((str(node["id"]), str(node["status"]), shopify_time(happened)))
        if not connection["pageInfo"]["hasNextPage"]:
            return events
        after = connection["pageInfo"]["endCursor"]


def shopify_time(moment: datetime) -> str:
    """``2026-11-27T10:04:05Z``: UTC to the second, as Shopify returns ``happenedAt``."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
