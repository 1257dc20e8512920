"""A local FedEx Track API (and its OAuth token endpoint), for the demo and the tests.

``POST /oauth/token`` takes the client credentials as form fields and hands out bearer tokens
(lasting an hour, ``expires_in: 3599``) from a :class:`TokenIssuer`, so the shared
``/_sandbox/tokens/expire`` route works. ``POST /track/v1/trackingnumbers`` answers as FedEx does:
one ``completeTrackResults`` entry per number asked (at most 30), the parcel in FedEx's codes and
words (:mod:`.sandbox_render`) or ``TRACKING.TRACKINGNUMBER.NOTFOUND`` inside a 200 answer; FedEx's
error body ``{transactionId, errors[] {code, message}}`` with 401 ``NOT.AUTHORIZED.ERROR`` for a
missing or expired token, 400 for a request the spec does not allow, 429 over the rate limit.

The fault numbers of :mod:`carriers.sandbox_base` work here too and, FedEx answering a whole
batch at once, affect the whole request they are in: a slow number delays it, a 429 or 500 number
fails it, a malformed number truncates its body.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from carriers.fedex.sandbox_render import not_found_result, render_track_result
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

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Credentials:
    """The client credentials the token endpoint accepts."""

    client_id: str
    client_secret: str


CREDENTIALS = web.AppKey("fedex_credentials", Credentials)

OAUTH_PATH = "/oauth/token"
TRACK_PATH = "/track/v1/trackingnumbers"
MAX_NUMBERS = 30
TOKEN_LIFETIME_SECONDS = 3600.0
EXPIRES_IN = 3599
CLIENT_CLOSED = 499
"""Logged status of a request whose client went away before the answer (nginx's code)."""

_LOCALE = re.compile(r"^[a-z]{2}_[A-Z]{2}$")

MESSAGE_EXPIRED = "Access token expired. Please modify your request and try again."
MESSAGE_BAD_CREDENTIALS = (
    "The given client credentials were not valid. Please modify your request and try again."
)
MESSAGE_MISSING_PARAMETERS = (
    "Missing or duplicate parameters. Please modify your request and try again."
)
EMPTY_NUMBER = "Please provide tracking number."
TOO_MANY = (
    "We have received too many requests in a short duration. Please wait a while to try again."
)


def _errors(
    status: int,
    code: str,
    message: str,
    request: web.Request,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """FedEx's error answer: ``{transactionId, customerTransactionId, errors[{code, message}]}``."""
    body = _envelope(request)
    body["errors"] = [{"code": code, "message": message}]
    return json_response(body, status=status, headers=headers)


def _envelope(request: web.Request) -> dict[str, Any]:
    body: dict[str, Any] = {"transactionId": str(uuid.uuid4())}
    customer_id = request.headers.get("x-customer-transaction-id", "").strip()
    if customer_id:
        body["customerTransactionId"] = customer_id
    return body


async def _token(request: web.Request) -> web.Response:
    world = request.app[WORLD_KEY]
    issuer = request.app[TOKENS_KEY]
    accepted = request.app[CREDENTIALS]
    form = (
        await request.post() if request.content_type == "application/x-www-form-urlencoded" else {}
    )
    fields = {key: form.get(key) for key in ("grant_type", "client_id", "client_secret")}
    if not all(isinstance(value, str) and value for value in fields.values()) or (
        fields["grant_type"] != "client_credentials"
    ):
        response = _errors(400, "BAD.REQUEST.ERROR", MESSAGE_MISSING_PARAMETERS, request)
    elif not (
        _same(str(fields["client_id"]), accepted.client_id)
        and _same(str(fields["client_secret"]), accepted.client_secret)
    ):
        response = _errors(401, "NOT.AUTHORIZED.ERROR", MESSAGE_BAD_CREDENTIALS, request)
    else:
        response = json_response(
            {"access_token": issuer.issue(), "token_type": "bearer", "expires_in": EXPIRES_IN,
             "scope": "CXS"}
        )  # fmt: skip
    world.log(request, (), response.status)
    return response


async def _track(request: web.Request) -> web.Response:
    world = request.app[WORLD_KEY]
    payload = await _json_or_none(request)
    numbers = _numbers(payload)
    try:
        response = await _answer(request, world, payload, numbers)
    except asyncio.CancelledError:  # the client hung up (e.g. timed out on a slow number)
        world.log(request, numbers, CLIENT_CLOSED)
        raise
    world.log(request, numbers, response.status)
    log.debug("FedEx sandbox: %d numbers -> %d", len(numbers), response.status)
    return response


async def _answer(
    request: web.Request, world: CarrierWorld, payload: Any, numbers: Sequence[str]
) -> web.Response:
    if not request.app[TOKENS_KEY].valid(bearer(request)):
        return _errors(401, "NOT.AUTHORIZED.ERROR", MESSAGE_EXPIRED, request)
    if world.over_rate_limit():
        return _too_many(request)
    problem = _request_problem(request, payload, numbers)
    if problem is not None:
        code, message = problem
        return _errors(400, code, message, request)

    faults = {world.fault(number) for number in numbers}
    await fault_pause(world, Fault.SLOW if Fault.SLOW in faults else None)
    if Fault.RATE_LIMIT in faults:
        return _too_many(request)
    if Fault.SERVER_ERROR in faults:
        return web.Response(status=500, text=HTML_ERROR_PAGE, content_type="text/html")

    now = world.clock.now()
    entries = []
    for number in numbers:
        timeline = world.lookup(number)
        entry = render_track_result(timeline, now) if timeline is not None else None
        entries.append(entry or not_found_result(number))
    body = _envelope(request)
    body["output"] = {"completeTrackResults": entries}
    if Fault.MALFORMED in faults:
        return web.Response(text=truncated_json(json.dumps(body)), content_type="application/json")
    return json_response(body)


def _request_problem(
    request: web.Request, payload: Any, numbers: Sequence[str]
) -> tuple[str, str] | None:
    """``(code, message)`` of a 400 for a request the spec does not allow, else None."""
    if request.content_type != "application/json" or not isinstance(payload, dict):
        return "INVALID.INPUT.EXCEPTION", "Invalid field value in the input: the body is not JSON."
    locale = request.headers.get("x-locale")
    if locale is not None and not _LOCALE.match(locale):
        return "INVALID.INPUT.EXCEPTION", f"Invalid field value in the input: x-locale {locale!r}."
    if not isinstance(payload.get("includeDetailedScans"), bool):
        return "INVALID.INPUT.EXCEPTION", "includeDetailedScans is required (true or false)."
    items = payload.get("trackingInfo")
    if not isinstance(items, list) or not items or len(numbers) != len(items):
        return "TRACKING.TRACKINGNUMBER.EMPTY", EMPTY_NUMBER
    if len(items) > MAX_NUMBERS:
        return "INVALID.INPUT.EXCEPTION", f"At most {MAX_NUMBERS} tracking numbers per request."
    return None


def _numbers(payload: Any) -> list[str]:
    """The non-blank tracking numbers of a request body, in order."""
    items = payload.get("trackingInfo") if isinstance(payload, dict) else None
    numbers: list[str] = []
    for item in items if isinstance(items, list) else []:
        info = item.get("trackingNumberInfo") if isinstance(item, dict) else None
        number = info.get("trackingNumber") if isinstance(info, dict) else None
        if isinstance(number, str) and number.strip():
            numbers.append(number.strip())
    return numbers


async def _json_or_none(request: web.Request) -> Any:
    try:
        return json.loads(await request.text())
    except ValueError:
        return None


def _too_many(request: web.Request) -> web.Response:
    return _errors(429, "TOO.MANY.REQUESTS.ERROR", TOO_MANY, request, {"Retry-After": "1"})


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def build_app(world: CarrierWorld, *, client_id: str, client_secret: str) -> web.Application:
    """The FedEx sandbox for ``world``, accepting these client credentials."""
    app = web.Application()
    app[WORLD_KEY] = world
    app[TOKENS_KEY] = TokenIssuer(TOKEN_LIFETIME_SECONDS)
    app[CREDENTIALS] = Credentials(client_id, client_secret)
    app.router.add_post(OAUTH_PATH, _token)
    app.router.add_post(TRACK_PATH, _track)
    add_control_routes(app)
    return app


SANDBOX_SETTINGS: dict[str, str] = {
    "client_id": "fedex-sandbox-client",
    "client_secret": "fedex-sandbox-secret",
}
"""The ``carriers.fedex`` credentials :func:`sandbox_app` accepts."""


def sandbox_app(world: CarrierWorld) -> web.Application:
    """The sandbox with its standard credentials (see :mod:`carriers.sandbox_base`)."""
    return build_app(
        world,
        client_id=SANDBOX_SETTINGS["client_id"],
        client_secret=SANDBOX_SETTINGS["client_secret"],
    )


def check_digit(first_eleven: str) -> int:
    """FedEx Express (12 digits) check digit: weights 1, 3, 7 from the right, mod 11, mod 10."""
    weights = (1, 3, 7)
    total = sum(int(d) * weights[i % 3] for i, d in enumerate(reversed(first_eleven)))
    return total % 11 % 10


def sample_number(index: int) -> str:
    """A FedEx Express number: eleven digits and the check digit, different for every index."""
    base = f"{10_000_000_000 + index * 7919 % 90_000_000_000:011d}"
    return f"{base}{check_digit(base)}"
