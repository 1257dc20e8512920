"""A local AfterShip Tracking API (version 2024-10), for the demo and the tests.

The same paths as ``https://api.aftership.com/tracking/2024-10``:

* ``POST /tracking/2024-10/trackings`` registers ``{"tracking_number": N, "slug"?: S}``: 201 with
  the tracking; 400 code 4003 if it is already registered; 400 code 4012 for a number no courier
  is known for (every ``SBNOTFOUND...`` number, and any number without a timeline);
* ``GET /tracking/2024-10/trackings?tracking_numbers=a,b`` lists the *registered* ones among
  them (a number never registered is simply absent), at most 50 per request (more: 400, code
  4008);
* ``DELETE /tracking/2024-10/trackings/{id}`` forgets a registration (404 code 4004 if none).

Every answer is AfterShip's envelope ``{"meta": {code, message, type}, "data": ...}``; a missing
or wrong ``as-api-key`` is 401, more than ``world.rate_limit_per_second`` requests is 429 with
``Retry-After``. The fault numbers of :mod:`carriers.sandbox_base` act on the list request that
carries them (registering them works): 429, a 500 HTML page, a slow answer, a truncated body.
What a registered number shows is rendered by :mod:`.render`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from aiohttp import web

from carriers.aftership import API_PATH
from carriers.aftership.render import (
    KIND_STATUS,
    detect_slug,
    render_tracking,
    s10_number,
    tracking_id,
)
from carriers.sandbox_base import (
    HTML_ERROR_PAGE,
    WORLD_KEY,
    CarrierWorld,
    Fault,
    RequestRecord,
    fault_pause,
    json_response,
    truncated_json,
)
from carriers.sandbox_control import add_control_routes

__all__ = [
    "KIND_STATUS",
    "SANDBOX_SETTINGS",
    "build_app",
    "is_tracking_request",
    "sample_number",
    "sandbox_app",
]

log = logging.getLogger(__name__)

MAX_NUMBERS_PER_LIST = 50
CLIENT_CLOSED = 499
"""Logged status of a request whose client went away before the answer (nginx's code)."""

_TYPES: Mapping[int, str] = MappingProxyType(
    {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 429: "TooManyRequests"}
)


@dataclass(frozen=True, slots=True)
class Registration:
    """One registered tracking: the number as given, its courier, when it was registered."""

    tracking_number: str
    slug: str
    created_at: datetime


@dataclass
class Registrations:
    """The trackings of the sandbox's one AfterShip account, by upper-cased number."""

    by_number: dict[str, Registration] = field(default_factory=dict)

    def get(self, number: str) -> Registration | None:
        return self.by_number.get(number.strip().upper())

    def add(self, registration: Registration) -> None:
        self.by_number[registration.tracking_number.strip().upper()] = registration


API_KEY = web.AppKey("aftership_api_key", str)
REGISTRATIONS = web.AppKey("aftership_registrations", Registrations)


def envelope(
    status: int,
    code: int,
    message: str,
    data: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """AfterShip's answer: ``{"meta": {code, message, type}, "data": ...}`` with ``status``."""
    kind = "Created" if status == 201 else _TYPES.get(status, "OK" if status < 400 else "Error")
    return json_response(
        {"meta": {"code": code, "message": message, "type": kind}, "data": dict(data or {})},
        status=status,
        headers={"as-api-version": API_PATH.rsplit("/", 1)[-1], **(headers or {})},
    )


def _too_many(world: CarrierWorld) -> web.Response:
    limit = f"{world.rate_limit_per_second:g}"
    return envelope(
        429,
        429,
        f"You have exceeded the API call rate limit. The limit is {limit} requests per second.",
        headers={"Retry-After": "1", "X-RateLimit-Limit": limit, "X-RateLimit-Remaining": "0",
                 "X-RateLimit-Reset": str(int(time.time()) + 1)},
    )  # fmt: skip


def _refused(request: web.Request, world: CarrierWorld) -> web.Response | None:
    """401 for a wrong key, 429 over the rate limit, else None."""
    given = request.headers.get("as-api-key", "")
    if not hmac.compare_digest(given.encode(), request.app[API_KEY].encode()):
        return envelope(401, 401, "The API Key is invalid.")
    if world.over_rate_limit():
        return _too_many(world)
    return None


async def _create(request: web.Request) -> web.Response:
    world = request.app[WORLD_KEY]
    number, response = await _create_answer(request, world)
    world.log(request, (number,) if number else (), response.status)
    log.debug("AfterShip sandbox: create %s -> %d", number or "(no number)", response.status)
    return response


async def _create_answer(request: web.Request, world: CarrierWorld) -> tuple[str, web.Response]:
    refused = _refused(request, world)
    if refused is not None:
        return "", refused
    if request.content_type != "application/json":
        return "", envelope(400, 4001, "Invalid JSON data: Content-Type must be application/json.")
    try:
        body: Any = await request.json()
    except ValueError:
        return "", envelope(400, 4001, "Invalid JSON data.")
    number = body.get("tracking_number") if isinstance(body, dict) else None
    if not isinstance(number, str) or not number.strip():
        return "", envelope(400, 4007, "tracking_number is required.")
    number = number.strip()
    slug = body.get("slug")
    if slug is not None and (not isinstance(slug, str) or not slug.strip()):
        return number, envelope(400, 4010, "The value of slug is invalid.")
    if "," in number or len(number) > 100 or any(c.isspace() for c in number):
        return number, envelope(400, 4005, "The value of tracking_number is invalid.")
    registrations = request.app[REGISTRATIONS]
    if registrations.get(number) is not None:
        return number, envelope(400, 4003, "Tracking already exists.")
    if world.fault(number) is Fault.NOT_FOUND:
        return number, envelope(
            400,
            4012,
            "Unable to import shipment as we don't recognize the carrier from this tracking "
            "number.",
        )
    now = world.clock.now()
    registration = Registration(number, slug.strip() if slug else detect_slug(number), now)
    registrations.add(registration)
    return number, envelope(201, 201, "Created", _render(world, registration, now))


async def _list(request: web.Request) -> web.Response:
    world = request.app[WORLD_KEY]
    raw = request.query.get("tracking_numbers", "")
    numbers = list(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    try:
        response = await _list_answer(request, world, numbers)
    except asyncio.CancelledError:  # the client hung up (e.g. timed out on a slow number)
        world.log(request, numbers, CLIENT_CLOSED)
        raise
    world.log(request, numbers, response.status)
    log.debug("AfterShip sandbox: list of %d -> %d", len(numbers), response.status)
    return response


async def _list_answer(
    request: web.Request, world: CarrierWorld, numbers: list[str]
) -> web.Response:
    refused = _refused(request, world)
    if refused is not None:
        return refused
    if len(numbers) > MAX_NUMBERS_PER_LIST:
        return envelope(
            400,
            4008,
            f"The value of tracking_numbers is invalid: at most {MAX_NUMBERS_PER_LIST} "
            f"tracking numbers per request, got {len(numbers)}.",
        )
    limit_text = request.query.get("limit", "100")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 200:
        return envelope(400, 4008, "The value of limit is invalid.")

    faults = {world.fault(number) for number in numbers}
    if Fault.SLOW in faults:
        await fault_pause(world, Fault.SLOW)
    if Fault.RATE_LIMIT in faults:
        return _too_many(world)
    if Fault.SERVER_ERROR in faults:
        return web.Response(status=500, text=HTML_ERROR_PAGE, content_type="text/html")

    registrations = request.app[REGISTRATIONS]
    chosen = (
        [r for r in map(registrations.get, numbers) if r is not None]
        if numbers
        else list(registrations.by_number.values())
    )[: int(limit_text)]
    now = world.clock.now()
    data = {
        "pagination": {"total": len(chosen), "next_cursor": None, "has_next_page": False},
        "trackings": [_render(world, r, now) for r in chosen],
    }
    if Fault.MALFORMED in faults:
        whole = json.dumps({"meta": {"code": 200, "message": "", "type": "OK"}, "data": data})
        return web.Response(text=truncated_json(whole), content_type="application/json")
    return envelope(200, 200, "", data)


async def _delete(request: web.Request) -> web.Response:
    world = request.app[WORLD_KEY]
    refused = _refused(request, world)
    if refused is not None:
        world.log(request, (), refused.status)
        return refused
    registrations = request.app[REGISTRATIONS]
    wanted = request.match_info["tracking_id"]
    found = next(
        (r for r in registrations.by_number.values() if tracking_id(r.tracking_number) == wanted),
        None,
    )
    if found is None:
        response = envelope(404, 4004, "Tracking does not exist.")
    else:
        del registrations.by_number[found.tracking_number.strip().upper()]
        response = envelope(200, 200, "", _render(world, found, world.clock.now()))
    world.log(request, (found.tracking_number,) if found else (), response.status)
    return response


def _render(world: CarrierWorld, registration: Registration, now: datetime) -> dict[str, Any]:
    return render_tracking(
        registration.tracking_number,
        registration.slug,
        registration.created_at,
        world.lookup(registration.tracking_number),
        now,
    )


def build_app(world: CarrierWorld, *, api_key: str) -> web.Application:
    """The AfterShip sandbox for ``world``, accepting ``api_key`` in the ``as-api-key`` header."""
    app = web.Application()
    app[WORLD_KEY] = world
    app[API_KEY] = api_key
    app[REGISTRATIONS] = Registrations()
    app.router.add_post(f"{API_PATH}/trackings", _create)
    app.router.add_get(f"{API_PATH}/trackings", _list)
    app.router.add_delete(f"{API_PATH}/trackings/{{tracking_id}}", _delete)
    add_control_routes(app)
    return app


SANDBOX_SETTINGS: dict[str, str] = {"api_key": "aftership-sandbox-key"}
"""The ``carriers.aftership`` credentials :func:`sandbox_app` accepts."""


def sandbox_app(world: CarrierWorld) -> web.Application:
    """The sandbox with its standard credentials (see :mod:`carriers.sandbox_base`)."""
    return build_app(world, api_key=SANDBOX_SETTINGS["api_key"])


def sample_number(index: int) -> str:
    """A long-tail courier's UPU S10 number (``LT``, 8 digits, check digit, ``CN``)."""
    return s10_number(10_000_000 + index * 7919 % 90_000_000)


def is_tracking_request(record: RequestRecord) -> bool:
    """Reads (``GET /trackings``), as opposed to registrations, for the contract suite."""
    return record.method == "GET"
