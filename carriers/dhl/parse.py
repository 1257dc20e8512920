"""DHL Shipment Tracking - Unified JSON -> :class:`TrackResult`. Pure: no I/O.

The body is ``{"shipments": [{id, service, status, events[], estimatedTimeOfDelivery,
estimatedDeliveryTimeFrame, destination, details}]}``; every event (and the shipment's
``status``, which is its latest event) is ``{timestamp, statusCode, status, description, remark,
location.address {countryCode, postalCode, addressLocality}}``, newest first.

Nothing here raises on what DHL sends: an event with a wrong type or no usable timestamp is
skipped (and counted in ``extra["skipped_events"]``), a field of the wrong type is read as
missing, and a body that is not the documented shape is an :attr:`Outcome.ERROR` result.

Timestamps come in three shapes, and each event says in ``time_source`` which one it had:
``2018-08-03T07:53:47Z`` (``utc``), ``2018-08-03T09:53:47+02:00`` (``offset``), and local time
with no zone, ``2018-08-03T09:53:47``. The last is read in the time zone of the event's
country when :data:`carriers.timezones.COUNTRY_ZONES` knows it (``local:Europe/Berlin``), else as
UTC (``local:assumed-utc``). A date alone (``2018-08-03``) is taken as noon local time so that the
day survives the conversion to UTC (``local:date-only:...``).
"""

from __future__ import annotations

from datetime import datetime
from operator import attrgetter
from typing import Any

from carriers.base import Outcome, TrackResult
from carriers.dhl.statuses import map_status
from carriers.timezones import parse_timestamp
from tracker.domain import TrackingEvent
from tracker.text import clean_text


def parse_response(number: str, body: object) -> TrackResult:
    """What DHL's 200 answer (or a problem body) says about ``number``."""
    if not isinstance(body, dict):
        return TrackResult.error(
            number, f"DHL answer is not a JSON object (got {type(body).__name__})"
        )
    shipments = body.get("shipments")
    if shipments is None:
        problem = problem_result(number, body.get("status"), body)
        if problem is not None:
            return problem
        return TrackResult.error(number, "DHL answer has no 'shipments' list")
    if not isinstance(shipments, list):
        return TrackResult.error(
            number, f"DHL 'shipments' is not a list (got {type(shipments).__name__})"
        )
    candidates = [s for s in shipments if isinstance(s, dict)]
    if not candidates:
        if shipments:
            return TrackResult.error(number, "DHL 'shipments' holds no shipment objects")
        return TrackResult.not_found(number, "DHL returned no shipments for this number")
    return _parse_shipment(number, _pick_shipment(number, candidates))


def problem_result(number: str, http_status: object, body: object) -> TrackResult | None:
    """A DHL problem answer (``{title, status, detail}``) as data, or None if it is not one.

    404 is "not found", 400 and 422 an invalid number; any other status is a carrier error for
    this number.
    """
    problem = body if isinstance(body, dict) else {}
    if not isinstance(http_status, int) or isinstance(http_status, bool):
        raw_status = problem.get("status")
        if isinstance(raw_status, float) and raw_status.is_integer():
            raw_status = int(raw_status)
        if not isinstance(raw_status, int) or isinstance(raw_status, bool):
            return None
        http_status = raw_status
    detail = _text(problem.get("detail")) or _text(problem.get("title"))
    if http_status == 404:
        return TrackResult.not_found(number, detail or "No shipment with given tracking number")
    if http_status in (400, 422):
        return TrackResult(number, Outcome.INVALID, message=detail or "invalid tracking number")
    if http_status >= 400:
        return TrackResult.error(number, f"DHL HTTP {http_status}: {detail or 'no detail'}")
    return None


def _pick_shipment(number: str, shipments: list[dict[str, Any]]) -> dict[str, Any]:
    wanted = _compact(number)
    for shipment in shipments:
        shipment_id = shipment.get("id")
        if isinstance(shipment_id, str | int) and _compact(str(shipment_id)) == wanted:
            return shipment
    return shipments[0]


def _parse_shipment(number: str, shipment: dict[str, Any]) -> TrackResult:
    destination = _country(shipment.get("destination"))
    raw_events = shipment.get("events")
    events_in = raw_events if isinstance(raw_events, list) else []
    latest = shipment.get("status")
    if not events_in and isinstance(latest, dict):
        events_in = [latest]

    events: list[TrackingEvent] = []
    skipped = 0
    for raw in reversed(events_in):  # DHL lists newest first
        event = parse_event(raw)
        if event is None:
            skipped += 1
        else:
            events.append(event)
    events.sort(key=_HAPPENED_AT)  # stable: equal times keep DHL's order

    extra: dict[str, Any] = {"skipped_events": skipped}
    if shipment_id := _text(shipment.get("id")):
        extra["shipment_id"] = shipment_id
    if service := _text(shipment.get("service")):
        extra["service"] = service
    return TrackResult(
        number,
        Outcome.FOUND,
        events=tuple(events),
        estimated_delivery_at=_eta(shipment, destination),
        message=_event_text(latest) if isinstance(latest, dict) else "",
        raw_status=_raw_status(latest),
        extra=extra,
    )


def parse_event(raw: object) -> TrackingEvent | None:
    """One DHL event, or None when it has no usable timestamp or is not an object."""
    if not isinstance(raw, dict):
        return None
    address = _address(raw.get("location"))
    country = _text(address.get("countryCode")).upper() or None
    stamped = parse_timestamp(raw.get("timestamp"), country)
    if stamped is None:
        return None
    happened_at, source = stamped
    code = raw.get("statusCode")
    status_text = _text(raw.get("status"))
    description = _text(raw.get("description"))
    remark = _text(raw.get("remark"))
    extra: dict[str, str] = {}
    for key, value in (
        ("status", status_text),
        ("description", description),
        ("remark", remark),
        ("nextSteps", _text(raw.get("nextSteps"))),
    ):
        if value:
            extra[key] = value
    message = _joined(status_text, description)
    if remark and remark not in message:
        message = f"{message} - {remark}" if message else remark
    try:
        return TrackingEvent(
            happened_at=happened_at,
            status=map_status(code, status_text, description),
            carrier_code=_text(code),
            message=message,
            city=_text(address.get("addressLocality")) or None,
            country=country,
            zip=_text(address.get("postalCode")) or None,
            time_source=source,
            extra=extra,
        )
    except (ValueError, OverflowError):
        return None


def _eta(shipment: dict[str, Any], country: str | None) -> datetime | None:
    stamped = parse_timestamp(shipment.get("estimatedTimeOfDelivery"), country)
    if stamped is None:
        frame = shipment.get("estimatedDeliveryTimeFrame")
        if isinstance(frame, dict):
            stamped = parse_timestamp(frame.get("estimatedThrough"), country) or (
                parse_timestamp(frame.get("estimatedFrom"), country)
            )
    return stamped[0] if stamped else None


def _raw_status(latest: object) -> str:
    """The shipment-level ``statusCode/status``, whichever parts DHL gave."""
    if not isinstance(latest, dict):
        return ""
    parts = (_text(latest.get("statusCode")), _text(latest.get("status")))
    return "/".join([p for p in parts if p])


def _event_text(raw: dict[str, Any]) -> str:
    """``status``, plus ``description`` when it says something ``status`` does not."""
    return _joined(_text(raw.get("status")), _text(raw.get("description")))


def _joined(status_text: str, description: str) -> str:
    """:func:`_event_text` of the cleaned ``status`` and ``description``."""
    if not description or description.casefold() in status_text.casefold():
        return status_text
    if not status_text or status_text.casefold() in description.casefold():
        return description
    return f"{status_text}: {description}"


def _address(location: object) -> dict[str, Any]:
    if isinstance(location, dict):
        address = location.get("address")
        if isinstance(address, dict):
            return address
    return {}


def _country(place: object) -> str | None:
    return _text(_address(place).get("countryCode")).upper() or None


_text = clean_text
"""Carrier text, cleaned and bounded (:func:`tracker.text.clean_text`; the function itself, not
a wrapper: parsers call it a dozen times per scan)."""

_HAPPENED_AT = attrgetter("happened_at")


def _compact(number: str) -> str:
    return "".join(number.split()).upper()
