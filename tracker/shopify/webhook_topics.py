"""Shopify webhook topics this daemon handles, and the ids their REST-shaped payloads carry.

Pure: no I/O. Payloads are never trusted for state, only for which object changed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

ORDER_TOPICS = frozenset(
    {
        "orders/fulfilled",
        "orders/partially_fulfilled",
        "orders/cancelled",
        "orders/updated",
        "fulfillments/create",
        "fulfillments/update",
    }
)
EVENT_TOPIC = "fulfillment_events/create"
BULK_TOPIC = "bulk_operations/finish"
HANDLED_TOPICS = ORDER_TOPICS | {EVENT_TOPIC, BULK_TOPIC}

_GID = re.compile(r"^gid://shopify/(?P<type>[A-Za-z]+)/(?P<id>[0-9]{1,20})$")


def gid_of(type_name: str, value: object) -> str | None:
    """``gid://shopify/<type_name>/N`` from a numeric id (int or digits) or such a gid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 < value < 2**63:
        return f"gid://shopify/{type_name}/{value}"
    if isinstance(value, str):
        if value.isascii() and value.isdigit() and 0 < len(value) <= 18 and int(value) > 0:
            return f"gid://shopify/{type_name}/{int(value)}"
        match = _GID.match(value)
        if match and match["type"] == type_name:
            return value
    return None


def order_gid(topic: str, payload: Mapping[str, Any]) -> str | None:
    """The order a delivery of an order or fulfillment topic is about."""
    if topic.startswith("orders/"):
        return gid_of("Order", payload.get("admin_graphql_api_id")) or gid_of(
            "Order", payload.get("id")
        )
    return gid_of("Order", payload.get("order_id"))


def event_gids(payload: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(fulfillment event gid, fulfillment gid)`` of a ``fulfillment_events/create`` payload."""
    event = gid_of("FulfillmentEvent", payload.get("admin_graphql_api_id")) or gid_of(
        "FulfillmentEvent", payload.get("id")
    )
    return event, gid_of("Fulfillment", payload.get("fulfillment_id"))
