"""How the UPS sandbox writes a scripted :class:`~carriers.sandbox_base.Timeline` in UPS's words.

Each :class:`~carriers.sandbox_base.Kind` becomes a UPS activity status ``{type, code,
statusCode, description}`` (:data:`WORDING`) that :mod:`.statuses` reads back as
:data:`~carriers.sandbox_base.EXPECTED_STATUS` says. The ``type`` and ``statusCode`` values are
UPS's published ones; the two-letter scan codes of exceptions are illustrative.

Times are written the ways live answers write them, chosen per number (:func:`time_style`) so
that a number always looks the same: with ``gmtDate`` / ``gmtTime`` (``HH:MM:SS``, or the bare
number the spec shows, ``74700``), with only the local time and its ``gmtOffset``, or as local
time alone. The last is the only style in which the parser must find the zone itself, so it is
used only where :func:`carriers.timezones.zone_for_place` knows the country's zone; elsewhere the
local time written is the UTC time (the parser then assumes UTC, and is right).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from enum import Enum
from functools import lru_cache
from typing import Any

from carriers.sandbox_base import Kind, Scan, Timeline, place_zone

WORDING: Mapping[Kind, tuple[str, str, str, str]] = {
    Kind.LABEL: (
        "M", "MP", "003", "Shipper created a label, UPS has not received the package yet.",
    ),
    Kind.PICKUP: ("P", "PU", "038", "Pickup Scan"),
    Kind.TRANSIT: ("I", "AR", "005", "Arrived at Facility"),
    Kind.CUSTOMS: ("I", "IP", "012", "Your package is being processed by the customs agency."),
    Kind.DELAY: ("X", "WD", "052", "A severe weather condition has delayed delivery."),
    Kind.OUT_FOR_DELIVERY: ("I", "OT", "021", "Out For Delivery Today"),
    Kind.ATTEMPT: (
        "X", "DA", "022",
        "The receiver was not available at the time of the first delivery attempt. "
        "A second attempt will be made.",
    ),
    Kind.PICKUP_POINT: (
        "X", "ZP", "040",
        "Delivered to UPS Access Point. The package is awaiting customer pickup.",
    ),
    Kind.DELIVERED: ("D", "FS", "011", "DELIVERED"),
    Kind.EXCEPTION: ("X", "RF", "064", "The receiver refused the delivery."),
    Kind.RETURNED: ("RS", "RS", "034", "Returned to the sender."),
    Kind.INFO: ("X", "AC", "027", "The receiver requested a change of delivery address."),
}  # fmt: skip
"""Kind -> (``type``, ``code``, ``statusCode``, ``description``)."""

SIMPLIFIED: Mapping[str, str] = {
    "M": "Label Created",
    "P": "Picked Up",
    "I": "On the Way",
    "X": "Exception",
    "D": "Delivered",
    "RS": "Returned",
}
"""``simplifiedTextDescription`` by type, as UPS shows it on the current status."""


class TimeStyle(Enum):
    """How one number's activity times are written."""

    GMT = "gmt"  # date/time + gmtDate/gmtTime "HH:MM:SS" + gmtOffset
    GMT_COMPACT = "gmt-compact"  # the same, gmtTime as a bare number ("74700")
    OFFSET = "offset"  # date/time + gmtOffset only
    LOCAL = "local"  # date/time only


_STYLES = tuple(TimeStyle)


def time_style(number: str) -> TimeStyle:
    """The same style for a number every time it is asked, spread evenly over numbers."""
    return _STYLES[zlib.crc32(number.strip().upper().encode()) % len(_STYLES)]


@lru_cache(maxsize=256)
def _offset_text(offset: timedelta | None) -> str:
    """``gmtOffset``: ``-05:00``."""
    offset = offset or timedelta()
    sign = "-" if offset < timedelta() else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _day(moment: datetime) -> str:
    """``YYYYMMDD`` (``strftime("%Y%m%d")``, without its cost)."""
    return "%d%02d%02d" % (moment.year, moment.month, moment.day)  # noqa: UP031 (faster)


def _clock(moment: datetime) -> str:
    """``HHMMSS``."""
    return "%02d%02d%02d" % (moment.hour, moment.minute, moment.second)  # noqa: UP031


def _add_times(
    fields: dict[str, Any], moment: datetime, zone: tzinfo | None, style: TimeStyle
) -> None:
    """The time fields of one activity at ``moment``, for a place in ``zone`` (None: unknown),
    added to ``fields`` in UPS's order."""
    local = moment.astimezone(zone or UTC)
    fields["date"] = _day(local)
    fields["time"] = _clock(local)
    if style is TimeStyle.LOCAL:
        return
    fields["gmtOffset"] = _offset_text(local.utcoffset())
    if style is TimeStyle.OFFSET:
        return
    gmt = moment.astimezone(UTC)
    fields["gmtDate"] = _day(gmt)
    if style is TimeStyle.GMT:
        fields["gmtTime"] = "%02d:%02d:%02d" % (gmt.hour, gmt.minute, gmt.second)  # noqa: UP031
    else:
        fields["gmtTime"] = str(gmt.hour * 10_000 + gmt.minute * 100 + gmt.second)


def render_times(moment: datetime, zone: tzinfo | None, style: TimeStyle) -> dict[str, str]:
    """The time fields of one activity at ``moment``, for a place in ``zone`` (None: unknown)."""
    fields: dict[str, str] = {}
    _add_times(fields, moment, zone, style)
    return fields


def _address(scan: Scan) -> dict[str, str]:
    address = {}
    city = scan.city.upper()
    if city:
        address["city"] = city
    if scan.postal_code:
        address["postalCode"] = scan.postal_code
    country = scan.country.upper()
    if country:
        address["country"] = address["countryCode"] = country
    return address


def render_activity(moment: datetime, scan: Scan, style: TimeStyle) -> dict[str, Any]:
    """One scan as a UPS activity."""
    type_, code, status_code, words = WORDING[scan.kind]
    activity: dict[str, Any] = {
        "status": {
            "type": type_,
            "description": f"{words} - {scan.message}" if scan.message else words,
            "code": code,
            "statusCode": status_code,
        },
    }
    _add_times(activity, moment, place_zone(scan.country), style)
    address = _address(scan)
    if address:
        activity["location"] = {
            "address": address,
            "slic": str(zlib.crc32(scan.city.encode()) % 9000 + 1000),
        }
    return activity


def _eta_fields(eta: datetime, zone: tzinfo | None) -> dict[str, Any]:
    """``deliveryDate`` / ``deliveryTime`` for a scheduled delivery ending at ``eta``."""
    local = eta.astimezone(zone or UTC)
    start = max(local - timedelta(hours=2), local.replace(hour=0, minute=0, second=0))
    return {
        "deliveryDate": [{"type": "SDD", "date": _day(local)}],
        "deliveryTime": {"type": "EDW", "startTime": _clock(start), "endTime": _clock(local)},
    }


def _delivered_fields(moment: datetime, zone: tzinfo | None) -> dict[str, Any]:
    local = moment.astimezone(zone or UTC)
    return {
        "deliveryDate": [{"type": "DEL", "date": _day(local)}],
        "deliveryTime": {"type": "DEL", "endTime": _clock(local)},
        "deliveryInformation": {"location": "Front Door", "receivedBy": ""},
    }


def render_track_response(timeline: Timeline, now: datetime) -> dict[str, Any] | None:
    """The 200 body for ``timeline`` as of ``now``; None while no scan is visible yet."""
    visible = timeline.visible(now)
    if not visible:
        return None
    number = timeline.tracking_number.upper()
    style = time_style(number)
    activities = [render_activity(moment, scan, style) for moment, scan in reversed(visible)]
    newest = activities[0]["status"]
    package: dict[str, Any] = {
        "trackingNumber": number,
        "currentStatus": {
            "type": newest["type"],
            "code": newest["code"],
            "statusCode": newest["statusCode"],
            "description": newest["description"],
            "simplifiedTextDescription": SIMPLIFIED.get(newest["type"], "On the Way"),
        },
        "activity": activities,
        "packageCount": 1,
        "service": {"code": "518", "description": "UPS Ground", "levelCode": "011"},
        "statusCode": newest["statusCode"],
        "statusDescription": newest["description"],
        "weight": {"unitOfMeasurement": "LBS", "weight": "2.20"},
    }
    zone = None
    places = [scan for _, scan in visible if scan.country]
    if places:
        origin, destination = _address(places[0]), _address(places[-1])
        package["packageAddress"] = [
            {"type": "ORIGIN", "address": origin},
            {"type": "DESTINATION", "address": {"countryCode": destination["countryCode"]}},
        ]
        zone = place_zone(places[-1].country)
    delivered = [moment for moment, scan in visible if scan.kind is Kind.DELIVERED]
    eta = timeline.eta()
    if delivered:
        package.update(_delivered_fields(delivered[-1], zone))
    elif eta is not None:
        package.update(_eta_fields(eta, zone))
    shipment = {"inquiryNumber": number, "package": [package], "userRelation": []}
    return {"trackResponse": {"shipment": [shipment]}}
