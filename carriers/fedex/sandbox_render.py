"""Scripted timelines in FedEx's Track API shapes, codes and words, for :mod:`.sandbox`. Pure.

Each :class:`Kind` becomes the scan FedEx would show for it (:func:`wording`); a parcel becomes a
``completeTrackResults`` entry with its scans newest first, ``latestStatusDetail``,
``dateAndTimes`` and the estimated delivery window (dropped once delivered, as FedEx does).

Times are written one of three ways, chosen per number (:func:`time_style`) so that one number
always looks the same: with the local offset, as FedEx writes scan dates
(``2018-02-02T12:01:00-07:00``); in UTC with ``+00:00``; or as local time with no zone, as the
spec's ``dateAndTimes`` and window examples are written. The zone-less style needs to know the
place's zone: a country :mod:`carriers.timezones` knows, or a US / Canadian city in
:data:`CITY_STATES` (FedEx names the state; a script names only the city). Elsewhere that style
falls back to UTC with ``+00:00``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import Enum
from functools import lru_cache
from typing import Any

from carriers.sandbox_base import Kind, Scan, Timeline, place_zone, wall_time

CITY_STATES: dict[tuple[str, str], str] = {
    ("US", "AUSTIN"): "TX", ("US", "BOSTON"): "MA", ("US", "CHICAGO"): "IL",
    ("US", "DALLAS"): "TX", ("US", "DENVER"): "CO", ("US", "INDIANAPOLIS"): "IN",
    ("US", "JERSEY CITY"): "NJ", ("US", "LOS ANGELES"): "CA", ("US", "LOUISVILLE"): "KY",
    ("US", "MEMPHIS"): "TN", ("US", "MIAMI"): "FL", ("US", "NEW YORK"): "NY",
    ("US", "NEWARK"): "NJ", ("US", "OAKLAND"): "CA", ("US", "SEATTLE"): "WA",
    ("CA", "CALGARY"): "AB", ("CA", "MONTREAL"): "QC", ("CA", "TORONTO"): "ON",
    ("CA", "VANCOUVER"): "BC",
}  # fmt: skip
"""(country, upper-case city) -> FedEx ``stateOrProvinceCode``, for the cities scripts use."""

NOT_FOUND_CODE = "TRACKING.TRACKINGNUMBER.NOTFOUND"
NOT_FOUND_MESSAGE = (
    "Tracking number cannot be found. Please correct the tracking number and try again."
)

SERVICES: dict[str, tuple[str, str, str, str]] = {
    "parcel": ("FEDEX_GROUND", "FedEx Ground", "FG", "FDXG"),
    "express": ("PRIORITY_OVERNIGHT", "FedEx Priority Overnight", "PO", "FDXE"),
    "international": ("FEDEX_INTERNATIONAL_PRIORITY", "FedEx International Priority", "IP", "FDXE"),
}
"""Timeline ``service`` -> (serviceDetail type, description, short description, carrierCode)."""


@dataclass(frozen=True, slots=True)
class Wording:
    """What FedEx shows for one kind of scan."""

    event_type: str
    description: str
    derived_code: str
    derived_status: str
    location_type: str
    exception_code: str = ""
    exception: str = ""
    delayed: bool = False


WORDING: dict[Kind, Wording] = {
    Kind.LABEL: Wording("OC", "Shipment information sent to FedEx", "IN", "Label created",
                        "CUSTOMER"),
    Kind.PICKUP: Wording("PU", "Picked up", "PU", "Picked up", "PICKUP_LOCATION"),
    Kind.TRANSIT: Wording("AR", "Arrived at FedEx location", "IT", "In transit",
                          "FEDEX_FACILITY"),
    Kind.CUSTOMS: Wording("CP", "Clearance in progress", "IT", "In transit", "PORT_OF_ENTRY"),
    Kind.DELAY: Wording("DY", "Delay", "DY", "Delay", "FEDEX_FACILITY",
                        exception="Weather delay", delayed=True),
    Kind.OUT_FOR_DELIVERY: Wording("OD", "On FedEx vehicle for delivery", "OD",
                                   "Out for delivery", "VEHICLE"),
    Kind.ATTEMPT: Wording("DE", "Delivery exception", "DE", "Delivery exception",
                          "DELIVERY_LOCATION", exception_code="08",
                          exception="Customer not available or business closed"),
    Kind.PICKUP_POINT: Wording("HL", "Ready for recipient pickup at FedEx hold location", "HL",
                               "Ready for pickup", "FEDEX_OFFICE_LOCATION"),
    Kind.DELIVERED: Wording("DL", "Delivered", "DL", "Delivered", "DELIVERY_LOCATION"),
    Kind.EXCEPTION: Wording("SE", "Shipment exception", "SE", "Shipment exception",
                            "FEDEX_FACILITY", exception="Package damaged - unable to deliver"),
    Kind.RETURNED: Wording("RS", "Returning package to shipper", "RS", "Return to shipper",
                           "FEDEX_FACILITY"),
    Kind.INFO: Wording("RR", "Delivery option requested", "", "", "CUSTOMER"),
}  # fmt: skip
"""Each kind as a FedEx scan. Scripted messages are appended to ``exceptionDescription``; the
exception words come first so that they, not the script, decide how ``DE`` / ``SE`` are read."""


class TimeStyle(Enum):
    """How one number's times are written."""

    OFFSET = "offset"
    UTC = "utc"
    LOCAL = "local"


_STYLES = tuple(TimeStyle)


def time_style(number: str) -> TimeStyle:
    """The same style for a number every time it is asked, spread evenly over numbers."""
    return _STYLES[zlib.crc32(number.strip().upper().encode()) % len(_STYLES)]


def state_of(scan: Scan) -> str:
    """The ``stateOrProvinceCode`` FedEx would give for the scan's place ("" if unknown)."""
    return _state(scan.country, scan.city)


@lru_cache(maxsize=1024)
def _state(country: str, city: str) -> str:
    return CITY_STATES.get((country.strip().upper(), city.strip().upper()), "")


def _zone_of(scan: Scan) -> tzinfo | None:
    return place_zone(scan.country, _state(scan.country, scan.city))


def render_time(moment: datetime, country: str, state: str, style: TimeStyle) -> str:
    """``moment`` as FedEx writes it for a place in ``country`` / ``state``."""
    return _write(moment, place_zone(country, state), style)


def _write(moment: datetime, zone: tzinfo | None, style: TimeStyle) -> str:
    if zone is None or style is TimeStyle.UTC:
        return wall_time(moment.astimezone(UTC)) + "+00:00"
    local = moment.astimezone(zone)
    if style is TimeStyle.OFFSET:
        return local.isoformat(timespec="seconds")
    return wall_time(local)


def render_place(scan: Scan) -> dict[str, Any]:
    """A scan's place as FedEx's ``scanLocation`` (upper-case city, as FedEx writes it)."""
    place: dict[str, Any] = {}
    city = scan.city.strip().upper()
    if city:
        place["city"] = city
    state = _state(scan.country, scan.city)
    if state:
        place["stateOrProvinceCode"] = state
    postal_code = scan.postal_code.strip()
    if postal_code:
        place["postalCode"] = postal_code
    country = scan.country.strip().upper()
    if country:
        place["countryCode"] = country
    place["residential"] = False
    return place


def render_scan(moment: datetime, scan: Scan, style: TimeStyle) -> dict[str, Any]:
    """One scan as a FedEx ``scanEvents`` entry."""
    words = WORDING[scan.kind]
    message = scan.message.strip()
    if words.exception and message:
        exception = f"{words.exception}. {message}"
    else:
        exception = words.exception or message
    event: dict[str, Any] = {
        "date": _write(moment, _zone_of(scan), style),
        "eventType": words.event_type,
        "eventDescription": words.description,
        "exceptionCode": words.exception_code,
        "exceptionDescription": exception,
        "scanLocation": render_place(scan),
        "locationType": words.location_type,
        "derivedStatusCode": words.derived_code,
        "derivedStatus": words.derived_status,
    }
    if words.delayed:
        event["delayDetail"] = {"type": "WEATHER", "status": "DELAYED"}
    return event


_DATE_TYPES = (
    (Kind.LABEL, "SHIPMENT_DATA_RECEIVED"),
    (Kind.PICKUP, "ACTUAL_PICKUP"),
    (Kind.PICKUP, "SHIP"),
    (Kind.ATTEMPT, "ATTEMPTED_DELIVERY"),
    (Kind.DELIVERED, "ACTUAL_DELIVERY"),
)
"""``dateAndTimes`` entries: the first scan of a kind, and the type FedEx gives its time."""
_DATED = frozenset(kind for kind, _ in _DATE_TYPES)


def render_track_result(timeline: Timeline, now: datetime) -> dict[str, Any] | None:
    """The ``completeTrackResults`` entry for ``timeline`` as of ``now``; None before any scan."""
    visible = timeline.visible(now)
    if not visible:
        return None
    number = timeline.tracking_number
    style = time_style(number)
    events = [render_scan(m, s, style) for m, s in reversed(visible)]  # newest first
    newest = visible[-1][1]
    count = len(visible)
    # The last scan with a place (else the newest): where the parcel is, or is headed.
    last = next((i for i in range(count - 1, -1, -1) if visible[i][1].country), count - 1)
    last_zone = _zone_of(visible[last][1])
    service, service_words, short, carrier = SERVICES.get(timeline.service, SERVICES["parcel"])
    unique_id = f"{zlib.crc32(number.encode()) % 900_000 + 100_000}~{number}~{carrier}"

    words = WORDING[newest.kind]
    latest: dict[str, Any] = {
        "code": words.event_type,
        "derivedCode": words.derived_code or words.event_type,
        "statusByLocale": words.derived_status or words.description,
        "description": words.derived_status or words.description,
        "scanLocation": dict(events[0]["scanLocation"]),
    }
    if newest.kind is Kind.ATTEMPT:
        latest["ancillaryDetails"] = [
            {"reason": words.exception_code, "reasonDescription": words.exception,
             "action": "A delivery reattempt will be made.",
             "actionDescription": "Customer not available or business closed"}
        ]  # fmt: skip
    if newest.kind is Kind.DELAY:
        latest["delayDetail"] = {"type": "WEATHER", "status": "DELAYED"}

    firsts: dict[Kind, int] = {}  # kind -> index in visible of its first scan
    attempts = 0
    for i, (_, scan) in enumerate(visible):
        firsts.setdefault(scan.kind, i)
        attempts += scan.kind is Kind.ATTEMPT
    written: dict[Kind, str] = {}  # the first scan of each dated kind, in the last place's zone
    for kind, i in firsts.items():
        if kind in _DATED:
            moment, scan = visible[i]
            if _zone_of(scan) is last_zone:  # its scan event has that time written already
                written[kind] = events[count - 1 - i]["date"]
            else:
                written[kind] = _write(moment, last_zone, style)
    dates = [
        {"type": date_type, "dateTime": written[kind]}
        for kind, date_type in _DATE_TYPES
        if kind in firsts
    ]
    result: dict[str, Any] = {
        "trackingNumberInfo": {
            "trackingNumber": number, "carrierCode": carrier, "trackingNumberUniqueId": unique_id,
        },
        "additionalTrackingInfo": {"hasAssociatedShipments": False, "nickname": "",
                                   "packageIdentifiers": []},
        "recipientInformation": {"address": dict(events[count - 1 - last]["scanLocation"])},
        "latestStatusDetail": latest,
        "dateAndTimes": dates,
        "serviceDetail": {"type": service, "description": service_words,
                          "shortDescription": short},
        "deliveryDetails": {"deliveryAttempts": str(attempts)},
        "scanEvents": events,
        "availableImages": [],
        "specialHandlings": [],
    }  # fmt: skip
    eta = timeline.eta()
    if eta is not None and Kind.DELIVERED not in firsts:
        ends = _write(eta, last_zone, style)
        dates.append({"type": "ESTIMATED_DELIVERY", "dateTime": ends})
        result["estimatedDeliveryTimeWindow"] = {
            "type": "ESTIMATED_DELIVERY",
            "window": {"begins": _write(eta - timedelta(hours=4), last_zone, style), "ends": ends},
        }
    return {"trackingNumber": number, "trackResults": [result]}


def not_found_result(number: str) -> dict[str, Any]:
    """FedEx's 200-answer entry for a number it does not know."""
    return {
        "trackingNumber": number,
        "trackResults": [
            {
                "trackingNumberInfo": {"trackingNumber": number},
                "error": {"code": NOT_FOUND_CODE, "message": NOT_FOUND_MESSAGE},
            }
        ],
    }
