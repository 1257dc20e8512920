"""Where a scan happened -> its time zone, for carrier times written without an offset. Pure.

Carriers often write a scan's time as the local wall time of the place it happened, with no
offset. The place is then all that tells what the time means, and every carrier reads it with the
same tables:

* :data:`COUNTRY_ZONES`: ISO 3166-1 alpha-2 country -> IANA zone, for countries whose people
  live (almost) entirely in one zone. Countries spread over several zones (US, CA, MX, BR, RU,
  AU, ID, ...) are absent on purpose: a zone-less time there is read as UTC rather than guessed.
* :data:`REGION_ZONES`: for the United States and Canada, state or province -> IANA zone. A state
  split between two zones (TX, FL, TN, KY, IN, ND, SD, NE, KS, ID, OR, MI) gets the zone most of
  its people live in, so a scan in the other part reads an hour off: parsers prefer a carrier's
  own offset or UTC time whenever it gives one. A US state may also be named in full
  (:data:`US_STATE_CODES`).

:func:`in_zone` and :func:`parse_timestamp` say in the ``time_source`` of the result how a time
was read: ``utc`` (a ``Z``), ``offset`` (a numeric offset), ``local:<zone>`` (the place's
zone), ``local:assumed-utc`` (no zone known), and ``local:date-only:...`` for a date alone, read
as noon local time so that the day survives the conversion. :func:`format_timestamp` goes the
other way, for the carrier sandboxes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, time, tzinfo
from functools import cache, lru_cache
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "CA_PROVINCE_ZONES",
    "COUNTRY_ZONES",
    "REGION_ZONES",
    "US_STATE_CODES",
    "US_STATE_ZONES",
    "format_timestamp",
    "in_zone",
    "parse_timestamp",
    "with_zone",
    "zone_for_place",
    "zone_name",
]

COUNTRY_ZONES: Mapping[str, str] = MappingProxyType({
    "AE": "Asia/Dubai", "AR": "America/Argentina/Buenos_Aires", "AT": "Europe/Vienna",
    "BD": "Asia/Dhaka", "BE": "Europe/Brussels", "BG": "Europe/Sofia", "BY": "Europe/Minsk",
    "CH": "Europe/Zurich", "CN": "Asia/Shanghai", "CO": "America/Bogota",
    "CR": "America/Costa_Rica", "CY": "Asia/Nicosia", "CZ": "Europe/Prague", "DE": "Europe/Berlin",
    "DK": "Europe/Copenhagen", "DO": "America/Santo_Domingo", "EE": "Europe/Tallinn",
    "EG": "Africa/Cairo", "ES": "Europe/Madrid", "FI": "Europe/Helsinki", "FO": "Atlantic/Faroe",
    "FR": "Europe/Paris", "GB": "Europe/London", "GR": "Europe/Athens", "GT": "America/Guatemala",
    "GU": "Pacific/Guam", "HK": "Asia/Hong_Kong", "HR": "Europe/Zagreb", "HU": "Europe/Budapest",
    "IE": "Europe/Dublin", "IL": "Asia/Jerusalem", "IN": "Asia/Kolkata",
    "IS": "Atlantic/Reykjavik", "IT": "Europe/Rome", "JP": "Asia/Tokyo", "KR": "Asia/Seoul",
    "LT": "Europe/Vilnius", "LU": "Europe/Luxembourg", "LV": "Europe/Riga",
    "MA": "Africa/Casablanca", "MT": "Europe/Malta", "MY": "Asia/Kuala_Lumpur",
    "NG": "Africa/Lagos", "NL": "Europe/Amsterdam", "NO": "Europe/Oslo", "NZ": "Pacific/Auckland",
    "PA": "America/Panama", "PE": "America/Lima", "PH": "Asia/Manila", "PK": "Asia/Karachi",
    "PL": "Europe/Warsaw", "PR": "America/Puerto_Rico", "PT": "Europe/Lisbon",
    "RO": "Europe/Bucharest", "RS": "Europe/Belgrade", "SA": "Asia/Riyadh",
    "SE": "Europe/Stockholm", "SG": "Asia/Singapore", "SI": "Europe/Ljubljana",
    "SK": "Europe/Bratislava", "TH": "Asia/Bangkok", "TR": "Europe/Istanbul", "TW": "Asia/Taipei",
    "UA": "Europe/Kyiv", "VI": "America/St_Thomas", "VN": "Asia/Ho_Chi_Minh",
    "ZA": "Africa/Johannesburg",
})  # fmt: skip
"""ISO country -> IANA zone, for single-zone countries (Spain and Portugal: the mainland)."""

_US: Mapping[str, str] = {
    "America/New_York": "CT DC DE FL GA KY MA MD ME NC NH NJ NY OH PA RI SC VA VT WV",
    "America/Detroit": "MI",
    "America/Indiana/Indianapolis": "IN",
    "America/Chicago": "AL AR IA IL KS LA MN MO MS ND NE OK SD TN TX WI",
    "America/Denver": "CO MT NM UT WY",
    "America/Boise": "ID",
    "America/Phoenix": "AZ",
    "America/Los_Angeles": "CA NV OR WA",
    "America/Anchorage": "AK",
    "Pacific/Honolulu": "HI",
    # Territories and freely associated states that US carriers treat as domestic.
    "America/Puerto_Rico": "PR",
    "America/St_Thomas": "VI",
    "Pacific/Guam": "GU",
    "Pacific/Pago_Pago": "AS",
    "Pacific/Saipan": "MP",
    "Pacific/Majuro": "MH",
    "Pacific/Palau": "PW",
}
_CA: Mapping[str, str] = {
    "America/Toronto": "ON QC",
    "America/Vancouver": "BC",
    "America/Edmonton": "AB",
    "America/Winnipeg": "MB",
    "America/Regina": "SK",
    "America/Halifax": "NS PE",
    "America/Moncton": "NB",
    "America/St_Johns": "NL",
    "America/Whitehorse": "YT",
    "America/Yellowknife": "NT",
    "America/Iqaluit": "NU",
}


def _by_code(table: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType({code: zone for zone, codes in table.items() for code in codes.split()})


US_STATE_ZONES = _by_code(_US)
"""US state (or territory) two-letter code -> IANA zone (the majority zone of a split state)."""

CA_PROVINCE_ZONES = _by_code(_CA)
"""Canadian province or territory code -> its (main) zone."""

REGION_ZONES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {"US": US_STATE_ZONES, "CA": CA_PROVINCE_ZONES}
)
"""Country -> state or province code -> IANA zone, for the countries a region decides."""

_US_NAMES = """
AL Alabama; AK Alaska; AZ Arizona; AR Arkansas; CA California; CO Colorado; CT Connecticut;
DE Delaware; DC District of Columbia; FL Florida; GA Georgia; HI Hawaii; ID Idaho;
IL Illinois; IN Indiana; IA Iowa; KS Kansas; KY Kentucky; LA Louisiana; ME Maine; MD Maryland;
MA Massachusetts; MI Michigan; MN Minnesota; MS Mississippi; MO Missouri; MT Montana;
NE Nebraska; NV Nevada; NH New Hampshire; NJ New Jersey; NM New Mexico; NY New York;
NC North Carolina; ND North Dakota; OH Ohio; OK Oklahoma; OR Oregon; PA Pennsylvania;
RI Rhode Island; SC South Carolina; SD South Dakota; TN Tennessee; TX Texas; UT Utah;
VT Vermont; VA Virginia; WA Washington; WV West Virginia; WI Wisconsin; WY Wyoming;
PR Puerto Rico; GU Guam; VI Virgin Islands
"""

US_STATE_CODES: Mapping[str, str] = MappingProxyType(
    {
        name.casefold(): code
        for code, name in (entry.split(maxsplit=1) for entry in _US_NAMES.split(";"))
    }
)
"""A US state's (or territory's) English name, case-folded -> its two-letter code."""

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def zone_name(country: object, region: object = None) -> str | None:
    """The IANA zone name of a place, when the tables above know one.

    ``country`` is an ISO alpha-2 code (any case, spaces around ignored). For the US and Canada
    ``region`` (the state or province code; for the US also its name) decides, and without one
    the zone is unknown; for any other country ``region`` is ignored.
    """
    if not isinstance(country, str):
        return None
    country_code = country.strip().upper()
    regions = REGION_ZONES.get(country_code)
    if regions is None:
        return COUNTRY_ZONES.get(country_code)
    if not isinstance(region, str):
        return None
    text = region.strip()
    if country_code == "US":
        text = US_STATE_CODES.get(text.casefold(), text)
    return regions.get(text.upper())


def zone_for_place(country: object, region: object = None) -> tzinfo | None:
    """The time zone of a place (see :func:`zone_name`), or None when it is not known."""
    if type(country) is str and (region is None or type(region) is str):
        return _place_zone(country, region)  # the usual call, remembered
    return _zone(zone_name(country, region))


@lru_cache(maxsize=1024)
def _place_zone(country: str, region: str | None) -> tzinfo | None:
    return _zone(zone_name(country, region))


@cache  # keys: the zone names of the tables above
def _zone(name: str | None) -> tzinfo | None:
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def in_zone(
    local: datetime, zone: tzinfo | None, *, date_only: bool = False
) -> tuple[datetime, str]:
    """``(aware UTC datetime, time_source)`` for a zone-less local time read in ``zone``.

    No zone: the time is read as UTC and the source says so (``local:assumed-utc``). Raises
    ``ValueError`` or ``OverflowError`` for a time that cannot be converted.
    """
    prefix = "local:date-only:" if date_only else "local:"
    if zone is None:
        return with_zone(local, UTC), f"{prefix}assumed-utc"
    offset = zone.utcoffset(local) if type(zone) is ZoneInfo and type(local) is datetime else None
    if offset is not None:
        # What astimezone() does, without building the aware local time first: a ZoneInfo
        # reads the offset of a wall time (and its fold) whatever zone that time carries.
        return with_zone(local - offset, UTC), f"{prefix}{zone}"
    return with_zone(local, zone).astimezone(UTC), f"{prefix}{zone}"


def with_zone(moment: datetime, zone: tzinfo | None) -> datetime:
    """``moment.replace(tzinfo=zone)``, built directly: ``replace`` costs three times as much,
    and parsers do this for most scans."""
    if type(moment) is datetime:  # a subclass would get a plain datetime from combine()
        return datetime.combine(moment, moment.time(), zone)  # time(): fold included
    return moment.replace(tzinfo=zone)


def parse_timestamp(
    value: object, country: object = None, region: object = None
) -> tuple[datetime, str] | None:
    """``(aware UTC datetime, time_source)`` from an ISO 8601 time, or None if unreadable.

    A time with ``Z`` is ``utc``, one with an offset ``offset``; a zone-less one is read in the
    zone of the place (``country``, ``region``: see :func:`zone_name`) by :func:`in_zone`. A date
    alone is noon local time.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    date_only = len(text) == 10 and _DATE_ONLY.match(text) is not None
    try:
        moment = datetime.fromisoformat(text)
        if date_only:
            moment = datetime.combine(moment.date(), time(12))
        if moment.tzinfo is not None:
            return moment.astimezone(UTC), "utc" if text[-1] in "zZ" else "offset"
        return in_zone(moment, zone_for_place(country, region), date_only=date_only)
    except (ValueError, OverflowError):
        return None


def format_timestamp(moment: datetime, zone: tzinfo | None, style: str) -> str:
    """``moment`` written the way :func:`parse_timestamp` reads it, for a place in ``zone``.

    ``style`` is ``"offset"`` (local time with its offset, ``+00:00`` where the zone is not
    known), ``"utc"`` (UTC with ``Z``) or ``"local"`` (local time with no zone at all). A place
    with no known zone never gets the last: no reader could tell what such a time means, so it
    is written in UTC with ``Z``.
    """
    if zone is None or style == "utc":
        in_utc = moment.astimezone(UTC)
        # isoformat(timespec="seconds") and strftime("%Y-%m-%dT%H:%M:%SZ") at a fraction of
        # the CPU (the sandboxes write many).
        fields = (in_utc.year, in_utc.month, in_utc.day, in_utc.hour, in_utc.minute, in_utc.second)
        if style == "offset":
            return "%04d-%02d-%02dT%02d:%02d:%02d+00:00" % fields  # noqa: UP031
        return "%d-%02d-%02dT%02d:%02d:%02dZ" % fields  # noqa: UP031
    local = moment.astimezone(zone)
    if style == "offset":
        return local.isoformat(timespec="seconds")
    # local.replace(tzinfo=None).isoformat(timespec="seconds"), for less CPU
    return "%04d-%02d-%02dT%02d:%02d:%02d" % (  # noqa: UP031
        local.year, local.month, local.day, local.hour, local.minute, local.second,
    )  # fmt: skip
