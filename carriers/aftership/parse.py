"""AfterShip Tracking API JSON -> :class:`TrackResult`. Pure: no I/O.

Every answer is an envelope ``{"meta": {"code", "message", "type"}, "data": ...}``. The list
endpoint answers ``data.trackings[]``; each tracking carries ``tracking_number, slug, tag,
subtag, subtag_message``, the estimated delivery fields and ``checkpoints[]`` (oldest first)
``{checkpoint_time, tag, subtag, subtag_message, message, city, state, zip | postal_code,
country_iso3 | country_region, location, raw_tag}``. Errors carry AfterShip's own ``meta.code``
(4004 tracking does not exist, 4005 invalid number, 4012 courier not recognized, ...).

Nothing here raises on what AfterShip sends: a checkpoint with a wrong type or no usable time
is skipped (and counted in ``extra["skipped_events"]``), a field of the wrong type reads as
missing, and a body that is not the documented shape is an :attr:`Outcome.ERROR` result.

Time: ``checkpoint_time`` is the carrier's local time, "YYYY-MM-DDTHH:mm:ss" with or without an
offset. AfterShip gives no UTC time for the scan itself (``created_at`` is when AfterShip
stored it), so: an offset (``offset``; ``Z`` reads as ``utc``) first, else the checkpoint's zone
from :mod:`carriers.timezones` (``local:Europe/Berlin``; US by state), else UTC
(``local:assumed-utc``). A date alone is read as noon local time (``local:date-only:...``).
Estimated delivery dates are in the recipient's zone, so they are read with the destination's
zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any, TypeAlias

from carriers.aftership.statuses import canonical_subtag, canonical_tag, status_of
from carriers.aftership.zones import country_iso2
from carriers.base import Outcome, TrackResult
from carriers.timezones import parse_timestamp
from tracker.domain import TrackingEvent
from tracker.text import clean_text

NOT_FOUND_CODES = frozenset({404, 4004, 4012})
"""``meta.code`` values meaning AfterShip does not (or cannot) track the number."""

INVALID_CODES = frozenset({4005, 4007, 4008, 4010, 4011, 4017})
"""``meta.code`` values meaning the number (or what it needs) is not acceptable."""

ALREADY_EXISTS = 4003

# Estimated delivery, most specific source first: (object field, keys in order of preference).
_ETA_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("latest_estimated_delivery", ("datetime", "datetime_max", "datetime_min")),
    ("courier_estimated_delivery_date",
     ("estimated_delivery_date", "estimated_delivery_date_max", "estimated_delivery_date_min")),
    ("aftership_estimated_delivery_date",
     ("estimated_delivery_date", "estimated_delivery_date_max", "estimated_delivery_date_min")),
    ("custom_estimated_delivery_date",
     ("estimated_delivery_date", "estimated_delivery_date_max", "estimated_delivery_date_min")),
)  # fmt: skip


_DESTINATION_FIELDS = (
    "destination_country_region",
    "destination_country_iso3",
    "courier_destination_country_region",
    "courier_destination_country_iso3",
)


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A body that is not an AfterShip list answer, and why."""

    reason: str


@dataclass(frozen=True, slots=True)
class Meta:
    """The envelope's ``meta``: AfterShip's own code (None if absent), message and type."""

    code: int | None
    message: str
    type: str


def read_meta(body: object) -> Meta:
    """The envelope's ``meta``, with anything missing or mistyped read as absent."""
    meta = body.get("meta") if isinstance(body, dict) else None
    if not isinstance(meta, dict):
        return Meta(None, "", "")
    code = meta.get("code")
    if isinstance(code, float) and code.is_integer():
        code = int(code)
    if not isinstance(code, int) or isinstance(code, bool):
        code = None
    return Meta(code, _text(meta.get("message")), _text(meta.get("type")))


def error_result(number: str, http_status: int | None, body: object) -> TrackResult | None:
    """An AfterShip error answer about ``number`` as data, or None if it is not an error.

    ``meta.code`` decides when it is an error code (>= 400), else the HTTP status: not found
    (4004, 4012, 404), invalid (4005, 4007, 4008, 4010, 4011, 4017), anything else an error.
    """
    meta = read_meta(body)
    if meta.code is not None and meta.code >= 400:
        code = meta.code
    elif http_status is not None and http_status >= 400:
        code = http_status
    else:
        return None
    if code in NOT_FOUND_CODES:
        return TrackResult.not_found(number, meta.message or "Tracking does not exist.")
    if code in INVALID_CODES:
        message = meta.message or "The value of tracking_number is invalid."
        return TrackResult(number, Outcome.INVALID, message=message)
    kind = f" {meta.type}" if meta.type else ""
    return TrackResult.error(number, f"AfterShip code {code}{kind}: {meta.message or 'no message'}")


def read_trackings(body: object) -> list[dict[str, Any]] | Unreadable:
    """The tracking objects of a list (or single-tracking) answer."""
    if not isinstance(body, dict):
        return Unreadable(f"AfterShip answer is not a JSON object (got {type(body).__name__})")
    data = body.get("data")
    container = data if isinstance(data, dict) else body
    trackings = container.get("trackings")
    if trackings is None and isinstance(container.get("tracking"), dict):
        trackings = [container["tracking"]]
    if not isinstance(trackings, list):
        return Unreadable("AfterShip answer has no 'data.trackings' list")
    return [t for t in trackings if isinstance(t, dict)]


BatchResult: TypeAlias = dict[str, TrackResult | None] | Unreadable
"""Per number its result, None where the answer does not list it; or why it is unreadable."""


def parse_batch(numbers: Sequence[str], body: object) -> BatchResult:
    """Each of ``numbers`` as AfterShip's list answer reports it; None where it is absent."""
    trackings = read_trackings(body)
    if isinstance(trackings, Unreadable):
        return trackings
    by_number: dict[str, list[dict[str, Any]]] = {}
    for tracking in trackings:
        tracking_number = tracking.get("tracking_number")
        if isinstance(tracking_number, str) and tracking_number.strip():
            by_number.setdefault(compact(tracking_number), []).append(tracking)
    found: dict[str, TrackResult | None] = {}
    for number in numbers:
        candidates = by_number.get(compact(number))
        found[number] = parse_tracking(number, _pick(candidates)) if candidates else None
    return found


def parse_response(number: str, body: object) -> TrackResult:
    """What one AfterShip answer (list, single tracking or error envelope) says of ``number``."""
    problem = error_result(number, None, body)
    if problem is not None:
        return problem
    batch = parse_batch([number], body)
    if isinstance(batch, Unreadable):
        return TrackResult.error(number, batch.reason)
    return batch[number] or TrackResult.not_found(
        number, "AfterShip returned no tracking for this number"
    )


def _pick(candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """Of trackings with the same number (one per courier slug), the one with most scans."""
    return max(
        candidates, key=lambda t: len(c) if isinstance(c := t.get("checkpoints"), list) else 0
    )


def parse_tracking(number: str, tracking: dict[str, Any]) -> TrackResult:
    """One AfterShip tracking object as the result for ``number``."""
    raw_checkpoints = tracking.get("checkpoints")
    events: list[TrackingEvent] = []
    skipped = 0
    for raw in raw_checkpoints if isinstance(raw_checkpoints, list) else []:
        event = parse_checkpoint(raw)
        if event is None:
            skipped += 1
        else:
            events.append(event)
    events.sort(key=_HAPPENED_AT)  # stable: equal times keep AfterShip's order

    tag, subtag = tracking.get("tag"), tracking.get("subtag")
    raw_status = "/".join([p for p in (_text(tag), _text(subtag)) if p])
    message = _text(tracking.get("subtag_message"))
    extra: dict[str, Any] = {"skipped_events": skipped}
    for key, name in (("id", "tracking_id"), ("slug", "slug"), ("shipment_type", "service")):
        if value := _text(tracking.get(key)):
            extra[name] = value
    if not events and skipped == 0 and canonical_tag(tag, subtag) in (None, "Pending", "Expired"):
        state = message or _text(tag) or "no status"
        return TrackResult(
            number,
            Outcome.NOT_FOUND,
            message=f"AfterShip has no checkpoints for this number yet ({state})",
            raw_status=raw_status,
            extra=extra,
        )
    return TrackResult(
        number,
        Outcome.FOUND,
        events=tuple(events),
        estimated_delivery_at=parse_eta(tracking),
        message=message,
        raw_status=raw_status,
        extra=extra,
    )


def parse_checkpoint(raw: object) -> TrackingEvent | None:
    """One checkpoint, or None when it has no usable ``checkpoint_time`` or is not an object."""
    if not isinstance(raw, dict):
        return None
    country = country_iso2(raw.get("country_region")) or country_iso2(raw.get("country_iso3"))
    state = _text(raw.get("state"))
    stamped = parse_timestamp(raw.get("checkpoint_time"), country, state)
    if stamped is None:
        return None
    happened_at, source = stamped
    tag, subtag = raw.get("tag"), raw.get("subtag")
    known_subtag = canonical_subtag(subtag)
    tag_text, subtag_text = _text(tag), _text(subtag)
    code = known_subtag or subtag_text or canonical_tag(tag) or tag_text
    subtag_message = _text(raw.get("subtag_message"))
    extra: dict[str, str] = {}
    for key, value in (
        ("tag", tag_text),
        ("subtag", subtag_text),
        ("subtag_message", subtag_message),
        ("raw_tag", _text(raw.get("raw_tag"))),
        ("location", _text(raw.get("location"))),
        ("slug", _text(raw.get("slug"))),
    ):
        if value:
            extra[key] = value
    try:
        return TrackingEvent(
            happened_at=happened_at,
            status=status_of(tag, subtag, known_subtag),
            carrier_code=code,
            message=_text(raw.get("message")) or subtag_message,
            city=_text(raw.get("city")) or None,
            province=state or None,
            country=country,
            zip=_text(raw.get("zip")) or _text(raw.get("postal_code")) or None,
            time_source=source,
            extra=extra,
        )
    except (ValueError, OverflowError):
        return None


def parse_eta(tracking: dict[str, Any]) -> datetime | None:
    """The estimated delivery, read in the destination's zone; None if AfterShip gives none."""
    country = None
    for key in _DESTINATION_FIELDS:
        country = country or country_iso2(tracking.get(key))
    state = tracking.get("destination_state")
    for field, keys in _ETA_FIELDS:
        estimate = tracking.get(field)
        if isinstance(estimate, dict):
            for key in keys:
                stamped = parse_timestamp(estimate.get(key), country, state)
                if stamped is not None:
                    return stamped[0]
    legacy = parse_timestamp(tracking.get("expected_delivery"), country, state)
    return legacy[0] if legacy else None


def compact(number: str) -> str:
    """A tracking number as a comparison key: no whitespace, upper case."""
    return "".join(number.split()).upper()


_text = clean_text
"""Carrier text, cleaned and bounded (:func:`tracker.text.clean_text`; the function itself, not
a wrapper: parsers call it a dozen times per scan)."""

_HAPPENED_AT = attrgetter("happened_at")
