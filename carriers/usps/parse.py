"""USPS Tracking API v3 JSON -> :class:`TrackResult`. Pure: no I/O.

The ``expand=DETAIL`` answer is ``{trackingNumber, status, statusCategory, statusSummary,
expectedDeliveryTimeStamp, destinationCity/State/ZIP/CountryCode, mailClass, ...,
trackingEvents[]}``, events newest first, each ``{eventType, eventCode, eventTimestamp,
GMTTimestamp, GMTOffset, eventCity, eventState, eventZIP, eventCountry, ...}``. Errors are
``{apiVersion, error: {code, message, errors[] {status, code, title, detail}}}``.

Nothing here raises on what USPS sends: an event that is not an object or has no usable time
is skipped (and counted in ``extra["skipped_events"]``), a field of the wrong type is read as
missing, and a body that is not the documented shape is an :attr:`Outcome.ERROR` result.

Time, in order of preference, with ``time_source`` saying which was used:

1. ``GMTTimestamp`` (``2024-04-04T14:03:12.041Z``; a zone-less one is GMT all the same): ``utc``.
2. ``eventTimestamp`` (local wall time) with ``GMTOffset`` (``-7:00``): ``offset``. An
   ``eventTimestamp`` that carries a numeric offset of its own is read by it (``offset`` too).
3. ``eventTimestamp`` in the zone of the scan's state (``eventState``, else the state of its
   ``eventZIP``), abroad of its province (``eventState`` too, for the countries
   :mod:`carriers.timezones` knows by region, such as Canada) or of its country:
   ``local:America/Chicago``; no known zone:
   ``local:assumed-utc``. USPS's own published example writes this local time with a ``Z``
   (``2023-08-02T07:31:00Z`` for a 7:31 am scan), so a ``Z`` on ``eventTimestamp`` is read as
   local time, not as UTC. A date alone is taken as noon local time (``local:date-only:...``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from operator import attrgetter
from typing import Any

from carriers.base import Outcome, TrackResult
from carriers.timezones import in_zone, with_zone, zone_for_place
from carriers.usps.statuses import map_status
from carriers.usps.zones import country_code, country_of_state, state_for_zip
from tracker.domain import TrackingEvent
from tracker.text import clean_text

_OFFSET = re.compile(r"^(?:GMT|UTC)?\s*([+-]?)\s*(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HTTP_STATUS = re.compile(r"^[1-5][0-9]{2}$")
_CLOCK_FORMATS = ("%H:%M:%S", "%H:%M", "%I:%M %p", "%I:%M%p", "%I:%M:%S %p", "%I %p", "%I%p")
_EXTRA_FIELDS = ("eventTimestamp", "GMTOffset", "firm", "name", "actionCode", "reasonCode")
_ETA_STAMPS = ("expectedDeliveryTimeStamp", "guaranteedDeliveryTimeStamp")
_ETA_DATES = (
    ("expectedDeliveryDate", "expectedDeliveryTime"),
    ("predictedDeliveryDate", "predictedDeliveryWindowEndTime"),
    ("guaranteedDeliveryDate", ""),
)


def parse_gmt_offset(value: object) -> timedelta | None:
    """``GMTOffset`` (``-7:00``, ``+05:30``, ``-0400``, ``-7``) as a timedelta, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not -14 <= value <= 14:  # also refuses NaN
            return None
        return timedelta(hours=float(value))
    if type(value) is str:
        return _known_offset(value)
    if not isinstance(value, str):
        return None
    return _offset(value)


def _offset(value: str) -> timedelta | None:
    match = _OFFSET.match(value.strip())
    if match is None:
        return None
    sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    if hours > 14 or minutes >= 60:
        return None
    offset = timedelta(hours=hours, minutes=minutes)
    return -offset if sign == "-" else offset


_known_offset = lru_cache(maxsize=256)(_offset)
"""Offsets read before: USPS writes the same few dozen."""


def _read_iso(value: object) -> tuple[datetime, bool] | None:
    """``(datetime, date_only)`` from an ISO 8601 text, or None; a date alone is noon."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if len(text) == 10 and _DATE_ONLY.match(text):
        return datetime.combine(moment.date(), time(12)), True
    return moment, False


def _gmt(value: object) -> datetime | None:
    """``GMTTimestamp`` as aware UTC (a zone-less one is GMT all the same), or None."""
    read = _read_iso(value)
    if read is None:
        return None
    moment = read[0]
    try:
        return moment.astimezone(UTC) if moment.tzinfo else with_zone(moment, UTC)
    except (ValueError, OverflowError):
        return None


def event_time(raw: Mapping[str, Any], place_zone: tzinfo | None) -> tuple[datetime, str] | None:
    """``(aware UTC datetime, time_source)`` of one scan, or None when it has no usable time."""
    gmt = _gmt(raw.get("GMTTimestamp"))
    if gmt is not None:
        return gmt, "utc"
    try:
        local = _read_iso(raw.get("eventTimestamp"))
        if local is None:
            return None
        moment, date_only = local
        stamp = str(raw.get("eventTimestamp")).strip()
        if moment.tzinfo is not None and stamp[-1] not in "zZ":
            return moment.astimezone(UTC), "offset"
        if moment.tzinfo is not None:
            moment = with_zone(moment, None)  # a "Z" here is USPS's local time, see above
        offset = parse_gmt_offset(raw.get("GMTOffset"))
        if offset is not None and not date_only:
            return with_zone(moment, timezone(offset)).astimezone(UTC), "offset"
        return in_zone(moment, place_zone, date_only=date_only)
    except (ValueError, OverflowError):
        return None


def parse_response(number: str, body: object) -> TrackResult:
    """What USPS's 200 answer (or an error body) says about ``number``."""
    if not isinstance(body, dict):
        return TrackResult.error(
            number, f"USPS answer is not a JSON object (got {type(body).__name__})"
        )
    raw_events = body.get("trackingEvents")
    if raw_events is None:
        if isinstance(body.get("error"), dict):
            return error_result(number, None, body) or TrackResult.error(
                number, "USPS answered with an error object"
            )
        summaries = body.get("eventSummaries")
        if isinstance(summaries, list):  # asked for DETAIL, answered with the summary shape
            first = next((_text(s) for s in summaries if _text(s)), "")
            return TrackResult(number, Outcome.FOUND, message=first, extra={"skipped_events": 0})
        if not any(_text(body.get(k)) for k in ("trackingNumber", "status", "statusCategory")):
            return TrackResult.error(number, "USPS answer has no 'trackingEvents'")
        raw_events = []
    if not isinstance(raw_events, list):
        return TrackResult.error(
            number, f"USPS 'trackingEvents' is not a list (got {type(raw_events).__name__})"
        )
    return _parse_details(number, body, raw_events)


def error_result(number: str, http_status: object, body: object) -> TrackResult | None:
    """A USPS error answer as data, or None when it is not one.

    404 is "not found" (new labels are unknown for a while too), 400 an invalid number, any
    other 4xx/5xx a carrier error for this number. Without ``http_status`` the body's
    ``error.code`` decides.
    """
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    status = http_status
    if not isinstance(status, int) or isinstance(status, bool):
        code = _text(error.get("code"))
        if _HTTP_STATUS.match(code) is None:
            return None
        status = int(code)
    message = _error_message(error)
    if status == 404:
        return TrackResult.not_found(number, message or "USPS has no record of this number")
    if status == 400:
        return TrackResult(number, Outcome.INVALID, message=message or "invalid tracking number")
    if status >= 400:
        return TrackResult.error(number, f"USPS HTTP {status}: {message or 'no detail'}")
    return None


def _error_message(error: Mapping[str, Any]) -> str:
    message = _text(error.get("message"))
    details = error.get("errors")
    first = (
        next((d for d in details if isinstance(d, dict)), {}) if isinstance(details, list) else {}
    )
    detail = _text(first.get("detail")) or _text(first.get("title"))
    if detail and detail.casefold() not in message.casefold():
        if not message:
            return detail
        return f"{message} {detail}" if message[-1] in ".!?" else f"{message}: {detail}"
    return message


def _parse_details(number: str, body: dict[str, Any], raw_events: list[Any]) -> TrackResult:
    """The events and summary of a details answer.

    ``statusCategory`` only goes into ``raw_status``: it describes whichever scan is newest, and
    a scan's status must not depend on that (see :mod:`carriers.usps.statuses`).
    """
    events: list[TrackingEvent] = []
    skipped = 0
    for raw in raw_events:
        event = parse_event(raw)
        if event is None:
            skipped += 1
        else:
            events.append(event)
    events.reverse()  # USPS lists newest first
    events.sort(key=_HAPPENED_AT)  # stable: equal times keep that order

    extra: dict[str, Any] = {"skipped_events": skipped}
    for key, name in (("mailClass", "mail_class"), ("trackingNumber", "tracking_number")):
        if value := _text(body.get(key)):
            extra[name] = value
    raw_status = "/".join(
        [p for p in (_text(body.get("statusCategory")), _text(body.get("status"))) if p]
    )
    return TrackResult(
        number,
        Outcome.FOUND,
        events=tuple(events),
        estimated_delivery_at=_eta(body),
        message=_text(body.get("statusSummary")) or _text(body.get("status")),
        raw_status=raw_status,
        extra=extra,
    )


def parse_event(raw: object) -> TrackingEvent | None:
    """One scan, or None when it is not an object or has no usable time.

    Everything in the event comes from ``raw`` alone, so a scan parses the same in every answer
    that lists it, whatever came after it: its status and time are part of its stored key.
    """
    if not isinstance(raw, dict):
        return None
    state = _text(raw.get("eventState")).upper()
    zip_code = _text(raw.get("eventZIP"))
    country, zone = _place(state, zip_code, country_code(raw.get("eventCountry")))
    stamped = event_time(raw, zone)
    if stamped is None:
        return None
    event_type = _text(raw.get("eventType"))
    code = raw.get("eventCode")
    extra: dict[str, str] = {}
    for key in _EXTRA_FIELDS:
        if value := _text(raw.get(key)):
            extra[key] = value
    try:
        return TrackingEvent(
            happened_at=stamped[0],
            status=map_status(code, event_type),
            carrier_code=_code_text(code),
            message=event_type,
            city=_text(raw.get("eventCity")) or None,
            province=state or None,
            country=country,
            zip=zip_code or None,
            time_source=stamped[1],
            extra=extra,
        )
    except (ValueError, OverflowError):
        return None


def _place(state: str, zip_code: str, country: str | None) -> tuple[str | None, tzinfo | None]:
    """``(ISO country, time zone)`` of a scan from its ``eventState``, ZIP Code and country.

    At home (no country, or US) the state is USPS's, else the ZIP Code's, and it may name a
    territory that is a country of its own (``PR``). Abroad the state is the province, which
    decides the zone in countries the zone tables know by region (``CA``, ``ON``).
    """
    if country not in (None, "US"):
        return country, zone_for_place(country, state or None)
    region = state or state_for_zip(zip_code)
    if country is None and region:
        country = country_of_state(region)
    return country, zone_for_place("US", region) or zone_for_place(country)


def _eta(body: dict[str, Any]) -> datetime | None:
    """The expected (else guaranteed, else predicted) delivery time, in the destination's zone."""
    state = _text(body.get("destinationState")) or state_for_zip(_text(body.get("destinationZIP")))
    zone = zone_for_place("US", state) or zone_for_place(
        country_code(body.get("destinationCountryCode"))
    )
    try:
        for key in _ETA_STAMPS:
            read = _read_iso(body.get(key))
            if read is not None:
                moment = read[0]
                if moment.tzinfo is not None:
                    return moment.astimezone(UTC)
                return in_zone(moment, zone)[0]
        for date_key, time_key in _ETA_DATES:
            read = _read_iso(body.get(date_key))
            if read is not None and read[1]:
                clock = _clock(body.get(time_key)) if time_key else None
                moment = datetime.combine(read[0].date(), clock or time(12))
                return in_zone(moment, zone)[0]
    except (ValueError, OverflowError):
        return None
    return None


def _clock(value: object) -> time | None:
    """A time of day as USPS writes it beside a date (``20:00:00``, ``9:00 pm``), or None."""
    text = _text(value).upper()
    for fmt in _CLOCK_FORMATS:
        try:
            return datetime.strptime(text, fmt).time()
        except ValueError:
            continue
    return None


def _code_text(code: object) -> str:
    if isinstance(code, int) and not isinstance(code, bool):
        return str(code)
    return _text(code)


_text = clean_text
"""Carrier text, cleaned and bounded (:func:`tracker.text.clean_text`; the function itself, not
a wrapper: parsers call it a dozen times per scan)."""

_HAPPENED_AT = attrgetter("happened_at")
