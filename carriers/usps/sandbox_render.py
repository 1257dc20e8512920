"""How the USPS sandbox writes a :class:`Timeline` as USPS's tracking answer. Pure: no I/O.

Each scan :class:`Kind` becomes a USPS event code, USPS's words for it (``eventType``) and the
``statusCategory`` USPS.com shows for it; the newest visible scan gives the answer's ``status``,
``statusCategory`` and ``statusSummary``. A scan's place becomes ``eventCity``, ``eventState``
(for US ZIP Codes, the state the ZIP belongs to), ``eventZIP`` and ``eventCountry`` (empty at
home, USPS's English country name abroad).

Times are written in one of four styles, the same for a number every time it is asked and
spread evenly over numbers, so that every branch of the parser's time handling is exercised:

* ``GMT``: ``GMTTimestamp`` in UTC with milliseconds, plus the local ``eventTimestamp`` and its
  ``GMTOffset`` (``-5:00``), as the spec describes;
* ``OFFSET``: local ``eventTimestamp`` and ``GMTOffset`` only;
* ``LOCAL``: local ``eventTimestamp`` only (``2025-06-02T09:30:00``);
* ``LOCAL_Z``: local ``eventTimestamp`` with a ``Z`` that does not mean UTC, as in USPS's own
  published example.

A place with no zone the parser can know (no state, a country with several zones) is written
in UTC, since neither the parser nor a person could tell what its local time means. Local times
in the hour a clock falls back are ambiguous in the last two styles, as they are at USPS.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import Enum
from functools import lru_cache
from operator import attrgetter
from typing import Any, NamedTuple

from carriers.sandbox_base import Kind, Scan, Timeline, wall_time
from carriers.timezones import US_STATE_ZONES, zone_for_place
from carriers.usps.zones import TERRITORY_COUNTRIES, country_name, state_for_zip


class Wording(NamedTuple):
    code: str
    event_type: str
    category: str


WORDING: Mapping[Kind, Wording] = {
    Kind.LABEL: Wording("GX", "Shipping Label Created, USPS Awaiting Item", "Pre-Shipment"),
    Kind.PICKUP: Wording("03", "USPS picked up item", "Accepted"),
    Kind.TRANSIT: Wording("10", "Processed through USPS Facility", "In Transit"),
    Kind.CUSTOMS: Wording("EDB", "Customs Clearance", "In Transit"),
    Kind.DELAY: Wording("NT", "In Transit, Arriving Late", "In Transit"),
    Kind.OUT_FOR_DELIVERY: Wording("OF", "Out for Delivery", "Out for Delivery"),
    Kind.ATTEMPT: Wording("02", "Notice Left (No Authorized Recipient Available)",
                          "Delivery Attempt"),
    Kind.PICKUP_POINT: Wording("16", "Available for Pickup", "Available for Pickup"),
    Kind.DELIVERED: Wording("01", "Delivered, Front Door/Porch", "Delivered"),
    Kind.EXCEPTION: Wording("05", "Undeliverable as Addressed", "Alert"),
    Kind.RETURNED: Wording("09", "Return to Sender", "Alert"),
    Kind.INFO: Wording("DX", "Delivery Status Not Updated", ""),
}  # fmt: skip
"""USPS's code, words and status category for each scan kind (codes: :mod:`.statuses`).

Customs scans use the UPU code ``EDB`` (item presented to import Customs) and a delay is an
in-transit scan whose words say it is arriving late: which codes USPS itself sends for these two
could not be confirmed from its published material.
"""

MAIL_CLASSES = frozenset(
    {
        "BOUND_PRINTED_MATTER", "LIBRARY_MAIL", "USPS_RETAIL_GROUND", "MEDIA_MAIL",
        "CRITICAL_MAIL", "PRIORITY_MAIL_INTERNATIONAL_PARCELS", "DOMESTIC_MATTER_FOR_THE_BLIND",
        "PRIORITY_MAIL_EXPRESS", "FIRST-CLASS_MAIL", "PRIORITY_MAIL_EXPRESS_INTERNATIONAL",
        "FIRST-CLASS_PACKAGE_INTERNATIONAL_SERVICE", "PARCEL_SELECT_LIGHTWEIGHT",
        "PRIORITY_MAIL_GUARANTEED", "GLOBAL_EXPRESS_GUARANTEED", "PRIORITY_MAIL",
        "PARCEL_SELECT", "USPS_MARKETING_MAIL", "PRIORITY_MAIL_SAME_DAY",
    }
)  # fmt: skip
"""The ``mailClass`` values the spec allows; a timeline's other services show as Priority Mail."""

_NO_ETA_AFTER = frozenset({Kind.DELIVERED, Kind.RETURNED})
_AFTER_HOURS = attrgetter("after_hours")


class TimeStyle(Enum):
    """How one number's timestamps are written."""

    GMT = "gmt"
    OFFSET = "offset"
    LOCAL = "local"
    LOCAL_Z = "local-z"


_STYLES = tuple(TimeStyle)


def time_style(number: str) -> TimeStyle:
    """The same style for a number every time it is asked, spread evenly over numbers."""
    return _STYLES[zlib.crc32(number.strip().upper().encode()) % len(_STYLES)]


@dataclass(frozen=True)
class Place:
    """Where a scan happened, as USPS writes it, and the zone its local times are in."""

    city: str
    state: str
    zip: str
    country_field: str
    iso_country: str
    zone: tzinfo | None


def place_of(scan: Scan) -> Place:
    """``scan``'s place: US ZIP Codes give the state (and its zone), other countries their own."""
    return _place(scan.country, scan.city, scan.postal_code)


@lru_cache(maxsize=4096)
def _place(country: str, city_name: str, postal_code: str) -> Place:
    """:func:`place_of`, remembered: scripts name the same few places again and again."""
    iso = country.strip().upper() or ("US" if city_name or postal_code else "")
    city = city_name.upper()
    if iso in TERRITORY_COUNTRIES:
        return Place(city, iso, postal_code, "", iso, zone_for_place("US", iso))
    if iso == "US":
        state = state_for_zip(postal_code) or ""
        return Place(city, state, postal_code, "", iso, zone_for_place("US", state))
    field = country_name(iso) if iso else ""
    return Place(city, "", postal_code, field, iso, zone_for_place(iso))


@lru_cache(maxsize=256)
def gmt_offset(offset: timedelta | None) -> str:
    """A UTC offset as USPS writes ``GMTOffset``: ``-7:00``, ``+5:30``, ``+0:00``."""
    minutes = int((offset or timedelta()).total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours}:{rest:02d}"


def render_times(moment: datetime, zone: tzinfo | None, style: TimeStyle) -> dict[str, str]:
    """The time fields of one event for a scan at ``moment`` in ``zone``."""
    in_utc = moment.astimezone(UTC)
    local = moment.astimezone(zone) if zone is not None else in_utc
    wall = wall_time(local)
    if style is TimeStyle.GMT:
        gmt = f"{wall_time(in_utc)}.{in_utc.microsecond // 1000:03d}Z"
        return {
            "eventTimestamp": wall,
            "GMTTimestamp": gmt,
            "GMTOffset": gmt_offset(local.utcoffset()),
        }
    if style is TimeStyle.OFFSET:
        return {"eventTimestamp": wall, "GMTOffset": gmt_offset(local.utcoffset())}
    if style is TimeStyle.LOCAL_Z:
        return {"eventTimestamp": wall + "Z"}
    return {"eventTimestamp": wall}


def event_type_of(scan: Scan) -> str:
    """USPS's words for ``scan``; a scripted message is its second-level text after a comma."""
    words = WORDING[scan.kind].event_type
    return f"{words}, {scan.message}" if scan.message else words


def render_event(moment: datetime, scan: Scan, style: TimeStyle) -> dict[str, Any]:
    """One scan as a USPS ``TrackingEvent``."""
    return _event(moment, scan, place_of(scan), style)


def _event(moment: datetime, scan: Scan, place: Place, style: TimeStyle) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventType": event_type_of(scan),
        "eventCode": WORDING[scan.kind].code,
        **render_times(moment, place.zone, style),
        "eventCity": place.city,
        "eventState": place.state,
        "eventZIP": place.zip,
        "eventCountry": place.country_field,
    }
    if scan.kind is Kind.DELIVERED:
        event["authorizedAgent"] = False
    return event


def render_details(timeline: Timeline, now: datetime) -> dict[str, Any] | None:
    """The ``expand=DETAIL`` body for ``timeline`` as of ``now``; None while nothing is visible."""
    visible = timeline.visible(now)
    if not visible:
        return None
    number = timeline.tracking_number
    style = time_style(number)
    events = [_event(moment, scan, place_of(scan), style) for moment, scan in reversed(visible)]
    newest_at, newest = visible[-1]
    category = next(
        (WORDING[s.kind].category for _, s in reversed(visible) if WORDING[s.kind].category),
        "In Transit",
    )
    service = timeline.service.strip().upper().replace(" ", "_")
    placed = [place_of(s) for s in sorted(timeline.scans, key=_AFTER_HOURS)]
    placed = [p for p in placed if p.iso_country]
    body: dict[str, Any] = {
        "trackingNumber": number,
        "mailClass": service if service in MAIL_CLASSES else "PRIORITY_MAIL",
        "mailType": "DOMESTIC_MAIL"
        if all(p.iso_country == "US" or p.state for p in placed)
        else "INTERNATIONAL_OUTBOUND",
        "itemShape": "PARCEL",
        "serviceTypeCode": number[2:5] if number[:2].isdigit() else "001",
        "emailEnabled": True,
        "proofOfDeliveryEnabled": False,
        "status": events[0]["eventType"],
        "statusCategory": category,
        "statusSummary": _summary_line(newest_at, newest),
        "trackingEvents": events,
    }
    if placed:
        body.update(_ends(placed[0], placed[-1]))
    eta = timeline.eta()
    if eta is not None and not any(s.kind in _NO_ETA_AFTER for _, s in visible):
        zone = placed[-1].zone if placed else None
        if zone is None:
            body["expectedDeliveryTimeStamp"] = eta.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            body["expectedDeliveryTimeStamp"] = wall_time(eta.astimezone(zone))
        body["expectedDeliveryType"] = "Expected Delivery by"
    return body


def _ends(origin: Place, destination: Place) -> dict[str, str]:
    """``origin*`` and ``destination*`` fields within the spec's lengths and patterns."""
    fields = {
        "originCity": origin.city,
        "originState": origin.state,
        "originZIP": origin.zip if len(origin.zip) <= 5 else "",
        "originCountry": origin.iso_country,
        "destinationCity": destination.city,
        "destinationZIP": destination.zip,
        "destinationCountryCode": destination.iso_country,
    }
    if destination.state in US_STATE_ZONES or destination.state in ("AA", "AE", "AP"):
        fields["destinationState"] = destination.state
    return {key: value for key, value in fields.items() if value}


def _summary_line(moment: datetime, scan: Scan) -> str:
    place = place_of(scan)
    local = moment.astimezone(place.zone or UTC)
    clock = local.strftime("%I:%M %p").lstrip("0").lower()
    where = " ".join(
        p for p in (f"{place.city}," if place.city else "", place.state, place.zip) if p
    )
    text = f"{event_type_of(scan)} at {clock} on {local:%B} {local.day}, {local.year}"
    return f"{text} in {where}." if where else f"{text}."


def render_summary(details: dict[str, Any]) -> dict[str, Any]:
    """The ``expand=SUMMARY`` body (one line per scan) made from a detail body."""
    lines = []
    for event in details["trackingEvents"]:
        place = ", ".join(p for p in (event["eventCity"], event["eventState"]) if p)
        lines.append(
            ", ".join(p for p in (event["eventType"], event["eventTimestamp"], place) if p)
        )
    summary: dict[str, Any] = {"trackingNumber": details["trackingNumber"], "eventSummaries": lines}
    stamp = details.get("expectedDeliveryTimeStamp")
    if isinstance(stamp, str):
        summary["expectedDeliveryDate"] = stamp[:10]
    return summary
