"""FedEx Track API JSON -> :class:`TrackResult`. Pure: no I/O.

The answer to ``POST /track/v1/trackingnumbers`` is ``{transactionId, output:
{completeTrackResults[] {trackingNumber, trackResults[]}}}``, one ``completeTrackResults`` entry
per number asked. A ``trackResults`` entry is either the parcel (``latestStatusDetail``,
``scanEvents[]`` newest first, ``dateAndTimes[]``, ``estimatedDeliveryTimeWindow``, ...) or
``error {code, message}`` for a number FedEx does not know (``TRACKING.TRACKINGNUMBER.NOTFOUND``).
Several ``trackResults`` for one number are different parcels that share it (FedEx reuses
numbers); the one with the newest scan is taken.

Nothing here raises on what FedEx sends: a scan with a wrong type or no usable ``date`` is
skipped (and counted in ``extra["skipped_events"]``), a field of the wrong type is read as
missing, and an answer that is not the documented shape is an :attr:`Outcome.ERROR` result for
each number it should have answered.

Time: FedEx writes scan dates with an offset (``2018-02-02T12:01:00-07:00``, ``offset``) and some
dates with none (``2021-10-01T08:00:00``). A zone-less time is read in the zone of the place it
belongs to (:mod:`carriers.timezones`: US state, Canadian province, or single-zone country;
``local:America/Chicago``), else as UTC (``local:assumed-utc``); a date alone is taken as noon
there (``local:date-only:...``). A time ending in ``Z`` is ``utc``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from carriers.base import Outcome, TrackResult
from carriers.fedex.statuses import map_status
from carriers.timezones import parse_timestamp
from tracker.domain import TrackingEvent
from tracker.text import clean_text

NOT_FOUND_CODES = frozenset({"TRACKING.TRACKINGNUMBER.NOTFOUND", "TRACKING.DATA.NOTFOUND"})
"""Error codes meaning "FedEx has no parcel with this number"."""

_COUNTRY = re.compile(r"^[A-Z]{2}$")

ETA_DATE_TYPES = ("ESTIMATED_DELIVERY", "APPOINTMENT_DELIVERY")
"""``dateAndTimes`` types read as the ETA, in order, before the estimated window."""

_DESTINATION_PATHS = (
    ("lastUpdatedDestinationAddress",),
    ("recipientInformation", "address"),
    ("destinationLocation", "locationContactAndAddress", "address"),
)
"""Where a parcel's destination address may be, first found first."""


def parse_response(numbers: Sequence[str], body: object) -> dict[str, TrackResult]:
    """What FedEx's answer says about each of ``numbers`` (one result for every one of them)."""
    if not isinstance(body, dict):
        return _all(numbers, f"FedEx answer is not a JSON object (got {type(body).__name__})")
    output = body.get("output")
    if output is None and "errors" in body:
        return error_results(numbers, None, body)
    if not isinstance(output, dict):
        return _all(numbers, "FedEx answer has no 'output' object")
    entries = output.get("completeTrackResults")
    if not isinstance(entries, list):
        return _all(numbers, "FedEx answer has no 'completeTrackResults' list")
    complete = [e for e in entries if isinstance(e, dict)]
    by_number: dict[str, dict[str, Any]] = {}
    for item in complete:
        by_number.setdefault(_compact(_entry_number(item)), item)
    results: dict[str, TrackResult] = {}
    for number in numbers:
        entry = by_number.get(_compact(number))
        if entry is None and len(complete) == 1 and len(set(map(_compact, numbers))) == 1:
            entry = complete[0]  # one number asked, one answered under another spelling
        if entry is None:
            results[number] = TrackResult.error(number, "FedEx answer has no result for it")
        else:
            results[number] = parse_complete_result(number, entry)
    return results


def error_results(
    numbers: Sequence[str], http_status: int | None, body: object
) -> dict[str, TrackResult]:
    """A FedEx error body (``{transactionId, errors[] {code, message}}``) for each number.

    ``TRACKING.TRACKINGNUMBER.NOTFOUND`` is "not found", a tracking-number code ending in
    ``INVALID`` or ``EMPTY`` an invalid number, anything else a carrier error.
    """
    errors = body.get("errors") if isinstance(body, dict) else None
    listed = errors if isinstance(errors, list) else []
    first = next((e for e in listed if isinstance(e, dict)), None)
    where = f"HTTP {http_status}" if http_status is not None else "error"
    return {number: _error_result(number, first, where) for number in numbers}


def parse_complete_result(number: str, entry: Mapping[str, Any]) -> TrackResult:
    """One ``completeTrackResults`` entry: the parcel, or the error FedEx gives for the number."""
    raw = entry.get("trackResults")
    track_results = [t for t in raw if isinstance(t, dict)] if isinstance(raw, list) else []
    if not track_results:
        return TrackResult.error(number, "FedEx answer has no 'trackResults' for it")
    parcels = [t for t in track_results if not isinstance(t.get("error"), dict)]
    if not parcels:
        return _error_result(number, track_results[0].get("error"), "error")
    parsed = [parse_track_result(number, parcel) for parcel in parcels]
    best = max(parsed, key=_newest)  # max() keeps the first of equals
    if len(parsed) > 1:
        best.extra["duplicates"] = len(parsed)
    return best


def parse_track_result(number: str, parcel: Mapping[str, Any]) -> TrackResult:
    """One parcel (a ``trackResults`` entry without ``error``)."""
    raw_events = parcel.get("scanEvents")
    events: list[TrackingEvent] = []
    skipped = 0
    for raw in reversed(raw_events if isinstance(raw_events, list) else []):  # newest first
        event = parse_event(raw)
        if event is None:
            skipped += 1
        else:
            events.append(event)
    events.sort(key=_HAPPENED_AT)  # stable: equal times keep FedEx's order reversed

    latest = _object(parcel.get("latestStatusDetail"))
    code, description = _text(latest.get("code")), _status_words(latest)
    extra: dict[str, Any] = {"skipped_events": skipped}
    for key, value in (
        ("derived_code", _text(latest.get("derivedCode"))),
        ("carrier", _text(_object(parcel.get("trackingNumberInfo")).get("carrierCode"))),
        ("service", _text(_object(parcel.get("serviceDetail")).get("type"))),
        ("delay", _text(_object(latest.get("delayDetail")).get("status"))),
        ("reason", _reason(latest.get("ancillaryDetails"))),
    ):
        if value:
            extra[key] = value
    return TrackResult(
        number,
        Outcome.FOUND,
        events=tuple(events),
        estimated_delivery_at=_eta(parcel),
        message=description,
        raw_status="/".join([p for p in (code, description) if p]),
        extra=extra,
    )


def parse_event(raw: object) -> TrackingEvent | None:
    """One ``scanEvents`` entry, or None when it has no usable ``date`` or is not an object."""
    if not isinstance(raw, dict):
        return None
    place = _object(raw.get("scanLocation"))
    country = _country(place.get("countryCode"))
    state = _text(place.get("stateOrProvinceCode")).upper() or None
    stamped = parse_timestamp(raw.get("date"), country, state)
    if stamped is None:
        return None
    happened_at, source = stamped
    event_type, derived = _text(raw.get("eventType")), _text(raw.get("derivedStatusCode"))
    description = _text(raw.get("eventDescription"))
    exception = _text(raw.get("exceptionDescription"))
    message = description
    if exception and exception.casefold() not in description.casefold():
        message = f"{description} - {exception}" if description else exception
    extra: dict[str, str] = {}
    for key, value in (
        ("derivedStatusCode", derived),
        ("derivedStatus", _text(raw.get("derivedStatus"))),
        ("exceptionCode", _text(raw.get("exceptionCode"))),
        ("exceptionDescription", exception),
        ("locationId", _text(raw.get("locationId"))),
        ("locationType", _text(raw.get("locationType"))),
        ("delay", _text(_object(raw.get("delayDetail")).get("status"))),
    ):
        if value:
            extra[key] = value
    try:
        return TrackingEvent(
            happened_at=happened_at,
            status=map_status(event_type, derived, description, exception),
            carrier_code=event_type or derived,
            message=message,
            city=_text(place.get("city")) or None,
            province=state,
            country=country,
            zip=_text(place.get("postalCode")) or None,
            time_source=source,
            extra=extra,
        )
    except (ValueError, OverflowError):
        return None


def _error_result(number: str, error: object, where: str) -> TrackResult:
    detail = _object(error)
    code = _text(detail.get("code")).upper()
    message = _text(detail.get("message"))
    if code in NOT_FOUND_CODES:
        return TrackResult.not_found(number, message or "Tracking number cannot be found.")
    if "TRACKINGNUMBER" in code and code.endswith((".INVALID", ".EMPTY")):
        return TrackResult(number, Outcome.INVALID, message=message or code)
    summary = ": ".join(p for p in (code, message) if p) or "no detail"
    return TrackResult.error(number, f"FedEx {where}: {summary}")


def _eta(parcel: Mapping[str, Any]) -> datetime | None:
    """The delivery estimate: estimated / appointment date, else the estimated window's end."""
    country, state = _destination(parcel)
    dates = parcel.get("dateAndTimes")
    by_type: dict[str, object] = {}
    for item in dates if isinstance(dates, list) else []:
        if isinstance(item, dict):
            by_type.setdefault(_text(item.get("type")).upper(), item.get("dateTime"))
    window = _at(parcel, "estimatedDeliveryTimeWindow", "window")
    standard = _at(parcel, "standardTransitTimeWindow", "window")
    candidates: Iterable[object] = (
        *[by_type.get(kind) for kind in ETA_DATE_TYPES],
        window.get("ends"),
        window.get("begins"),
        by_type.get("COMMITMENT"),
        standard.get("ends"),
    )
    for value in candidates:
        stamped = parse_timestamp(value, country, state)
        if stamped is not None:
            return stamped[0]
    return None


def _destination(parcel: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(country, state)`` of where the parcel is going, for zone-less delivery dates."""
    for path in _DESTINATION_PATHS:
        address = _at(parcel, *path)
        country = _country(address.get("countryCode"))
        if country:
            return country, _text(address.get("stateOrProvinceCode")).upper() or None
    return None, None


def _newest(result: TrackResult) -> tuple[bool, datetime]:
    if not result.events:
        return False, datetime.min.replace(tzinfo=UTC)
    return True, result.events[-1].happened_at


def _status_words(latest: Mapping[str, Any]) -> str:
    return _text(latest.get("description")) or _text(latest.get("statusByLocale"))


def _reason(details: object) -> str:
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and (words := _text(detail.get("reasonDescription"))):
            return words
    return ""


def _entry_number(entry: Mapping[str, Any]) -> str:
    number = _text(entry.get("trackingNumber"))
    if number:
        return number
    results = entry.get("trackResults")
    for result in results if isinstance(results, list) else []:
        if isinstance(result, dict):
            info = _object(result.get("trackingNumberInfo"))
            if found := _text(info.get("trackingNumber")):
                return found
    return ""


def _all(numbers: Sequence[str], message: str) -> dict[str, TrackResult]:
    return {number: TrackResult.error(number, message) for number in numbers}


def _country(value: object) -> str | None:
    code = _text(value).upper()
    return code if len(code) == 2 and _COUNTRY.match(code) else None


def _object(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _at(value: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    """The object at ``value[k1][k2]...``; empty when any step is missing or not an object."""
    for key in keys:
        value = _object(value.get(key))
    return value


_text = clean_text
"""Carrier text, cleaned and bounded (:func:`tracker.text.clean_text`; the function itself, not
a wrapper: parsers call it a dozen times per scan)."""

_HAPPENED_AT = attrgetter("happened_at")


def _compact(number: str) -> str:
    return "".join(number.split()).upper()
