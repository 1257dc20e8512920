"""REST-shaped webhook payloads of the Shopify sandbox's orders, fulfillments and events.

Pure: a snapshot of a record as Shopify's webhooks show it (numeric ids plus
``admin_graphql_api_id``, snake_case keys, lower-case statuses, ISO timestamps).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tracker.sandbox.shopify_models import Fulfillment, FulfillmentEvent, Order

_ORDER_STATUS = {"FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial"}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds")


def fulfillment_payload(fulfillment: Fulfillment) -> dict[str, Any]:
    """A fulfillment as REST webhooks show it."""
    tracking = fulfillment.tracking
    return {
        "id": fulfillment.id,
        "admin_graphql_api_id": fulfillment.gid,
        "order_id": fulfillment.order_id,
        "name": fulfillment.name,
        "status": fulfillment.status.lower(),
        "shipment_status": None if not fulfillment.events else fulfillment.display_status.lower(),
        "created_at": _iso(fulfillment.created_at),
        "updated_at": _iso(fulfillment.updated_at),
        "tracking_company": tracking[0].company if tracking else None,
        "tracking_number": tracking[0].number if tracking else None,
        "tracking_numbers": [t.number for t in tracking if t.number],
        "tracking_url": tracking[0].url if tracking else None,
        "tracking_urls": [t.url for t in tracking if t.url],
    }


def order_payload(order: Order) -> dict[str, Any]:
    """An order as REST webhooks show it."""
    return {
        "id": order.id,
        "admin_graphql_api_id": order.gid,
        "name": order.name,
        "email": order.email,
        "created_at": _iso(order.created_at),
        "updated_at": _iso(order.updated_at),
        "cancelled_at": _iso(order.cancelled_at),
        "closed_at": _iso(order.closed_at),
        "fulfillment_status": _ORDER_STATUS.get(order.display_fulfillment_status),
        "fulfillments": [fulfillment_payload(f) for f in order.fulfillments],
    }


def event_payload(event: FulfillmentEvent) -> dict[str, Any]:
    """A fulfillment event as REST webhooks show it (status in lower case)."""
    return {
        "id": event.id,
        "admin_graphql_api_id": event.gid,
        "fulfillment_id": event.fulfillment_id,
        "order_id": event.order_id,
        "status": event.status.lower(),
        "happened_at": _iso(event.happened_at),
        "created_at": _iso(event.created_at),
        "updated_at": _iso(event.created_at),
        "estimated_delivery_at": _iso(event.estimated_delivery_at),
        "message": event.message,
        "address1": event.address1,
        "city": event.city,
        "province": event.province,
        "country": event.country,
        "zip": event.zip,
        "latitude": event.latitude,
        "longitude": event.longitude,
    }
