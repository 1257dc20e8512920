"""How the AfterShip sandbox writes a scripted parcel: AfterShip's tags, subtags and shapes.

Pure: no I/O. :mod:`.sandbox` serves what this module renders. Every :class:`Kind` becomes a
checkpoint with the tag and subtag AfterShip would give such a scan, and AfterShip's own
``subtag_message`` words, so that :mod:`.parse` reads it back to
:data:`carriers.sandbox_base.EXPECTED_STATUS` (except :data:`KIND_STATUS`).

Times are written the ways carriers hand them to AfterShip, chosen per number so that a number
always looks the same: local time with its offset, UTC with ``Z``, or local time with no zone at
all (only where :func:`carriers.timezones.zone_for_place` knows the zone, since only then can the
parser, like a person, tell what such a time means; elsewhere that style writes ``Z``).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from types import MappingProxyType
from typing import Any

from carriers.aftership.zones import ISO2_TO_ISO3
from carriers.sandbox_base import Kind, Scan, Timeline, place_zone
from carriers.timezones import format_timestamp
from tracker.domain import Status

KIND_STATUS: Mapping[Kind, Status | None] = MappingProxyType({Kind.INFO: Status.IN_TRANSIT})
"""Where AfterShip differs from ``EXPECTED_STATUS``: AfterShip tags *every* checkpoint with one
of its statuses, so a purely informational carrier scan ("shipment information updated")
arrives as ``InTransit_001`` and reads as in transit. Only ``Expired`` means no status, and that
is a state of the whole tracking after 30 silent days, not a scan."""

SLUGS = ("china-post", "yunexpress", "4px", "cainiao", "sf-express", "yanwen")
"""Long-tail couriers a sandbox number is attributed to (AfterShip's courier slugs)."""


@dataclass(frozen=True, slots=True)
class Wording:
    """What AfterShip shows for one kind of scan."""

    tag: str
    subtag: str
    subtag_message: str
    message: str


_WORDING: Mapping[Kind, Wording] = {
    Kind.LABEL: Wording("InfoReceived", "InfoReceived_001", "Info Received",
                        "Shipment information received, awaiting item"),
    Kind.PICKUP: Wording("InTransit", "InTransit_002", "Acceptance scan",
                         "Item accepted by the courier"),
    Kind.TRANSIT: Wording("InTransit", "InTransit_003", "Arrival scan",
                          "Arrived at sorting center"),
    Kind.CUSTOMS: Wording("InTransit", "InTransit_006", "Customs clearance started",
                          "Handed over to customs for clearance"),
    Kind.DELAY: Wording("Exception", "Exception_005", "Delayed (External factors)",
                        "Shipment delayed by circumstances beyond our control"),
    Kind.OUT_FOR_DELIVERY: Wording("OutForDelivery", "OutForDelivery_001",
                                   "Out for Delivery", "Out for delivery"),
    Kind.ATTEMPT: Wording("AttemptFail", "AttemptFail_002", "Addressee not available",
                          "Delivery attempted, recipient not at home, notice left"),
    Kind.PICKUP_POINT: Wording("AvailableForPickup", "AvailableForPickup_001",
                               "Available for pickup", "Ready for collection"),
    Kind.DELIVERED: Wording("Delivered", "Delivered_001", "Delivered",
                            "Delivered, signed for"),
    Kind.EXCEPTION: Wording("Exception", "Exception_012", "Shipment damaged",
                            "Item damaged in transit, cannot be delivered"),
    Kind.RETURNED: Wording("Exception", "Exception_011", "Returned to sender",
                           "Item returned to the sender"),
    Kind.INFO: Wording("InTransit", "InTransit_001", "In Transit",
                       "Shipment information updated"),
}  # fmt: skip
"""Each kind's words; those of :data:`_AT_CITY` also name the city of the scan."""

_AT_CITY = frozenset({Kind.PICKUP, Kind.TRANSIT, Kind.OUT_FOR_DELIVERY, Kind.PICKUP_POINT})


def wording(kind: Kind, city: str) -> Wording:
    """AfterShip's tag, subtag, subtag message, and a carrier's words for a scan in ``city``."""
    words = _WORDING[kind]
    if city and kind in _AT_CITY:
        return Wording(words.tag, words.subtag, words.subtag_message, _carrier_words(kind, city))
    return words


def _carrier_words(kind: Kind, city: str) -> str:
    words = _WORDING[kind].message
    return f"{words} at {city}" if city and kind in _AT_CITY else words


PENDING = Wording("Pending", "Pending_001", "Pending", "")


class TimeStyle(Enum):
    """How one number's checkpoint times are written."""

    OFFSET = "offset"
    UTC = "utc"
    LOCAL = "local"


_STYLES = tuple(TimeStyle)


def time_style(number: str) -> TimeStyle:
    """The same style for a number every time it is asked, spread evenly over numbers."""
    return _STYLES[zlib.crc32(number.strip().upper().encode()) % len(_STYLES)]


def render_time(moment: datetime, country: str, style: TimeStyle) -> str:
    """``moment`` as a carrier in ``country`` (ISO alpha-2) hands it to AfterShip."""
    return format_timestamp(moment, place_zone(country), style.value)


def utc_stamp(moment: datetime) -> str:
    """AfterShip's own times (``created_at``, ``updated_at``): UTC with ``Z``."""
    at = moment.astimezone(UTC)  # as strftime("%Y-%m-%dT%H:%M:%SZ") writes it, for less CPU:
    return "%d-%02d-%02dT%02d:%02d:%02dZ" % (  # noqa: UP031 (faster than an f-string)
        at.year, at.month, at.day, at.hour, at.minute, at.second,
    )  # fmt: skip


def tracking_id(number: str) -> str:
    """A stable 32-character tracking id for ``number``, as AfterShip's ids look."""
    return hashlib.blake2s(number.strip().upper().encode(), digest_size=16).hexdigest()


def detect_slug(number: str) -> str:
    """The courier AfterShip would detect: the same one for a number every time."""
    return SLUGS[zlib.crc32(number.strip().upper().encode()) % len(SLUGS)]


_RAW_TAGS: Mapping[Kind, str] = {kind: kind.value.upper() for kind in Kind}
_CREATED_AFTER = timedelta(minutes=7)


def render_checkpoint(moment: datetime, scan: Scan, slug: str, style: TimeStyle) -> dict[str, Any]:
    """One scan as an AfterShip checkpoint."""
    return _checkpoint(moment, scan, slug, style.value)


def _checkpoint(moment: datetime, scan: Scan, slug: str, style: str) -> dict[str, Any]:
    kind, city, country = scan.kind, scan.city, scan.country
    words = _WORDING[kind]
    country3 = ISO2_TO_ISO3.get(country.upper()) if country else None
    place = [p for p in (city, scan.postal_code, country3) if p]
    return {
        "slug": slug,
        "created_at": utc_stamp(moment + _CREATED_AFTER),
        "checkpoint_time": format_timestamp(moment, place_zone(country), style),
        "tag": words.tag,
        "subtag": words.subtag,
        "subtag_message": words.subtag_message,
        "message": scan.message or _carrier_words(kind, city),
        "location": ", ".join(place) or None,
        "city": city or None,
        "state": None,
        "zip": scan.postal_code or None,
        "country_region": country3,
        "raw_tag": _RAW_TAGS[kind],
        "events": [],
    }


def render_tracking(
    number: str, slug: str, created_at: datetime, timeline: Timeline | None, now: datetime
) -> dict[str, Any]:
    """The tracking object for a registered ``number`` as of ``now``.

    Until a scan is visible (or for a number with no timeline) the tracking is ``Pending``
    with no checkpoints, as AfterShip shows a number it has not heard about from the courier.
    """
    visible = timeline.visible(now) if timeline is not None else []
    style = time_style(number)
    checkpoints = [_checkpoint(moment, scan, slug, style.value) for moment, scan in visible]
    last = _WORDING[visible[-1][1].kind] if visible else PENDING  # tag, subtag and its words
    countries = [scan.country.upper() for _, scan in visible if scan.country]
    delivered = any(scan.kind is Kind.DELIVERED for _, scan in visible)
    identifier = tracking_id(number)
    tracking: dict[str, Any] = {
        "id": identifier,
        "legacy_id": identifier[:24],
        "tracking_number": number,
        "slug": slug,
        "active": not delivered,
        "created_at": utc_stamp(created_at),
        "updated_at": utc_stamp(now),
        "title": number,
        "tag": last.tag,
        "subtag": last.subtag,
        "subtag_message": last.subtag_message,
        "shipment_type": timeline.service if timeline is not None else None,
        "origin_country_region": ISO2_TO_ISO3.get(countries[0]) if countries else None,
        "destination_country_region": ISO2_TO_ISO3.get(countries[-1]) if countries else None,
        "courier_estimated_delivery_date": None,
        "latest_estimated_delivery": None,
        "return_to_sender": any(c["subtag"] in ("Exception_010", "Exception_011")
                                for c in checkpoints),
        "checkpoints": checkpoints,
    }  # fmt: skip
    eta = timeline.eta() if timeline is not None else None
    if eta is not None and visible and not delivered:
        stamp = render_time(eta, countries[-1] if countries else "", style)
        tracking["courier_estimated_delivery_date"] = {
            "estimated_delivery_date": stamp,
            "estimated_delivery_date_min": None,
            "estimated_delivery_date_max": None,
        }
        tracking["latest_estimated_delivery"] = {
            "type": "specific", "source": "Carrier EDD", "datetime": stamp,
            "datetime_min": None, "datetime_max": None,
        }  # fmt: skip
    return tracking


def s10_number(serial: int, service: str = "LT", country: str = "CN") -> str:
    """A UPU S10 item number: service letters, 8 digits, the mod-11 check digit, country."""
    digits = f"{serial % 100_000_000:08d}"
    total = sum(int(d) * w for d, w in zip(digits, (8, 6, 4, 2, 3, 5, 9, 7), strict=True))
    check = 11 - total % 11
    check = {10: 0, 11: 5}.get(check, check)
    return f"{service}{digits}{check}{country}"
