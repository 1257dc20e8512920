"""UPS dates and times -> aware UTC. Pure: no I/O.

UPS writes every activity time twice: ``date`` (``YYYYMMDD``) and ``time`` (``HHMMSS``) in the
local time of the scan, and ``gmtDate`` / ``gmtTime`` in GMT with the local ``gmtOffset``
(``-05:00``). Live answers do not always carry all of them, and ``gmtTime`` comes both as
``19:47:00`` and as a bare number with its leading zero dropped (the spec's example is
``74700``, 07:47:00). So, per CARRIERS.md "Time", the first that is readable wins:

1. ``gmtDate`` + ``gmtTime`` (``time_source="utc"``);
2. ``date`` + ``time`` with ``gmtOffset`` (``offset``);
3. ``date`` + ``time`` in the zone of the scan's place (``local:America/Chicago``): the state or
   province for the US and Canada, else the country when it has a single zone
   (:func:`carriers.timezones.zone_for_place`);
4. ``date`` + ``time`` read as UTC (``local:assumed-utc``).

A date without a time is taken as noon local time, so that the day survives the conversion
(``local:date-only:...``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache

from carriers.timezones import in_zone, zone_for_place

_CLOCK = re.compile(r"\d{1,2}:\d{2}(?::\d{2})?", re.ASCII)  # H:MM, HH:MM, H:MM:SS, HH:MM:SS
_OFFSET = re.compile(r"^([+-])(\d{1,2})(?::(\d{2}))?$|^([+-])(\d{2})(\d{2})$")


def parse_date(value: object) -> date | None:
    """``YYYYMMDD`` (UPS's only date format), or None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) != 8 or not (text.isascii() and text.isdigit()):
        return None
    try:
        return date.fromisoformat(text)  # ISO 8601's basic format; eight digits checked above
    except ValueError:
        return None


def parse_time(value: object) -> time | None:
    """``HHMMSS``, ``HH:MM:SS`` or a number with its leading zeros dropped (``74700``), or None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if ":" in text:
        if _CLOCK.fullmatch(text) is None:
            return None
        iso = "0" + text if text[1] == ":" else text  # HH:MM[:SS]
    else:
        if not (1 <= len(text) <= 6 and text.isascii() and text.isdigit()):
            return None
        iso = text.zfill(6)  # HHMMSS
    try:
        return time.fromisoformat(iso)  # the same checks as time(hour, minute, second)
    except ValueError:
        return None


def parse_offset(value: object) -> tzinfo | None:
    """``-05:00``, ``+0530``, ``+1`` as a fixed zone, or None."""
    if type(value) is str:
        return _known_offset(value)
    if not isinstance(value, str):
        return None
    return _offset(value)


def _offset(value: str) -> tzinfo | None:
    match = _OFFSET.match(value.strip())
    if match is None:
        return None
    groups = match.groups()
    sign, hours, minutes = groups[:3] if groups[0] else groups[3:]
    delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
    if delta >= timedelta(hours=18) or int(minutes or 0) >= 60:
        return None
    return timezone(-delta if sign == "-" else delta)


_known_offset = lru_cache(maxsize=256)(_offset)
"""Offsets read before: UPS writes the same few dozen."""


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
    date_only = local_time is None
    clock_time = time(12) if local_time is None else local_time
    try:
        fixed = parse_offset(offset)
        if fixed is not None:
            source = "local:date-only:offset" if date_only else "offset"
            return datetime.combine(local_day, clock_time, fixed).astimezone(UTC), source
        naive = datetime.combine(local_day, clock_time)
        return in_zone(naive, zone_for_place(country, region), date_only=date_only)
    except (OverflowError, ValueError):
        return None


def activity_moment(activity: Mapping[str, object]) -> tuple[datetime, str] | None:
    """When a UPS ``activity`` happened, as ``(UTC, time_source)``; None if it has no date."""
    return moment_at(activity, *place_of(activity.get("location")))


def moment_at(
    activity: Mapping[str, object], country: str | None, region: str | None
) -> tuple[datetime, str] | None:
    """:func:`activity_moment` with the place of the activity (:func:`place_of`) already read."""
    gmt_day = parse_date(activity.get("gmtDate"))
    gmt_time = parse_time(activity.get("gmtTime"))
    if gmt_day is not None and gmt_time is not None:
        return datetime.combine(gmt_day, gmt_time, tzinfo=UTC), "utc"
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
