"""A local DHL Shipment Tracking - Unified API, for the demo and the tests.

``GET /track/shipments?trackingNumber=N`` answers as DHL does: the shipment with its events
newest first, in DHL's ``statusCode`` values and words, or a ``application/problem+json`` body
(401 for a missing or wrong ``DHL-API-Key``, 400 without ``trackingNumber``, 404 for a number
DHL does not know, 429 over the rate limit). The fault numbers of :mod:`carriers.sandbox_base`
work here too.

Timestamps are written the three ways the live API writes them, chosen per number so that a
number always looks the same: with the local offset, in UTC with ``Z``, or as local time with no
zone at all (only for countries :data:`carriers.timezones.COUNTRY_ZONES` knows, since that is the
only way the parser, like a person, can tell what such a time means).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import zlib
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any

from aiohttp import web

from carriers.sandbox_base import (
    HTML_ERROR_PAGE,
    WORLD_KEY,
    CarrierWorld,
    Fault,
    Kind,
    Scan,
    Timeline,
    fault_pause,
    json_response,
    place_zone,
    truncated_json,
)
from carriers.sandbox_control import add_control_routes
from carriers.timezones import format_timestamp

log = logging.getLogger(__name__)

API_KEY = web.AppKey("dhl_api_key", str)

PROBLEM_JSON = "application/problem+json"
CLIENT_CLOSED = 499
"""Logged status of a request whose client went away before the answer (nginx's code)."""

DHL_SERVICES = frozenset(
    {
        "freight", "express", "post-de", "parcel-de", "parcel-nl", "parcel-pl", "dsc", "dgf",
        "ecommerce", "ecommerce-europe",
    }
)  # fmt: skip
"""The ``service`` values the spec allows on a shipment; others are shown as ``parcel-de``."""

NOT_FOUND_TITLE = "No result found"
NOT_FOUND_DETAIL = "No shipment with given tracking number found."


_WORDING: Mapping[Kind, tuple[str, str]] = {
    Kind.LABEL: (
        "pre-transit",
        "The instruction data for this shipment have been provided by the sender to DHL "
        "electronically",
    ),
    Kind.PICKUP: ("transit", "The shipment has been picked up"),
    Kind.TRANSIT: ("transit", "The shipment has been processed in the parcel center"),
    Kind.CUSTOMS: ("transit", "The shipment is being prepared for customs clearance"),
    Kind.DELAY: (
        "transit",
        "The shipment is delayed. The transport to the destination is taking longer than planned",
    ),
    Kind.OUT_FOR_DELIVERY: ("transit", "The shipment has been loaded onto the delivery vehicle"),
    Kind.ATTEMPT: (
        "failure",
        "The delivery attempt failed: the recipient was not at home. A notification card has "
        "been left",
    ),
    Kind.PICKUP_POINT: (
        "transit",
        "The shipment is available for pick-up at the Packstation / retail outlet",
    ),
    Kind.DELIVERED: ("delivered", "The shipment has been delivered"),
    Kind.EXCEPTION: (
        "failure",
        "The shipment was damaged in transit and cannot be processed further",
    ),
    Kind.RETURNED: ("failure", "The shipment has been returned to the sender"),
    Kind.INFO: ("unknown", "The shipment data has been updated"),
}
"""``(statusCode, status)`` per kind; a parcel center scan also names its city."""


def _wording(kind: Kind, city: str) -> tuple[str, str]:
    """``(statusCode, status)`` DHL would show for a scan of ``kind`` in ``city``."""
    code, words = _WORDING[kind]
    if kind is Kind.TRANSIT and city:
        return code, f"{words} of {city}"
    return code, words


class TimeStyle(Enum):
    """How one number's timestamps are written."""

    OFFSET = "offset"
    UTC = "utc"
    LOCAL = "local"


_STYLES = tuple(TimeStyle)


def time_style(number: str) -> TimeStyle:
    """The same style for a number every time it is asked, spread evenly over numbers."""
    return _STYLES[zlib.crc32(number.strip().upper().encode()) % len(_STYLES)]


def render_time(moment: datetime, country: str, style: TimeStyle) -> str:
    """``moment`` as DHL writes it for a place in ``country``.

    Without a known zone for ``country`` an offset style writes ``+00:00`` and the zone-less
    style falls back to ``Z``.
    """
    return format_timestamp(moment, place_zone(country), style.value)


def render_event(moment: datetime, scan: Scan, style: TimeStyle) -> dict[str, Any]:
    """One scan as a DHL shipment event."""
    return _event(moment, scan, style.value)


def _event(moment: datetime, scan: Scan, style: str) -> dict[str, Any]:
    code, words = _wording(scan.kind, scan.city)
    event: dict[str, Any] = {
        "timestamp": format_timestamp(moment, place_zone(scan.country), style),
        "statusCode": code,
        "status": words,
        "description": words,
    }
    address = {}
    country = scan.country.upper()
    if country:
        address["countryCode"] = country
    if scan.postal_code:
        address["postalCode"] = scan.postal_code
    if scan.city:
        address["addressLocality"] = scan.city
    if address:
        event["location"] = {"address": address}
    if scan.message:
        event["remark"] = scan.message
    return event


def render_shipments(timeline: Timeline, now: datetime) -> dict[str, Any] | None:
    """The 200 body for ``timeline`` as of ``now``; None while no scan is visible yet."""
    visible = timeline.visible(now)
    if not visible:
        return None
    style = time_style(timeline.tracking_number).value
    events = [_event(moment, scan, style) for moment, scan in reversed(visible)]
    last_country = next((s.country for _, s in reversed(visible) if s.country), "")
    service = timeline.service if timeline.service in DHL_SERVICES else "parcel-de"
    shipment: dict[str, Any] = {
        "id": timeline.tracking_number,
        "service": service,
        "status": events[0],
        "events": events,
        "details": {
            "product": {"productName": "DHL Paket"},
            "totalNumberOfPieces": 1,
            "pieceIds": [timeline.tracking_number],
        },
    }
    if last_country:
        shipment["destination"] = {"address": {"countryCode": last_country.upper()}}
    eta = timeline.eta()
    if eta is not None and not any(scan.kind is Kind.DELIVERED for _, scan in visible):
        shipment["estimatedTimeOfDelivery"] = format_timestamp(eta, place_zone(last_country), style)
    return {"shipments": [shipment]}


def _problem(
    status: int, title: str, detail: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """DHL's error answer: ``application/problem+json`` ``{title, status, detail}``."""
    return json_response(
        {"title": title, "status": status, "detail": detail},
        status=status,
        content_type=PROBLEM_JSON,
        headers={"Content-Language": "en", **(headers or {})},
    )


async def _shipments(request: web.Request) -> web.Response:
    world = request.app[WORLD_KEY]
    number = request.query.get("trackingNumber", "").strip()
    numbers = (number,) if number else ()
    try:
        response = await _answer(request, world, number)
    except asyncio.CancelledError:  # the client hung up (e.g. timed out on a slow number)
        world.log(request, numbers, CLIENT_CLOSED)
        raise
    world.log(request, numbers, response.status)
    log.debug("DHL sandbox: %s -> %d", number or "(no number)", response.status)
    return response


async def _answer(request: web.Request, world: CarrierWorld, number: str) -> web.Response:
    given_key = request.headers.get("DHL-API-Key", "")
    if not hmac.compare_digest(given_key.encode(), request.app[API_KEY].encode()):
        return _problem(401, "Unauthorized", "Unauthorized for given resource.")
    if world.over_rate_limit():
        return _too_many(world)
    if not number:
        return _problem(
            400, "Invalid request", "The request is missing the 'trackingNumber' parameter."
        )

    fault = world.fault(number)
    await fault_pause(world, fault)
    if fault is Fault.RATE_LIMIT:
        return _too_many(world)
    if fault is Fault.SERVER_ERROR:
        return web.Response(status=500, text=HTML_ERROR_PAGE, content_type="text/html")

    timeline = world.lookup(number)
    body = render_shipments(timeline, world.clock.now()) if timeline is not None else None
    if fault is Fault.MALFORMED:
        whole = json.dumps(body or {"shipments": [{"id": number, "service": "parcel-de"}]})
        return web.Response(text=truncated_json(whole), content_type="application/json")
    if body is None:
        return _problem(404, NOT_FOUND_TITLE, NOT_FOUND_DETAIL)
    return json_response(body, headers={"Content-Language": "en"})


def _too_many(world: CarrierWorld) -> web.Response:
    return _problem(
        429,
        "Too many requests",
        f"Rate limit of {world.rate_limit_per_second:g} requests per second exceeded.",
        {"Retry-After": "1"},
    )


def build_app(world: CarrierWorld, *, api_key: str) -> web.Application:
    """The DHL sandbox for ``world``, accepting ``api_key`` in the ``DHL-API-Key`` header."""
    app = web.Application()
    app[WORLD_KEY] = world
    app[API_KEY] = api_key
    app.router.add_get("/track/shipments", _shipments)
    add_control_routes(app)
    return app


SANDBOX_SETTINGS: dict[str, str] = {"api_key": "dhl-sandbox-key"}
"""The ``carriers.dhl`` credentials :func:`sandbox_app` accepts."""


def sandbox_app(world: CarrierWorld) -> web.Application:
    """The sandbox with its standard credentials (see :mod:`carriers.sandbox_base`)."""
    return build_app(world, api_key=SANDBOX_SETTINGS["api_key"])


def sample_number(index: int) -> str:
    """A DHL Express waybill: nine digits and a mod-7 check digit."""
    base = 100_000_000 + index * 7919 % 900_000_000
    return f"{base}{base % 7}"
