"""How the PostNord sandbox writes a scripted parcel: PostNord's codes, words, times and shapes.

Every :class:`~carriers.sandbox_base.Kind` has a PostNord item status, an event code and an
English description (:data:`WORDING`), chosen so that :func:`carriers.postnord.parse
.parse_response` reads each back to :data:`carriers.sandbox_base.EXPECTED_STATUS`: a pickup and
the last leg are ``EN_ROUTE`` scans that the event code refines, customs and sorting plain
``EN_ROUTE``, a failed attempt ``DELIVERY_IMPOSSIBLE``, a parcel in a locker
``AVAILABLE_FOR_DELIVERY_PAR_LOC``, an exception ``STOPPED``, an information scan ``OTHER``.

Times are written the ways PostNord writes them, one style per number so that a number always
looks the same: Nordic local time with no zone (the usual one), with the local offset, or in
UTC with ``Z``. The zone-less style is only used for countries the parser knows a zone for;
elsewhere it falls back to ``Z``, since no reader could tell what such a time means.
"""

from __future__ import annotations

import zlib
from datetime import datetime
from enum import Enum
from functools import lru_cache
from typing import Any

from carriers.sandbox_base import Kind, Scan, Timeline, place_zone
from carriers.timezones import format_timestamp

# Kind -> (item status, eventCode, eventDescription, locationType)
WORDING: dict[Kind, tuple[str, str, str, str]] = {
    Kind.LABEL: (
        "INFORMED", "EDI_INFORMED",
        "The sender has notified us that the shipment is on its way to PostNord", "UNDEF",
    ),
    Kind.PICKUP: (
        "EN_ROUTE", "PICKED_UP", "The shipment item has been collected from the sender",
        "CUSTOMER_LOCATION",
    ),
    Kind.TRANSIT: (
        "EN_ROUTE", "TERMINAL_SORTED", "The shipment item has been sorted at the terminal",
        "HUB",
    ),
    Kind.CUSTOMS: (
        "EN_ROUTE", "CUSTOMS_PROCESSING", "The shipment item is being processed by customs",
        "IPS_LOCATION",
    ),
    Kind.DELAY: (
        "DELAYED", "DELAYED", "The shipment item is delayed and will arrive later than planned",
        "HUB",
    ),
    Kind.OUT_FOR_DELIVERY: (
        "EN_ROUTE", "LOADED_FOR_DELIVERY", "The shipment item has been loaded for delivery",
        "DEPOT",
    ),
    Kind.ATTEMPT: (
        "DELIVERY_IMPOSSIBLE", "DELIVERY_ATTEMPT_FAILED",
        "We tried to deliver the shipment item but the recipient was not at home", "DEPOT",
    ),
    Kind.PICKUP_POINT: (
        "AVAILABLE_FOR_DELIVERY_PAR_LOC", "ARRIVED_AT_PARCEL_LOCKER",
        "The shipment item is available for pickup in a parcel locker", "SERVICE_POINT",
    ),
    Kind.DELIVERED: (
        "DELIVERED", "DELIVERED", "The shipment item has been delivered", "DELIVERY_POINT",
    ),
    Kind.EXCEPTION: (
        "STOPPED", "STOPPED", "The shipment item has been stopped: it was damaged in transit",
        "HUB",
    ),
    Kind.RETURNED: (
        "RETURNED", "RETURNED_TO_SENDER", "The shipment item has been returned to the sender",
        "DEPOT",
    ),
    Kind.INFO: (
        "OTHER", "INFORMATION", "Information about the shipment item has been updated", "UNDEF",
    ),
}  # fmt: skip

COUNTRY_NAMES: dict[str, str] = {
    "SE": "Sweden", "DK": "Denmark", "NO": "Norway", "FI": "Finland", "DE": "Germany",
    "CN": "China", "US": "United States",
}  # fmt: skip

SHIPMENT_STATUS_OF: dict[str, str] = {"AVAILABLE_FOR_DELIVERY_PAR_LOC": "AVAILABLE_FOR_DELIVERY"}
"""Item statuses the shipment-level enum (``Status18``) does not have, and what it says instead."""


class TimeStyle(Enum):
    """How one number's times are written."""

    LOCAL = "local"
    OFFSET = "offset"
    UTC = "utc"


_STYLES = tuple(TimeStyle)


def time_style(number: str) -> TimeStyle:
    """The same style for a number every time it is asked, spread evenly over numbers."""
    return _STYLES[zlib.crc32(number.strip().upper().encode()) % len(_STYLES)]


def render_time(moment: datetime, country: str, style: TimeStyle) -> str:
    """``moment`` as PostNord writes it for a place in ``country``."""
    return format_timestamp(moment, place_zone(country), style.value)


def render_location(scan: Scan, location_type: str) -> dict[str, Any]:
    """A ``LocationDto`` for the place of ``scan`` (``locationId`` and ``locationType`` are
    required by the spec, so a scan without a place gets an undefined one)."""
    city = scan.city
    country = scan.country.upper()
    if not (city or country):
        return {"locationId": "0", "locationType": "UNDEF"}
    location: dict[str, Any] = {
        "locationId": _place_id(city, country),
        "locationType": location_type,
    }
    if city:
        location["displayName"] = location["name"] = location["city"] = city
    if scan.postal_code:
        location["postcode"] = scan.postal_code
    if country:
        location["countryCode"] = country
        name = COUNTRY_NAMES.get(country, "")
        if name:
            location["country"] = name
    return location


@lru_cache(maxsize=4096)
def _place_id(city: str, country: str) -> str:
    return f"{zlib.crc32(f'{city}|{country}'.encode()) % 1_000_000:06d}"


def render_event(moment: datetime, scan: Scan, style: TimeStyle) -> dict[str, Any]:
    """One scan as a PostNord ``TrackingEventDto``."""
    return _event(moment, scan, style.value)


def _event(moment: datetime, scan: Scan, style: str) -> dict[str, Any]:
    status, code, words, location_type = WORDING[scan.kind]
    description = f"{words} - {scan.message}" if scan.message else words
    return {
        "eventTime": format_timestamp(moment, place_zone(scan.country), style),
        "eventCode": code,
        "status": status,
        "eventDescription": description,
        "location": render_location(scan, location_type),
    }


def render_response(timeline: Timeline, now: datetime) -> dict[str, Any] | None:
    """The 200 body for ``timeline`` as of ``now``; None while no scan is visible yet."""
    visible = timeline.visible(now)
    if not visible:
        return None
    number = timeline.tracking_number
    style = time_style(number)
    events = [_event(moment, scan, style.value) for moment, scan in visible]
    statuses = [event["status"] for event in events]
    current = statuses[-1]
    header = WORDING[visible[-1][1].kind][2]
    destination = next((s.country.upper() for _, s in reversed(visible) if s.country), "")
    item: dict[str, Any] = {
        "itemId": number,
        "status": current,
        "eventStatus": current,
        "statusText": {"header": header},
        "noItems": 1,
        "previousItemStates": list(dict.fromkeys(s for s in statuses[:-1] if s != current)),
        "events": events,
    }
    shipment: dict[str, Any] = {
        "shipmentId": number,
        "assessedNumberOfItems": 1,
        "status": SHIPMENT_STATUS_OF.get(current, current),
        "statusText": {"header": header},
        "service": {
            "code": timeline.service.upper()[:12] or "PARCEL",
            "name": f"PostNord {timeline.service}",
            "sourceSystem": "SANDBOX",
        },
        "items": [item],
    }
    if destination:
        shipment["consignee"] = {"address": {"countryCode": destination}}
    delivered = next((m for m, s in visible if s.kind is Kind.DELIVERED), None)
    eta = timeline.eta()
    if delivered is not None:
        item["deliveryDate"] = shipment["deliveryDate"] = render_time(delivered, destination, style)
    elif eta is not None:
        written = render_time(eta, destination, style)
        item["estimatedTimeOfArrival"] = shipment["estimatedTimeOfArrival"] = written
    return {"TrackingInformationResponse": {"shipments": [shipment]}}


def not_found_body(identifier: str) -> dict[str, Any]:
    """PostNord's answer for a number it does not know: no shipments, for some numbers a fault."""
    info: dict[str, Any] = {"shipments": []}
    if zlib.crc32(identifier.strip().upper().encode()) % 2:
        info["compositeFault"] = {
            "faults": [
                {
                    "faultCode": "notFound",
                    "explanationText": "No shipment found for the given identifier",
                    "paramValues": [{"param": "id", "value": identifier}],
                }
            ]
        }
    return {"TrackingInformationResponse": info}


S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)


def s10_check_digit(serial: str) -> int:
    """The UPU S10 check digit of an eight-digit serial number."""
    total = sum(int(digit) * weight for digit, weight in zip(serial, S10_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: 0, 11: 5}.get(check, check)
