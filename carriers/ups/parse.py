"""UPS Track API v1 JSON -> :class:`TrackResult`. Pure: no I/O.

A found number is ``{"trackResponse": {"shipment": [{inquiryNumber, package[], warnings[]}]}}``;
each package has ``trackingNumber``, ``currentStatus``, ``activity[]`` (newest first),
``deliveryDate[] {type, date}``, ``deliveryTime {type, startTime, endTime}`` and
``packageAddress[] {type, address}``. Every activity is ``{date, time, gmtDate, gmtTime,
gmtOffset, status {type, code, statusCode, description}, location.address {city,
stateProvince, postalCode, countryCode}}``; :mod:`.times` turns its times into UTC and
:mod:`.statuses` its codes into a status.

UPS says "I do not know this number" two ways: HTTP 200 with ``shipment[].warnings[]`` and no
``package``, or an error body ``{"response": {"errors": [{code, message}]}}`` (404 with code
``151044``). :func:`error_result` reads the error body for any HTTP status.

Nothing here raises on what UPS sends: an activity with no usable date is skipped (counted in
``extra["skipped_events"]``), a field of the wrong type is read as missing, and a body that is not
the documented shape is an :attr:`Outcome.ERROR` result.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from operator import attrgetter
from typing import Any

from carriers.base import Outcome, TrackResult
from carriers.ups.statuses import map_keys, normalize_status_code, normalize_type
from carriers.ups.times import local_moment, moment_at, place_of
from tracker.domain import TrackingEvent
from tracker.text import clean_text

NOT_FOUND_CODES = frozenset({"151044", "TW0001"})
"""Error / warning codes that mean "no tracking information for this number" (the spec lists no
codes: 151044 is the one developers report on 404s; any 404 counts as not found anyway)."""

INVALID_CODES = frozenset({"151018"})
"""Error codes that mean "this is not a valid inquiry number" (not confirmed by the spec; an
unknown 400 code is an ``ERROR``, never a silent ``INVALID``)."""

ETA_TYPES = ("RDD", "SDD")
"""``deliveryDate`` types that are an estimate, best first (``DEL`` is the actual delivery)."""

WINDOW_TYPES = frozenset({"EDW", "CDW", "IDW", "CMT"})
"""``deliveryTime`` types whose ``endTime`` is the latest expected delivery time."""


def parse_response(number: str, body: object) -> TrackResult:
    """What UPS's answer to ``GET /track/v1/details/{number}`` says about ``number``."""
    if not isinstance(body, dict):
        return TrackResult.error(
            number, f"UPS answer is not a JSON object (got {type(body).__name__})"
        )
    track = body.get("trackResponse")
    if track is None:
        problem = error_result(number, None, body)
        if problem is not None:
            return problem
        return TrackResult.error(number, "UPS answer has no 'trackResponse'")
    shipments = track.get("shipment") if isinstance(track, dict) else None
    if not isinstance(shipments, list):
        return TrackResult.error(number, "UPS 'trackResponse.shipment' is not a list")
    candidates = [s for s in shipments if isinstance(s, dict)]
    if not candidates:
        if shipments:
            return TrackResult.error(number, "UPS 'shipment' holds no shipment objects")
        return TrackResult.not_found(number, "UPS returned no shipment for this number")
    shipment = _pick(number, candidates, "inquiryNumber")
    raw_packages = shipment.get("package")
    packages = (
        [p for p in raw_packages if isinstance(p, dict)] if isinstance(raw_packages, list) else []
    )
    if not packages:
        return _without_package(number, shipment)
    package = _pick(number, packages, "trackingNumber")
    result = _parse_package(number, package)
    if len(packages) > 1:
        result.extra["package_count"] = len(packages)
    return result


def error_result(number: str, http_status: int | None, body: object) -> TrackResult | None:
    """A UPS error body (``response.errors[]``) as data, or None when ``body`` is not one.

    A known "not found" code or HTTP 404 is ``NOT_FOUND``; a known invalid-number code is
    ``INVALID``; anything else is ``ERROR`` for this number (a 400 without a known code is
    usually our request, not the number).
    """
    errors = error_entries(body)
    if not errors and http_status is None:
        return None
    codes = [code for code, _ in errors]
    text = "; ".join(f"{code}: {message}" if code else message for code, message in errors)
    message = next((m for _, m in errors if m), "")
    if any(code in NOT_FOUND_CODES for code in codes) or http_status == 404:
        return TrackResult.not_found(number, message or "Tracking information not found")
    if any(code in INVALID_CODES for code in codes):
        return TrackResult(number, Outcome.INVALID, message=message or "invalid inquiry number")
    where = f"UPS HTTP {http_status}" if http_status is not None else "UPS error"
    # Each entry's text is bounded, their number is not: so is the whole.
    return TrackResult.error(number, clean_text(f"{where}: {text or 'no detail'}"))


def error_entries(body: object) -> list[tuple[str, str]]:
    """``(code, message)`` of every entry of a UPS error body's ``response.errors``."""
    response = body.get("response") if isinstance(body, dict) else None
    raw = response.get("errors") if isinstance(response, dict) else None
    if not isinstance(raw, list):
        return []
    found = [(_text(e.get("code")), _text(e.get("message"))) for e in raw if isinstance(e, dict)]
    return [(code, message) for code, message in found if code or message]


def _without_package(number: str, shipment: dict[str, Any]) -> TrackResult:
    raw = shipment.get("warnings")
    warnings = [w for w in raw if isinstance(w, dict)] if isinstance(raw, list) else []
    found = [(_text(w.get("code")), _text(w.get("message"))) for w in warnings]
    message = next((m for _, m in found if m), "")
    codes = {code for code, _ in found}
    if codes & INVALID_CODES:
        return TrackResult(number, Outcome.INVALID, message=message or "invalid inquiry number")
    return TrackResult.not_found(number, message or "UPS returned no package for this number")


def _pick(number: str, items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    wanted = _compact(number)
    for item in items:
        value = item.get(key)
        if isinstance(value, str) and _compact(value) == wanted:
            return item
    return items[0]


def _parse_package(number: str, package: dict[str, Any]) -> TrackResult:
    raw_activity = package.get("activity")
    activities = raw_activity if isinstance(raw_activity, list) else []
    events: list[TrackingEvent] = []
    skipped = 0
    for raw in reversed(activities):  # UPS lists newest first
        event = parse_activity(raw)
        if event is None:
            skipped += 1
        else:
            events.append(event)
    events.sort(key=_HAPPENED_AT)  # stable: equal times keep UPS's order

    current = package.get("currentStatus")
    newest = _first_object(activities)
    status = current if isinstance(current, dict) else _status(newest)
    extra: dict[str, Any] = {"skipped_events": skipped}
    service = package.get("service")
    if isinstance(service, dict) and (name := _text(service.get("description"))):
        extra["service"] = name
    if tracking_number := _text(package.get("trackingNumber")):
        extra["tracking_number"] = tracking_number
    return TrackResult(
        number,
        Outcome.FOUND,
        events=tuple(events),
        estimated_delivery_at=_eta(package, newest),
        message=_text(status.get("description")) or _text(status.get("simplifiedTextDescription")),
        raw_status=_raw_status(status),
        extra=extra,
    )


def parse_activity(raw: object) -> TrackingEvent | None:
    """One UPS activity, or None when it is not an object or has no readable date."""
    if not isinstance(raw, dict):
        return None
    location = raw.get("location")
    country, region = place_of(location)
    stamped = moment_at(raw, country, region)
    if stamped is None:
        return None
    happened_at, source = stamped
    status = _status(raw)
    address = _address(location)
    slic = _text(location.get("slic")) if isinstance(location, dict) else ""
    type_, detail, scan = status.get("type"), status.get("statusCode"), status.get("code")
    type_key, detail_key = normalize_type(type_), normalize_status_code(detail)
    kind, detail_code, scan_code = _text(type_key), _text(detail_key), _text(scan).upper()
    description = _text(status.get("description"))
    simplified = _text(status.get("simplifiedTextDescription"))
    extra: dict[str, str] = {}
    for key, value in (
        ("type", kind),
        ("statusCode", detail_code),
        ("code", scan_code),
        ("simplifiedTextDescription", simplified),
        ("slic", slic),
    ):
        if value:
            extra[key] = value
    try:
        return TrackingEvent(
            happened_at=happened_at,
            status=map_keys(type_key, detail_key, normalize_type(scan)),
            # Bounded like any text (UPS's codes are a few characters; three long ones are not).
            carrier_code=_text("/".join([c for c in (kind, detail_code, scan_code) if c])),
            message=description or simplified,
            city=_text(address.get("city")) or None,
            province=region,
            country=country,
            zip=_text(address.get("postalCode")) or None,
            time_source=source,
            extra=extra,
        )
    except (ValueError, OverflowError):
        return None


def _eta(package: dict[str, Any], newest: dict[str, Any] | None) -> datetime | None:
    """The estimated delivery (rescheduled before scheduled), in the destination's time."""
    raw_dates = package.get("deliveryDate")
    dates = [d for d in raw_dates if isinstance(d, dict)] if isinstance(raw_dates, list) else []
    by_type = {normalize_type(d.get("type")): d.get("date") for d in reversed(dates)}
    day = None
    for kind in ETA_TYPES:
        if kind in by_type:
            day = by_type[kind]
            break
    if day is None:
        return None
    window = package.get("deliveryTime")
    clock: object = None
    if isinstance(window, dict) and normalize_type(window.get("type")) in WINDOW_TYPES:
        clock = window.get("endTime")
    country, region = _destination(package, newest)
    stamped = local_moment(day, clock, country=country, region=region)
    return stamped[0] if stamped else None


def _destination(
    package: dict[str, Any], newest: dict[str, Any] | None
) -> tuple[str | None, str | None]:
    """Where the parcel is going: the DESTINATION package address, else the newest scan's place."""
    addresses = package.get("packageAddress")
    if isinstance(addresses, list):
        for entry in addresses:
            if isinstance(entry, dict) and normalize_type(entry.get("type")) == "DESTINATION":
                return place_of(entry)
    return place_of(newest.get("location")) if newest is not None else (None, None)


def _raw_status(status: Mapping[str, Any]) -> str:
    """The package's current ``code/description``, whichever parts UPS gave."""
    parts = (_text(status.get("code")), _text(status.get("description")))
    return "/".join([p for p in parts if p])


def _first_object(items: list[Any]) -> dict[str, Any] | None:
    for item in items:
        if isinstance(item, dict):
            return item
    return None


def _status(activity: object) -> Mapping[str, Any]:
    status = activity.get("status") if isinstance(activity, dict) else None
    return status if isinstance(status, dict) else {}


def _address(location: object) -> Mapping[str, Any]:
    address = location.get("address") if isinstance(location, dict) else None
    return address if isinstance(address, dict) else {}


_text = clean_text
"""Carrier text, cleaned and bounded (:func:`tracker.text.clean_text`; the function itself, not
a wrapper: parsers call it a dozen times per scan)."""

_HAPPENED_AT = attrgetter("happened_at")


def _compact(number: str) -> str:
    return "".join(number.split()).upper()
