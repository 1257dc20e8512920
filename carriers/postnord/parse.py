"""PostNord Track & Trace v7 JSON -> :class:`TrackResult`. Pure: no I/O.

A 200 answer is ``{"TrackingInformationResponse": {"shipments": [...], "compositeFault":
{"faults": [{faultCode, explanationText, paramValues}]}}}``. A shipment is ``{shipmentId,
status, statusText {header, body}, estimatedTimeOfArrival, service, consignee, deliveryPoint,
items[]}`` and an item ``{itemId, status, eventStatus, estimatedTimeOfArrival, deliveryDate,
events[]}``; every event is ``{eventTime, eventCode, status, eventDescription, location
{displayName, name, city, postcode, countryCode, country}}``. A number PostNord does not know
comes back as an empty ``shipments`` list, sometimes with faults; an error answer is
``{"message", "compositeFault"}``.

The asked number may be a shipment id or an item id. The item whose ``itemId`` is the number is
read; failing that, the first item of the shipment whose ``shipmentId`` is the number (or the
first shipment), and ``extra["items"]`` says how many there were.

Nothing here raises on what PostNord sends: an event that is not an object or has no usable
``eventTime`` is skipped (counted in ``extra["skipped_events"]``), a field of the wrong type is
read as missing, and a body of another shape is an :attr:`Outcome.ERROR` result.

``eventTime`` is usually Nordic local time with no zone (``2024-05-13T14:27:00``); it is read in
the zone of the event's country when :data:`carriers.timezones.COUNTRY_ZONES` has it
(``local:Europe/Stockholm``), else as UTC (``local:assumed-utc``). A time with ``Z`` is ``utc``,
one with an offset ``offset``. A bare date (an ETA) is taken as noon local time
(``local:date-only:...``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from operator import attrgetter
from typing import Any

from carriers.base import Outcome, TrackResult
from carriers.postnord.statuses import map_status, normalize_code
from carriers.timezones import parse_timestamp
from tracker.domain import TrackingEvent
from tracker.text import clean_text

COUNTRY_NAMES: Mapping[str, str] = {
    "SWEDEN": "SE", "SVERIGE": "SE", "DENMARK": "DK", "DANMARK": "DK", "NORWAY": "NO",
    "NORGE": "NO", "FINLAND": "FI", "SUOMI": "FI",
}  # fmt: skip
"""Country names PostNord writes in ``country`` when ``countryCode`` is missing."""

_INVALID_ID_FAULT = re.compile(r"invalid[\W_]*(?:identifier|id(?![a-z]))", re.IGNORECASE)


def parse_response(number: str, body: object) -> TrackResult:
    """What PostNord's answer (a 200 body or an error body) says about ``number``."""
    if not isinstance(body, dict):
        return TrackResult.error(
            number, f"PostNord answer is not a JSON object (got {type(body).__name__})"
        )
    info = body.get("TrackingInformationResponse")
    if info is None:
        if "message" in body or "compositeFault" in body:
            return fault_result(number, body, None) or TrackResult.error(
                number, f"PostNord error: {_text(body.get('message')) or 'no detail'}"
            )
        return TrackResult.error(number, "PostNord answer has no 'TrackingInformationResponse'")
    if not isinstance(info, dict):
        return TrackResult.error(number, "PostNord 'TrackingInformationResponse' is not an object")
    shipments = info.get("shipments")
    if shipments is None or shipments == []:
        return fault_result(number, info, 200) or TrackResult.not_found(
            number, "PostNord returned no shipments for this number"
        )
    if not isinstance(shipments, list):
        return TrackResult.error(
            number, f"PostNord 'shipments' is not a list (got {type(shipments).__name__})"
        )
    candidates = [s for s in shipments if isinstance(s, dict)]
    if not candidates:
        return TrackResult.error(number, "PostNord 'shipments' holds no shipment objects")
    return _parse_shipment(number, *_pick(number, candidates))


def fault_result(number: str, body: object, http_status: int | None) -> TrackResult | None:
    """PostNord's ``compositeFault`` (or an ``ErrorResponse``) as data; None if it has none.

    A fault about the identifier makes the number ``INVALID``. Other faults beside an empty
    ``shipments`` list (``http_status`` 200) or with a 404 make it ``NOT_FOUND``, unless they
    say the request itself was invalid (``invalidLocale``, ...); everything else is ``ERROR``.
    ``http_status`` None: the status is not known (a bare error body).
    """
    if not isinstance(body, dict):
        return None
    faults = _faults(body.get("compositeFault"))
    message = _text(body.get("message"))
    if not faults and not message:
        return None
    # Each fault's text is bounded, their number is not: so is the whole.
    detail = clean_text("; ".join(text for _, text in faults if text)) or message or "no detail"
    codes = [code for code, _ in faults if code]
    if any(_INVALID_ID_FAULT.search(code) for code in codes):
        return TrackResult(number, Outcome.INVALID, message=detail)
    request_fault = any(code.casefold().startswith("invalid") for code in codes)
    if http_status in (200, 404) and not request_fault:
        return TrackResult.not_found(number, detail)
    label = ", ".join(codes) or (f"HTTP {http_status}" if http_status else "error")
    return TrackResult.error(number, clean_text(f"PostNord {label}: {detail}"))


def _faults(composite: object) -> list[tuple[str, str]]:
    """``(faultCode, explanationText)`` of every readable fault."""
    if not isinstance(composite, dict):
        return []
    faults = composite.get("faults")
    if not isinstance(faults, list):
        return []
    return [
        (_text(f.get("faultCode")), _text(f.get("explanationText")))
        for f in faults
        if isinstance(f, dict) and (_text(f.get("faultCode")) or _text(f.get("explanationText")))
    ]


def _pick(
    number: str, shipments: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any] | None, int]:
    """``(shipment, item, number of items)`` for ``number``."""
    wanted = _compact(number)
    for shipment in shipments:
        items = _items(shipment)
        for item in items:
            if _compact(_text(item.get("itemId"))) == wanted:
                return shipment, item, len(items)
    chosen = next(
        (s for s in shipments if _compact(_text(s.get("shipmentId"))) == wanted), shipments[0]
    )
    items = _items(chosen)
    return chosen, (items[0] if items else None), len(items)


def _items(shipment: dict[str, Any]) -> list[dict[str, Any]]:
    items = shipment.get("items")
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _parse_shipment(
    number: str, shipment: dict[str, Any], item: dict[str, Any] | None, item_count: int
) -> TrackResult:
    source = item or {}
    raw_events = source.get("events")
    events: list[TrackingEvent] = []
    skipped = 0
    for raw in raw_events if isinstance(raw_events, list) else []:
        event = parse_event(raw)
        if event is None:
            skipped += 1
        else:
            events.append(event)
    events.sort(key=_HAPPENED_AT)  # stable: equal times keep PostNord's order

    extra: dict[str, Any] = {"skipped_events": skipped, "items": item_count}
    for key, value in (
        ("shipment_id", _text(shipment.get("shipmentId"))),
        ("item_id", _text(source.get("itemId"))),
        ("service", _text(_dict(shipment.get("service")).get("name"))),
        ("shipment_status", _text(shipment.get("status"))),
    ):
        if value:
            extra[key] = value
    country = _destination_country(shipment) or next(
        (e.country for e in reversed(events) if e.country), None
    )
    delivered = _first_time(country, source.get("deliveryDate"), shipment.get("deliveryDate"))
    if delivered is not None:
        extra["delivered_at"] = delivered.isoformat()
    return TrackResult(
        number,
        Outcome.FOUND,
        events=tuple(events),
        estimated_delivery_at=_first_time(
            country,
            source.get("estimatedTimeOfArrival"),
            shipment.get("estimatedTimeOfArrival"),
            source.get("publicTimeOfArrival"),
            shipment.get("publicTimeOfArrival"),
        ),
        message=_status_text(source) or _status_text(shipment),
        raw_status=_raw_status(source, shipment),
        extra=extra,
    )


def parse_event(raw: object) -> TrackingEvent | None:
    """One PostNord event, or None when it is not an object or has no usable ``eventTime``."""
    if not isinstance(raw, dict):
        return None
    location = _dict(raw.get("location"))
    country = _country(location)
    stamped = parse_timestamp(raw.get("eventTime"), country)
    if stamped is None:
        return None
    happened_at, source = stamped
    code = _text(raw.get("eventCode"))
    status_text = _text(raw.get("status"))
    description = _text(raw.get("eventDescription"))
    display_name = _text(location.get("displayName"))
    extra: dict[str, str] = {}
    for key, value in (
        ("status", status_text),
        ("displayName", display_name),
        ("locationType", _text(location.get("locationType"))),
        ("localEventCode", _text(raw.get("localEventCode"))),
    ):
        if value:
            extra[key] = value
    try:
        return TrackingEvent(
            happened_at=happened_at,
            status=map_status(status_text, code, description),
            carrier_code=code,
            message=description,
            city=_text(location.get("city")) or display_name or None,
            country=country,
            zip=_text(location.get("postcode")) or None,
            time_source=source,
            extra=extra,
        )
    except (ValueError, OverflowError):
        return None


def _first_time(country: str | None, *values: object) -> datetime | None:
    for value in values:
        stamped = parse_timestamp(value, country)
        if stamped is not None:
            return stamped[0]
    return None


def _destination_country(shipment: dict[str, Any]) -> str | None:
    for place in (
        shipment.get("deliveryPoint"),
        _dict(shipment.get("deliveryPoint")).get("address"),
        _dict(shipment.get("consignee")).get("address"),
    ):
        country = _country(_dict(place))
        if country:
            return country
    return None


def _country(place: dict[str, Any]) -> str | None:
    code = _text(place.get("countryCode")).upper()
    if len(code) == 2 and code.isalpha():
        return code
    name = _text(place.get("country")).upper()
    return COUNTRY_NAMES.get(name) or (code or None)


def _status_text(holder: dict[str, Any]) -> str:
    """``statusText.header``, plus ``body`` when it says more."""
    text = _dict(holder.get("statusText"))
    header, body = _text(text.get("header")), _text(text.get("body"))
    if header and body and body.casefold() not in header.casefold():
        return f"{header}: {body}"
    return header or body


def _raw_status(item: dict[str, Any], shipment: dict[str, Any]) -> str:
    status = normalize_code(_text(item.get("status"))) or normalize_code(
        _text(shipment.get("status"))
    )
    event_status = normalize_code(_text(item.get("eventStatus")))
    if event_status and event_status != status:
        return f"{status}/{event_status}" if status else event_status
    return status


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


_text = clean_text
"""Carrier text, cleaned and bounded (:func:`tracker.text.clean_text`; the function itself, not
a wrapper: parsers call it a dozen times per scan)."""

_HAPPENED_AT = attrgetter("happened_at")


def _compact(number: str) -> str:
    return "".join(number.split()).upper()
