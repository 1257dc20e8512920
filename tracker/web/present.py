"""How shipments read: status words and colours, times, places, and their JSON shape.

Pure functions of their inputs (and, for relative times, of ``now``); the Jinja filters of the
status table and the JSON API's serializers both live here so the two say the same thing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from tracker.domain import Status


class Row(Protocol):
    """A database row by column name (``asyncpg.Record``, or a dict in tests)."""

    def __getitem__(self, key: str, /) -> Any: ...


STATUS_WORDS: dict[str, str] = {
    Status.LABEL_PURCHASED: "Label purchased",
    Status.LABEL_PRINTED: "Label printed",
    Status.CONFIRMED: "Confirmed",
    Status.CARRIER_PICKED_UP: "Picked up by carrier",
    Status.IN_TRANSIT: "In transit",
    Status.OUT_FOR_DELIVERY: "Out for delivery",
    Status.ATTEMPTED_DELIVERY: "Delivery attempted",
    Status.READY_FOR_PICKUP: "Ready for pickup",
    Status.DELAYED: "Delayed",
    Status.DELIVERED: "Delivered",
    Status.FAILURE: "Delivery failed",
}
NO_STATUS_WORDS = "No scans yet"

# Badge colour groups: problem (red), attention (amber), moving (blue), delivered (green).
_STATUS_GROUP: dict[str, str] = {
    Status.FAILURE: "problem",
    Status.ATTEMPTED_DELIVERY: "attention",
    Status.DELAYED: "attention",
    Status.READY_FOR_PICKUP: "attention",
    Status.OUT_FOR_DELIVERY: "moving",
    Status.IN_TRANSIT: "moving",
    Status.CARRIER_PICKED_UP: "moving",
    Status.CONFIRMED: "moving",
    Status.LABEL_PRINTED: "moving",
    Status.LABEL_PURCHASED: "moving",
    Status.DELIVERED: "delivered",
}

CARRIER_STATE_WORDS: dict[str, str] = {
    "pending": "Not polled yet",
    "found": "Found",
    "not_found": "Not found",
    "invalid_number": "Invalid tracking number",
    "carrier_error": "Carrier error",
    "unavailable": "Carrier unavailable",
    "no_adapter": "Not tracked",
}

ATTENTION_WORDS: dict[str, str] = {
    "returned_or_failed": "Returned or failed",
    "delivery_attempt_failed": "Delivery attempt failed",
    "not_found": "Carrier cannot find it",
    "expired": "No scan for 30 days",
    "stalled": "Stalled",
    "late": "Late",
    "waiting_at_pickup": "Waiting at pickup point",
    "no_tracking_number": "No tracking number",
    "carrier_not_tracked": "Carrier not tracked",
}

WRITEBACK_WORDS: dict[str, str] = {
    "pending": "Pending",
    "sending": "Sending",
    "written": "Written",
    "failed": "Failed",
    "skipped": "Skipped",
}

# The tabs of the table (tracker.web.selection.TAB_CONDITIONS): label and what it holds.
TAB_WORDS: dict[str, tuple[str, str]] = {
    "all": ("All", "Every shipment"),
    "attention": ("Needs attention", "Flagged: late, stalled, failed, not found, ..."),
    "active": ("All active", "Still on its way or still being tracked"),
    "pre_transit": ("Pre-transit", "Label made or no scan yet"),
    "in_transit": ("In transit", "Picked up, in transit or delayed"),
    "out_for_delivery": (
        "Out for delivery",
        "Out for delivery, a delivery attempt, or waiting at a pickup point",
    ),
    "delivered": ("Delivered", "Delivered"),
    "problems": ("Problems", "Failed or returned, expired, or the carrier cannot find it"),
    "untracked": ("Untracked", "Fulfilled without a tracking number"),
}

# Sortable columns: heading words.
SORT_WORDS: dict[str, str] = {
    "order": "Order",
    "status": "Status",
    "last_scan": "Last scan",
    "eta": "ETA",
    "transit": "Days in transit",
    "shipped": "Shipped",
}

PublicUrl = Callable[[str, str], str | None]
"""The carrier's public tracking page for (carrier code, tracking number), if it has one."""

_ORDER_GID = re.compile(r"gid://shopify/Order/([0-9]{1,20})")
_SHOP_HANDLE = re.compile(r"([a-z0-9][a-z0-9-]{0,62})\.myshopify\.com")
_WEB_URL = re.compile(r"https?://[^\s\x00-\x1f]+", re.IGNORECASE)


def status_words(status: str | None) -> str:
    """``out_for_delivery`` -> ``Out for delivery``; None -> ``No scans yet``."""
    if status is None:
        return NO_STATUS_WORDS
    return STATUS_WORDS.get(status, status.replace("_", " ").capitalize())


def status_group(status: str | None) -> str:
    """The badge colour group of a status: problem, attention, moving, delivered or none."""
    if status is None:
        return "none"
    return _STATUS_GROUP.get(status, "none")


def carrier_problem(state: str, message: str) -> str | None:
    """``Not found: No shipment with ...`` when the carrier reported a problem, else None."""
    if state in ("found", "pending"):
        return None
    words = CARRIER_STATE_WORDS.get(state, state)
    return f"{words}: {message}" if message else words


def place(city: str | None, province: str | None, zip_code: str | None, country: str | None) -> str:
    """``Leipzig, 04109, DE``: the parts that are known, in that order."""
    return ", ".join(part for part in (city, province, zip_code, country) if part)


def utc_text(moment: datetime | None) -> str:
    """``2025-03-04 13:05 UTC``; empty for None."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def day_text(moment: datetime | None) -> str:
    """``2025-03-04`` (the UTC day); empty for None."""
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d")


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with ``Z``, e.g. ``2025-03-04T13:05:00Z``; None stays None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def relative(moment: datetime | None, now: datetime | None = None) -> str:
    """``3 h ago``, ``in 2 d``, ``just now``; empty for None."""
    if moment is None:
        return ""
    now = now or datetime.now(UTC)
    seconds = (now - moment).total_seconds()
    size = abs(seconds)
    if size < 60:
        return "just now"
    if size < 3600:
        amount = f"{int(size // 60)} min"
    elif size < 48 * 3600:
        amount = f"{int(size // 3600)} h"
    else:
        amount = f"{int(size // 86400)} d"
    return f"{amount} ago" if seconds > 0 else f"in {amount}"


def admin_order_url(shop: str, order_id: str) -> str | None:
    """The order's page in the Shopify admin: ``https://admin.shopify.com/store/<handle>/orders/<id>``
    for an order ``gid://shopify/Order/<id>`` of ``<handle>.myshopify.com``.
    """
    handle = _SHOP_HANDLE.fullmatch(shop.lower())
    legacy = _ORDER_GID.fullmatch(order_id)
    if handle is None or legacy is None:
        return None
    return f"https://admin.shopify.com/store/{handle.group(1)}/orders/{legacy.group(1)}"


def tracking_url(row: Row, public_url: PublicUrl) -> str | None:
    """Where to follow the parcel: the carrier's page, else the order's own (http(s) only)."""
    number = row["tracking_number"]
    if not number:
        return None
    if row["carrier"]:
        url = public_url(row["carrier"], number)
        if url:
            return url
    given = row["tracking_url"]
    if isinstance(given, str) and _WEB_URL.fullmatch(given.strip()):
        return given.strip()
    return None


def days_in_transit(row: Row, now: datetime | None = None) -> int | None:
    """Whole days from fulfilment to delivery, or to now while it is not delivered."""
    start = row["fulfilled_at"]
    if start is None:
        return None
    end = row["status_at"] if row["status"] == "delivered" and row["status_at"] else None
    seconds = ((end or now or datetime.now(UTC)) - start).total_seconds()
    return max(0, int(seconds // 86400))


def last_event_json(row: Row) -> dict[str, Any] | None:
    """The ``ev_*`` columns of a shipment row as the API's ``last_event``."""
    if row["ev_id"] is None:
        return None
    return {
        "status": row["ev_status"],
        "message": row["ev_message"],
        "city": row["ev_city"],
        "province": row["ev_province"],
        "country": row["ev_country"],
        "zip": row["ev_zip"],
        "happened_at": iso(row["ev_happened_at"]),
        "carrier_code": row["ev_carrier_code"],
    }


def shipment_json(row: Row, public_url: PublicUrl, now: datetime | None = None) -> dict[str, Any]:
    """One shipment row (:mod:`tracker.web.queries`) as the API serves it."""
    return {
        "id": row["id"],
        "shop": row["shop"],
        "order_name": row["order_name"],
        "order_id": row["order_id"],
        "order_url": admin_order_url(row["shop"], row["order_id"]),
        "customer": {"name": row["customer_name"], "email": row["customer_email"]},
        "fulfillment_id": row["fulfillment_id"],
        "fulfilled_at": iso(row["fulfilled_at"]),
        "tracking_number": row["tracking_number"],
        "tracking_company": row["tracking_company"],
        "tracking_url": tracking_url(row, public_url),
        "carrier": row["carrier"],
        "carrier_source": row["carrier_source"],
        "status": row["status"],
        "status_at": iso(row["status_at"]),
        "carrier_state": row["carrier_state"],
        "attention": row["attention"],
        "attention_since": iso(row["attention_since"]),
        "carrier_message": row["carrier_message"],
        "last_event": last_event_json(row),
        "last_scan_at": iso(row["last_scan_at"]),
        "estimated_delivery_at": iso(row["estimated_delivery_at"]),
        "first_estimated_delivery_at": iso(row["first_eta"]),
        "days_in_transit": days_in_transit(row, now),
        "active": row["active"],
        "retired_reason": row["retired_reason"],
        "writeback": {
            "written": row["wb_written"],
            "pending": row["wb_pending"],
            "failed": row["wb_failed"],
        },
    }


def event_json(row: Row) -> dict[str, Any]:
    """One row of :data:`tracker.web.queries.EVENTS_OF_SHIPMENT` as the API serves it."""
    return {
        "id": row["id"],
        "status": row["status"],
        "happened_at": iso(row["happened_at"]),
        "time_source": row["time_source"],
        "carrier_code": row["carrier_code"],
        "message": row["message"],
        "city": row["city"],
        "province": row["province"],
        "country": row["country"],
        "zip": row["zip"],
        "estimated_delivery_at": iso(row["estimated_delivery_at"]),
        "writeback": {
            "state": row["writeback_state"],
            "attempts": row["writeback_attempts"],
            "error": row["writeback_error"],
            "shopify_event_id": row["shopify_event_id"],
            "written_at": iso(row["written_at"]),
        },
    }
