"""A local UPS Track API v1 with its OAuth token endpoint, for the demo and the tests.

Routes, as on ``onlinetools.ups.com``:

* ``POST /security/v1/oauth/token``: HTTP Basic client id and secret, form
  ``grant_type=client_credentials``; answers ``expires_in`` as a string, like UPS. Tokens come
  from a :class:`~carriers.sandbox_tokens.TokenIssuer` under ``TOKENS_KEY``, so the shared
  ``POST /_sandbox/tokens/expire`` route makes every issued token stale.
* ``GET /api/track/v1/details/{inquiryNumber}``: needs a valid bearer token (else 401), the
  ``transId`` (at most 32 characters) and ``transactionSrc`` headers (else 400), a well-formed
  ``locale`` and ``true``/``false`` flags when given (else 400), and an inquiry number of 7 to 34
  letters and digits (else 400, code ``151018``). It answers the package with its activities
  newest first (rendered by :mod:`.sandbox_render`), or "not found" in one of UPS's two shapes,
  chosen per number: HTTP 200 with ``shipment[].warnings[]`` and no package, or 404 with
  ``response.errors[]`` code ``151044``. Over the world's rate limit it answers 429 with code
  ``10429`` and ``Retry-After``.

Every error body is UPS's ``{"response": {"errors": [{code, message}]}}``. The fault numbers of
:mod:`carriers.sandbox_base` work here too (checked before the number's format, so short magic
numbers work). Every request, the token endpoint's included (with no numbers), is logged in the
world's request log.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import re
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from aiohttp import web

from carriers.sandbox_base import (
    HTML_ERROR_PAGE,
    WORLD_KEY,
    CarrierWorld,
    Fault,
    fault_pause,
    json_response,
    truncated_json,
)
from carriers.sandbox_control import add_control_routes
from carriers.sandbox_tokens import TOKENS_KEY, TokenIssuer, bearer
from carriers.ups.sandbox_render import render_track_response

log = logging.getLogger(__name__)

CLIENT_CLOSED = 499
"""Logged status of a request whose client went away before the answer (nginx's code)."""

TOKEN_LIFETIME_SECONDS = 14399.0
"""What UPS hands out: four hours, less a second."""

NUMBER_FORMAT = re.compile(r"^[A-Z0-9]{7,34}$")
LOCALE_FORMAT = re.compile(r"^[a-z]{2}_[A-Z]{2}$")
FLAGS = ("returnSignature", "returnMilestones", "returnPOD")
MAX_TRANS_ID = 32

# UPS error codes the sandbox answers with: (HTTP status, code, message). 10429, 151044 and
# 250002 are codes developers report from the live API; the spec lists no codes, so the others
# (10400, 10401, 151018, TW0001) are this sandbox's choice, in UPS's shape.
UNAUTHORIZED = (401, "250002", "Invalid Authentication Information.")
BAD_CLIENT = (401, "10401", "ClientId is Invalid")
BAD_GRANT = (400, "10400", "Invalid/Missing grant_type")
BAD_REQUEST = (400, "10400", "Invalid request")
INVALID_NUMBER = (400, "151018", "Invalid tracking number")
NOT_FOUND = (404, "151044", "Tracking Information Not Found")
NOT_FOUND_WARNING = ("TW0001", "Tracking Information Not Found")
TOO_MANY = (429, "10429", "Too Many Requests")


@dataclass(frozen=True, slots=True)
class Credentials:
    """The client id and secret the token endpoint accepts."""

    client_id: str
    client_secret: str


CREDENTIALS_KEY = web.AppKey("ups_credentials", Credentials)


class NotFoundStyle(Enum):
    """Which of UPS's two "not found" answers a number gets."""

    WARNING = "warning"  # HTTP 200, shipment[].warnings[], no package
    ERROR = "error"  # HTTP 404, response.errors[]


def not_found_style(number: str) -> NotFoundStyle:
    """The same answer for a number every time, spread evenly over numbers."""
    styles = list(NotFoundStyle)
    return styles[zlib.adler32(number.strip().upper().encode()) % len(styles)]


def _error(
    spec: tuple[int, str, str], detail: str = "", headers: Mapping[str, str] | None = None
) -> web.Response:
    status, code, message = spec
    text = f"{message}: {detail}" if detail else message
    return json_response(
        {"response": {"errors": [{"code": code, "message": text}]}},
        status=status,
        headers=headers,
    )


def _too_many() -> web.Response:
    return _error(TOO_MANY, headers={"Retry-After": "1"})


async def _token(request: web.Request) -> web.Response:
    world = request.app[WORLD_KEY]
    try:
        response = await _issue_token(request)
    except asyncio.CancelledError:
        world.log(request, (), CLIENT_CLOSED)
        raise
    world.log(request, (), response.status)
    log.debug("UPS sandbox: token request -> %d", response.status)
    return response


def _basic_credentials(header: str) -> tuple[bytes, bytes]:
    """``(id, secret)`` of an ``Authorization: Basic ...`` header; empty when there is none."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return b"", b""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b"", b""
    client_id, _, secret = decoded.partition(b":")
    return client_id, secret


async def _issue_token(request: web.Request) -> web.Response:
    credentials = request.app[CREDENTIALS_KEY]
    given_id, given_secret = _basic_credentials(request.headers.get("Authorization", ""))
    id_ok = hmac.compare_digest(given_id, credentials.client_id.encode())
    secret_ok = hmac.compare_digest(given_secret, credentials.client_secret.encode())
    if not (id_ok and secret_ok):
        return _error(BAD_CLIENT)
    if request.content_type != "application/x-www-form-urlencoded":
        return _error(BAD_GRANT, "expected an application/x-www-form-urlencoded body")
    form = await request.post()
    if form.get("grant_type") != "client_credentials":
        return _error(BAD_GRANT)
    issuer = request.app[TOKENS_KEY]
    token = issuer.issue()
    return json_response(
        {
            "token_type": "Bearer",
            "issued_at": str(int(time.time() * 1000)),
            "client_id": credentials.client_id,
            "access_token": token,
            "scope": "",
            "expires_in": str(int(issuer.lifetime_seconds)),
            "refresh_count": "0",
            "status": "approved",
        }
    )


async def _details(request: web.Request) -> web.Response:
    world = request.app[WORLD_KEY]
    number = request.match_info["inquiryNumber"].strip()
    numbers = (number,) if number else ()
    try:
        response = await _answer(request, world, number)
    except asyncio.CancelledError:  # the client hung up (e.g. timed out on a slow number)
        world.log(request, numbers, CLIENT_CLOSED)
        raise
    world.log(request, numbers, response.status)
    log.debug("UPS sandbox: %s -> %d", number or "(no number)", response.status)
    return response


def _request_problem(request: web.Request) -> str | None:
    """What is wrong with the request's headers and query parameters, if anything."""
    trans_id = request.headers.get("transId", "").strip()
    if not trans_id or len(trans_id) > MAX_TRANS_ID:
        return f"the transId header is required (1 to {MAX_TRANS_ID} characters)"
    if not request.headers.get("transactionSrc", "").strip():
        return "the transactionSrc header is required"
    locale = request.query.get("locale")
    if locale is not None and not LOCALE_FORMAT.match(locale):
        return f"locale {locale!r} is not language_COUNTRY"
    for flag in FLAGS:
        value = request.query.get(flag)
        if value is not None and value not in ("true", "false"):
            return f"{flag} must be 'true' or 'false'"
    return None


async def _answer(request: web.Request, world: CarrierWorld, number: str) -> web.Response:
    if not request.app[TOKENS_KEY].valid(bearer(request)):
        return _error(UNAUTHORIZED)
    problem = _request_problem(request)
    if problem is not None:
        return _error(BAD_REQUEST, problem)
    if world.over_rate_limit():
        return _too_many()

    fault = world.fault(number)
    await fault_pause(world, fault)
    if fault is Fault.RATE_LIMIT:
        return _too_many()
    if fault is Fault.SERVER_ERROR:
        return web.Response(status=500, text=HTML_ERROR_PAGE, content_type="text/html")

    timeline = world.lookup(number)
    body = render_track_response(timeline, world.clock.now()) if timeline is not None else None
    if fault is Fault.MALFORMED:
        whole = json.dumps(body or {"trackResponse": {"shipment": [{"inquiryNumber": number}]}})
        return web.Response(text=truncated_json(whole), content_type="application/json")
    if not NUMBER_FORMAT.match(number.upper()):
        return _error(INVALID_NUMBER)
    if body is None:
        if not_found_style(number) is NotFoundStyle.ERROR:
            return _error(NOT_FOUND)
        code, message = NOT_FOUND_WARNING
        shipment = {
            "inquiryNumber": number.upper(),
            "userRelation": [],
            "warnings": [{"code": code, "message": message}],
        }
        return json_response({"trackResponse": {"shipment": [shipment]}})
    return json_response(body)


def build_app(
    world: CarrierWorld,
    *,
    client_id: str,
    client_secret: str,
    token_lifetime: float = TOKEN_LIFETIME_SECONDS,
) -> web.Application:
    """The UPS sandbox for ``world``, accepting ``client_id`` / ``client_secret``."""
    app = web.Application()
    app[WORLD_KEY] = world
    app[CREDENTIALS_KEY] = Credentials(client_id, client_secret)
    app[TOKENS_KEY] = TokenIssuer(token_lifetime)
    app.router.add_post("/security/v1/oauth/token", _token)
    app.router.add_get("/api/track/v1/details/{inquiryNumber}", _details)
    add_control_routes(app)
    return app


SANDBOX_SETTINGS: dict[str, str] = {
    "client_id": "ups-sandbox-client",
    "client_secret": "ups-sandbox-secret",
}
"""The ``carriers.ups`` credentials :func:`sandbox_app` accepts."""


def sandbox_app(world: CarrierWorld) -> web.Application:
    """The sandbox with its standard credentials (see :mod:`carriers.sandbox_base`)."""
    return build_app(
        world,
        client_id=SANDBOX_SETTINGS["client_id"],
        client_secret=SANDBOX_SETTINGS["client_secret"],
    )


def check_digit(body: str) -> str:
    """UPS's mod-10 check digit over the 15 characters after ``1Z``.

    Letters count as ``(position in the alphabet + 2) mod 10`` (A=2, ..., H=9, I=0, J=1, ...);
    the digits in odd places (1st, 3rd, ...) are summed, those in even places summed and doubled,
    and the check digit brings the total up to a multiple of ten.
    """
    values = [int(c) if c.isdigit() else (ord(c) - ord("A") + 2) % 10 for c in body.upper()]
    total = sum(values[0::2]) + 2 * sum(values[1::2])
    return str((10 - total % 10) % 10)


SERVICE_DIGITS = ("03", "01", "02", "12", "13")
"""Service indicator digits: Ground, Next Day Air, 2nd Day Air, 3 Day Select, Next Day Saver."""


def sample_number(index: int) -> str:
    """A 1Z number: shipper ``R5E829``, service digits, seven package digits, check digit."""
    service = SERVICE_DIGITS[index % len(SERVICE_DIGITS)]
    body = f"R5E829{service}{index * 7919 % 10_000_000:07d}"
    return f"1Z{body}{check_digit(body)}"
