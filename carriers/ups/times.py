"""UPS dates and times -> aware UTC. Pure: no I/O.

UPS writes every activity time twice: ``date`` (``YYYYMMDD``) and ``time`` (``HHMMSS``) in the
local time of the scan, and ``gmtDate`` / ``gmtTime`` in GMT with the local ``gmtOffset``
(``-05:00``). Live answers do not always carry all of them, and ``gmtTime`` comes both as
``19:47:00`` and as a bare number with its leading zero dropped (the spec's example is
``74700``, 07:47:00). So, per CARRIERS.md "Time", the first that is readable wins:

1. ``gmtDate`` + ``gmtTime`` (``time_source="utc"``);
2. ``date`` + ``time`` with ``gmtOffset`` (``offset``);
3. ``date`` + ``time`` in the zone of the scan's place (``local:America/Chicago``): the state or
   province for the US and Canada (:data:`REGION_ZONES`), else the country when it has a single
   zone (:data:`COUNTRY_ZONES`);
4. ``date`` + ``time`` read as UTC (``local:assumed-utc``).

A date without a time is taken as noon local time, so that the day survives the conversion
(``local:date-only:...``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

COUNTRY_ZONES: Mapping[str, str] = {
    "AE": "Asia/Dubai", "AR": "America/Argentina/Buenos_Aires", "AT": "Europe/Vienna",
    "BE": "Europe/Brussels", "BG": "Europe/Sofia", "CH": "Europe/Zurich", "CN": "Asia/Shanghai",
    "CO": "America/Bogota", "CZ": "Europe/Prague", "DE": "Europe/Berlin",
    "DK": "Europe/Copenhagen", "EE": "Europe/Tallinn", "ES": "Europe/Madrid",
    "FI": "Europe/Helsinki", "FR": "Europe/Paris", "GB": "Europe/London", "GR": "Europe/Athens",
    "HK": "Asia/Hong_Kong", "HR": "Europe/Zagreb", "HU": "Europe/Budapest", "IE": "Europe/Dublin",
    "IL": "Asia/Jerusalem", "IN": "Asia/Kolkata", "IS": "Atlantic/Reykjavik", "IT": "Europe/Rome",
    "JP": "Asia/Tokyo", "KR": "Asia/Seoul", "LT": "Europe/Vilnius", "LU": "Europe/Luxembourg",
    "LV": "Europe/Riga", "MY": "Asia/Kuala_Lumpur", "NL": "Europe/Amsterdam", "NO": "Europe/Oslo",
    "NZ": "Pacific/Auckland", "PE": "America/Lima", "PH": "Asia/Manila", "PL": "Europe/Warsaw",
    "PR": "America/Puerto_Rico", "PT": "Europe/Lisbon", "RO": "Europe/Bucharest",
    "SA": "Asia/Riyadh", "SE": "Europe/Stockholm", "SG": "Asia/Singapore",
    "SI": "Europe/Ljubljana", "SK": "Europe/Bratislava", "TH": "Asia/Bangkok",
    "TR": "Europe/Istanbul", "TW": "Asia/Taipei", "VN": "Asia/Ho_Chi_Minh",
    "ZA": "Africa/Johannesburg",
}  # fmt: skip
"""ISO country -> IANA zone, for countries with one zone (or one zone nearly all parcels see).

Countries spanning several zones (US, CA, MX, BR, RU, AU, ...) are absent: for the US and Canada
the state or province decides (:data:`REGION_ZONES`); elsewhere a zone-less time is read as UTC.
"""

_US: Mapping[str, str] = {
    "America/New_York": "CT DC DE FL GA MA MD ME NC NH NJ NY OH PA RI SC VA VT WV",
    "America/Detroit": "MI",
    "America/Indiana/Indianapolis": "IN",
    "America/Kentucky/Louisville": "KY",
    "America/Chicago": "AL AR IA IL KS LA MN MO MS ND NE OK SD TN TX WI",
    "America/Denver": "CO MT NM UT WY",
    "America/Boise": "ID",
    "America/Phoenix": "AZ",
    "America/Los_Angeles": "CA NV OR WA",
    "America/Anchorage": "AK",
    "Pacific/Honolulu": "HI",
    "America/Puerto_Rico": "PR",
    "America/St_Thomas": "VI",
    "Pacific/Guam": "GU",
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

REGION_ZONES: Mapping[str, Mapping[str, str]] = {
    country: {region: zone for zone, regions in table.items() for region in regions.split()}
    for country, table in (("US", _US), ("CA", _CA))
}
"""Country -> state or province -> IANA zone. A state split between zones (TX, FL, TN, KY, IN,
ND, SD, NE, KS, ID, OR, MI) gets the zone most of its people live in."""

_OFFSET = re.compile(r"^([+-])(\d{1,2})(?::(\d{2}))?$|^([+-])(\d{2})(\d{2})$")


def _zone(name: str | None) -> tzinfo | None:
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zone_for_place(country: object, region: object = None) -> tzinfo | None:
    """The zone of an ISO-2 ``country`` (and, for the US and Canada, a ``region``), if known."""
    if not isinstance(country, str):
        return None
    code = country.strip().upper()
    regions = REGION_ZONES.get(code)
    if regions is not None:
        if not isinstance(region, str):
            return None
        return _zone(regions.get(region.strip().upper()))
    return _zone(COUNTRY_ZONES.get(code))


def parse_date(value: object) -> date | None:
    """``YYYYMMDD`` (UPS's only date format), or None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) != 8 or not (text.isascii() and text.isdigit()):
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def parse_time(value: object) -> time | None:
    """``HHMMSS``, ``HH:MM:SS`` or a number with its leading zeros dropped (``74700``), or None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(p.isascii() and p.isdigit() for p in parts):
            return None
        if not (1 <= len(parts[0]) <= 2 and all(len(p) == 2 for p in parts[1:])):
            return None
        numbers = [int(p) for p in parts] + [0]
        hour, minute, second = numbers[:3]
    else:
        if not (1 <= len(text) <= 6 and text.isascii() and text.isdigit()):
            return None
        digits = text.zfill(6)
        hour, minute, second = int(digits[:2]), int(digits[2:4]), int(digits[4:])
    try:
        return time(hour, minute, second)
    except ValueError:
        return None


def parse_offset(value: object) -> tzinfo | None:
    """``-05:00``, ``+0530``, ``+1`` as a fixed zone, or None."""
    if not isinstance(value, str):
        return None
    match = _OFFSET.match(value.strip())
    if match is None:
        return None
    groups = match.groups()
    sign, hours, minutes = groups[:3] if groups[0] else groups[3:]
    delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
    if delta >= timedelta(hours=18) or int(minutes or 0) >= 60:
        return None
    return timezone(-delta if sign == "-" else delta)


def local_moment(
    day: object,
    clock: object,
    *,
    offset: object = None,
    country: object = None,
    region: object = None,
) -> tuple[datetime, str] | None:
    """A local ``YYYYMMDD`` + ``HHMMSS`` as ``(UTC, time_source)``: offset, else place, else UTC."""
    local_day = parse_date(day)
    if local_day is None:
        return None
    local_time = parse_time(clock)
    prefix = "local:"
    if local_time is None:
        local_time, prefix = time(12), "local:date-only:"
    naive = datetime.combine(local_day, local_time)
    try:
        fixed = parse_offset(offset)
        if fixed is not None:
            source = "offset" if prefix == "local:" else "local:date-only:offset"
            return naive.replace(tzinfo=fixed).astimezone(UTC), source
        zone = zone_for_place(country, region)
        if zone is None:
            return naive.replace(tzinfo=UTC), f"{prefix}assumed-utc"
        return naive.replace(tzinfo=zone).astimezone(UTC), f"{prefix}{zone}"
    except (OverflowError, ValueError):
        return None


def activity_moment(activity: Mapping[str, object]) -> tuple[datetime, str] | None:
    """When a UPS ``activity`` happened, as ``(UTC, time_source)``; None if it has no date."""
    gmt_day = parse_date(activity.get("gmtDate"))
    gmt_time = parse_time(activity.get("gmtTime"))
    if gmt_day is not None and gmt_time is not None:
        return datetime.combine(gmt_day, gmt_time, tzinfo=UTC), "utc"
    country, region = place_of(activity.get("location"))
    return local_moment(
        activity.get("date"),
        activity.get("time"),
        offset=activity.get("gmtOffset"),
        country=country,
        region=region,
    )


def place_of(location: object) -> tuple[str | None, str | None]:
    """``(countryCode, stateProvince)`` of a ``{"address": {...}}`` container, upper case."""
    address = location.get("address") if isinstance(location, dict) else None
    if not isinstance(address, dict):
        return None, None
    country = address.get("countryCode")
    if not isinstance(country, str) or not country.strip():
        country = address.get("country")
    region = address.get("stateProvince")
    return _code(country), _code(region)


def _code(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip().upper()
    return text if 1 <= len(text) <= 3 and text.isascii() and text.isalpha() else None
