"""A local PostNord Track & Trace v7 API, for the demo and the tests.

``GET /rest/shipment/v7/trackandtrace/id/{id}/public?apikey=K&locale=en`` answers as PostNord's
``findByIdentifierPublicRecipientView`` does: ``{"TrackingInformationResponse": {"shipments":
[...]}}`` with one shipment of one item whose events run oldest first, in PostNord's item
statuses and English words. Errors use PostNord's ``ErrorResponse`` (``{"message",
"compositeFault"}``): 401 without ``apikey``, 403 with a wrong one, 429 over the rate limit (with
``Retry-After``), 400 for a bad JSON-P ``callback``. A number PostNord does not know is a 200
with no shipments (for some numbers with a ``compositeFault`` beside it, as the live API
sometimes does); an identifier that is not 10-35 letters and digits, or an unsupported
``locale``, is a 200 with an ``invalidIdentifier`` / ``invalidLocale`` fault. The fault numbers
of :mod:`carriers.sandbox_base` work here too, at any length.

Scans are rendered by :mod:`carriers.postnord.sandbox_render`, in the time styles PostNord
uses, chosen per number.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from typing import Any

from aiohttp import web

from carriers.postnord.sandbox_render import (
    TimeStyle,
    not_found_body,
    render_response,
    s10_check_digit,
    time_style,
)
from carriers.sandbox_base import (
    FAULT_PREFIXES,
    HTML_ERROR_PAGE,
    WORLD_KEY,
    CarrierWorld,
    Fault,
    fault_pause,
    json_response,
    truncated_json,
)
from carriers.sandbox_control import add_control_routes

__all__ = [
    "SANDBOX_SETTINGS",
    "TimeStyle",
    "build_app",
    "sample_number",
    "sandbox_app",
    "time_style",
]

log = logging.getLogger(__name__)

API_KEY = web.AppKey("postnord_api_key", str)
PATH = "/rest/shipment/v7/trackandtrace/id/{id}/public"
LOCALES = frozenset({"en", "sv", "no", "da", "fi"})
CLIENT_CLOSED = 499
"""Logged status of a request whose client went away before the answer (nginx's code)."""

_IDENTIFIER = re.compile(r"^[A-Za-z0-9]{10,35}$")
_CALLBACK = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$.]{0,63}$")


def _error(status: int, message: str, *faults: dict[str, Any], **headers: str) -> web.Response:
    """PostNord's ``ErrorResponse``."""
    body: dict[str, Any] = {"message": message}
    if faults:
        body["compositeFault"] = {"faults": list(faults)}
    return json_response(body, status=status, headers=headers or None)


def _fault(code: str, text: str, param: str, value: str) -> dict[str, Any]:
    return {
        "faultCode": code,
        "explanationText": text,
        "paramValues": [{"param": param, "value": value}],
    }


def _faulty_request(code: str, text: str, param: str, value: str) -> dict[str, Any]:
    """A 200 body that carries no shipments but a fault about the request."""
    return {
        "TrackingInformationResponse": {
            "shipments": [],
            "compositeFault": {"faults": [_fault(code, text, param, value)]},
        }
    }


async def _track(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD_KEY]
    identifier = request.match_info["id"]
    try:
        response = await _answer(request, world, identifier)
    except asyncio.CancelledError:  # the client hung up (e.g. timed out on a slow number)
        world.log(request, (identifier,), CLIENT_CLOSED)
        raise
    world.log(request, (identifier,), response.status)
    log.debug("PostNord sandbox: %s -> %d", identifier, response.status)
    return response


async def _answer(request: web.Request, world: CarrierWorld, identifier: str) -> web.Response:
    given = request.query.get("apikey")
    if not given:
        return _error(401, "Authentication failed: the apikey query parameter is missing")
    if not hmac.compare_digest(given.encode(), request.app[API_KEY].encode()):
        return _error(403, "Authorization failed: invalid apikey")
    if world.over_rate_limit():
        return _too_many(world)
    callback = request.query.get("callback")
    if callback is not None and not _CALLBACK.match(callback):
        return _error(
            400,
            "Invalid query parameter",
            _fault("invalidParameter", "Invalid callback", "callback", callback),
        )
    locale = request.query.get("locale", "en")
    if locale not in LOCALES:
        return _reply(
            _faulty_request("invalidLocale", "Invalid locale", "locale", locale), callback
        )

    known = world.lookup(identifier) is not None or any(
        identifier.upper().startswith(prefix) for prefix in FAULT_PREFIXES
    )
    if not known and not _IDENTIFIER.match(identifier):
        body = _faulty_request("invalidIdentifier", "Invalid identifier", "id", identifier)
        return _reply(body, callback)

    fault = world.fault(identifier)
    await fault_pause(world, fault)
    if fault is Fault.RATE_LIMIT:
        return _too_many(world)
    if fault is Fault.SERVER_ERROR:
        return web.Response(status=500, text=HTML_ERROR_PAGE, content_type="text/html")

    timeline = world.lookup(identifier)
    found = render_response(timeline, world.clock.now()) if timeline is not None else None
    if fault is Fault.MALFORMED:
        whole = json.dumps(found or not_found_body(identifier))
        return web.Response(text=truncated_json(whole), content_type="application/json")
    return _reply(found or not_found_body(identifier), callback)


def _reply(body: dict[str, Any], callback: str | None) -> web.Response:
    if callback is None:
        return json_response(body)
    return web.Response(
        text=f"{callback}({json.dumps(body)});", content_type="application/javascript"
    )


def _too_many(world: CarrierWorld) -> web.Response:
    return _error(
        429,
        f"Too many requests: limit of {world.rate_limit_per_second:g} requests per second",
        **{"Retry-After": "1"},
    )


def build_app(world: CarrierWorld, *, api_key: str) -> web.Application:
    """The PostNord sandbox for ``world``, accepting ``api_key`` as the ``apikey`` parameter."""
    app = web.Application()
    app[WORLD_KEY] = world
    app[API_KEY] = api_key
    app.router.add_get(PATH, _track)
    add_control_routes(app)
    return app


SANDBOX_SETTINGS: dict[str, str] = {"api_key": "postnord-sandbox-key"}
"""The ``carriers.postnord`` credentials :func:`sandbox_app` accepts."""


def sandbox_app(world: CarrierWorld) -> web.Application:
    """The sandbox with its standard credentials (see :mod:`carriers.sandbox_base`)."""
    return build_app(world, api_key=SANDBOX_SETTINGS["api_key"])


def sample_number(index: int) -> str:
    """A UPU S10 number as PostNord prints it: two letters, eight digits, check digit, country.

    Different for every index below 10**8 (7919 is prime to 10**8, so the serials never repeat).
    """
    serial = f"{index * 7919 % 100_000_000:08d}"
    letters = ("RR", "CP", "UA", "LX")[index % 4]
    country = ("SE", "DK")[index // 4 % 2]
    return f"{letters}{serial}{s10_check_digit(serial)}{country}"
