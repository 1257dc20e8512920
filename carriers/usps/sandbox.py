"""A local USPS Tracking API v3 with its OAuth token endpoint, for the demo and the tests.

* ``POST /oauth2/v3/token``: client credentials as a JSON body, answered
  as USPS does (``expires_in`` as a string, ``token_type: Bearer``, ``status: approved``) or with
  an OAuth error (``400 unsupported_grant_type``/``invalid_request``, ``401 invalid_client``).
  Tokens live 8 hours; ``POST /_sandbox/tokens/expire`` ends them all.
* ``GET /tracking/v3/tracking/{trackingNumber}?expand=DETAIL|SUMMARY``: the scans of a
  registered :class:`Timeline`, newest first, in USPS's event codes and words (see
  :mod:`.sandbox_render`), or USPS's error body ``{apiVersion, error {code, message,
  errors[]}}``: 401 without a valid bearer token, 403 for a token granted without the
  ``tracking`` scope, 400 for a malformed number or parameter, 404 for a number USPS does not
  know (as for a label with no scan yet), 429 over ``world.rate_limit_per_second``.

The fault numbers of :mod:`carriers.sandbox_base` work here too; the slow fault stops when the
client hangs up (the app must be served with ``handler_cancellation=True``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

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
from carriers.usps.sandbox_render import TimeStyle, render_details, render_summary, time_style

__all__ = [
    "SANDBOX_SETTINGS",
    "TimeStyle",
    "build_app",
    "sample_number",
    "sandbox_app",
    "time_style",
]

log = logging.getLogger(__name__)

API_VERSION = "v3"
CLIENT_CLOSED = 499
"""Logged status of a request whose client went away before the answer (nginx's code)."""
TOKEN_LIFETIME_SECONDS = 8 * 3600.0
DEFAULT_SCOPES = "addresses tracking prices labels locations"
NOT_FOUND_MESSAGE = (
    "The tracking number may be incorrect or the status update is not yet available. "
    "Please verify your tracking number and try again later."
)
_NUMBER = re.compile(r"^[A-Za-z0-9]{1,40}$")
_ZIP5 = re.compile(r"^\d{5}$")


@dataclass
class Account:
    """The one USPS app the sandbox knows, and the tokens it granted without ``tracking``."""

    client_id: str
    client_secret: str
    untracked_tokens: set[str] = field(default_factory=set)


ACCOUNT_KEY = web.AppKey("usps_account", Account)


def _error(
    status: int,
    message: str,
    *,
    title: str,
    detail: str,
    parameter: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """USPS's error answer: ``{apiVersion, error: {code, message, errors[]}}``."""
    item: dict[str, Any] = {"status": str(status), "code": f"{status:03d}", "title": title,
                            "detail": detail}  # fmt: skip
    if parameter is not None:
        item["source"] = {"parameter": parameter}
    body = {"apiVersion": API_VERSION, "error": {"code": str(status), "message": message,
                                                 "errors": [item]}}  # fmt: skip
    return json_response(body, status=status, headers=headers)


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return json_response({"error": error, "error_description": description}, status=status)


async def _token(request: web.Request) -> web.Response:
    response = await _token_answer(request)
    request.app[WORLD_KEY].log(request, (), response.status)
    return response


async def _token_answer(request: web.Request) -> web.Response:
    payload = await _token_payload(request)
    if payload is None:
        return _oauth_error(400, "invalid_request", "The request body could not be read.")
    grant_type = payload.get("grant_type")
    if not grant_type:
        return _oauth_error(400, "invalid_request", "grant_type is required.")
    if grant_type != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", f"{grant_type} is not supported.")
    account = request.app[ACCOUNT_KEY]
    client_id, secret = str(payload.get("client_id", "")), str(payload.get("client_secret", ""))
    if not (
        hmac.compare_digest(client_id.encode(), account.client_id.encode())
        and hmac.compare_digest(secret.encode(), account.client_secret.encode())
    ):
        return _oauth_error(401, "invalid_client", "Client authentication failed.")
    scope = " ".join(str(payload.get("scope") or DEFAULT_SCOPES).split())
    issuer = request.app[TOKENS_KEY]
    token = issuer.issue()
    if "tracking" not in scope.split():
        account.untracked_tokens.add(token)
    return json_response(
        {
            "access_token": token,
            "token_type": "Bearer",
            "issued_at": str(int(time.time() * 1000)),
            "expires_in": str(int(issuer.lifetime_seconds)),
            "status": "approved",
            "scope": scope,
            "issuer": "api.usps.com",
            "client_id": account.client_id,
            "application_name": "usps-sandbox",
        }
    )


async def _token_payload(request: web.Request) -> dict[str, Any] | None:
    try:
        payload = await request.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


async def _tracking(request: web.Request) -> web.Response:
    world = request.app[WORLD_KEY]
    number = request.match_info["trackingNumber"].strip()
    try:
        response = await _answer(request, world, number)
    except asyncio.CancelledError:  # the client hung up (e.g. timed out on a slow number)
        world.log(request, (number,), CLIENT_CLOSED)
        raise
    world.log(request, (number,), response.status)
    log.debug("USPS sandbox: %s -> %d", number, response.status)
    return response


async def _answer(request: web.Request, world: CarrierWorld, number: str) -> web.Response:
    token = bearer(request)
    if not request.app[TOKENS_KEY].valid(token):
        return _error(
            401, "Unauthorized", title="Unauthorized",
            detail="The access token is missing, invalid or expired.",
            headers={"WWW-Authenticate": 'Bearer realm="https://api.usps.com"'},
        )  # fmt: skip
    if token in request.app[ACCOUNT_KEY].untracked_tokens:
        return _error(403, "Forbidden", title="Forbidden",
                      detail="The access token does not grant the 'tracking' scope.")  # fmt: skip
    if world.over_rate_limit():
        return _too_many(world)
    invalid = _invalid_request(request, number)
    if invalid is not None:
        return invalid

    fault = world.fault(number)
    await fault_pause(world, fault)
    if fault is Fault.RATE_LIMIT:
        return _too_many(world)
    if fault is Fault.SERVER_ERROR:
        return web.Response(status=500, text=HTML_ERROR_PAGE, content_type="text/html")

    timeline = world.lookup(number)
    body = render_details(timeline, world.clock.now()) if timeline is not None else None
    if fault is Fault.MALFORMED:
        whole = json.dumps(body or {"trackingNumber": number, "trackingEvents": []})
        return web.Response(text=truncated_json(whole), content_type="application/json")
    if body is None or fault is Fault.NOT_FOUND:
        return _error(404, NOT_FOUND_MESSAGE, title="Not Found",
                      detail=f"No tracking record for {number}.")  # fmt: skip
    if request.query.get("expand", "SUMMARY").upper() == "SUMMARY":
        return json_response(render_summary(body))
    return json_response(body)


def _invalid_request(request: web.Request, number: str) -> web.Response | None:
    """USPS's 400 for a malformed tracking number or query parameter, or None."""
    problem: tuple[str, str] | None = None
    if not _NUMBER.match(number):
        problem = ("trackingNumber", "The tracking number must be 1 to 40 letters or digits.")
    elif request.query.get("expand", "SUMMARY").upper() not in ("SUMMARY", "DETAIL"):
        problem = ("expand", "expand must be SUMMARY or DETAIL.")
    elif "destinationZIPCode" in request.query and not _ZIP5.match(
        request.query["destinationZIPCode"]
    ):
        problem = ("destinationZIPCode", "destinationZIPCode must be 5 digits.")
    elif "mailingDate" in request.query and not _is_date(request.query["mailingDate"]):
        problem = ("mailingDate", "mailingDate must be a date (YYYY-MM-DD).")
    if problem is None:
        return None
    parameter, detail = problem
    return _error(400, "Bad Request", title="Invalid parameter", detail=detail,
                  parameter=parameter)  # fmt: skip


def _is_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _too_many(world: CarrierWorld) -> web.Response:
    return _error(
        429, "Too Many Requests", title="Quota exceeded",
        detail=f"More than {world.rate_limit_per_second:g} requests per second.",
        headers={"Retry-After": "1"},
    )  # fmt: skip


def build_app(
    world: CarrierWorld,
    *,
    client_id: str,
    client_secret: str,
    token_lifetime_seconds: float = TOKEN_LIFETIME_SECONDS,
) -> web.Application:
    """The USPS sandbox for ``world``, accepting one app's client credentials."""
    app = web.Application()
    app[WORLD_KEY] = world
    app[TOKENS_KEY] = TokenIssuer(token_lifetime_seconds)
    app[ACCOUNT_KEY] = Account(client_id, client_secret)
    app.router.add_post("/oauth2/v3/token", _token)
    app.router.add_get("/tracking/v3/tracking/{trackingNumber}", _tracking)
    add_control_routes(app)
    return app


SANDBOX_SETTINGS: dict[str, str] = {
    "client_id": "usps-sandbox-client",
    "client_secret": "usps-sandbox-secret",
}
"""The ``carriers.usps`` credentials :func:`sandbox_app` accepts."""


def sandbox_app(world: CarrierWorld) -> web.Application:
    """The sandbox with its standard credentials (see :mod:`carriers.sandbox_base`)."""
    return build_app(
        world,
        client_id=SANDBOX_SETTINGS["client_id"],
        client_secret=SANDBOX_SETTINGS["client_secret"],
    )


def sample_number(index: int) -> str:
    """A 22-digit USPS IMpb number (``9400 1...`` or ``9405 5...``) with its mod-10 check digit.

    Channel ``94``, a service type code, a 9-digit Mailer ID and a 7-digit serial that differs
    for every index below ten million. ``9205...`` numbers are valid USPS numbers too, but they
    also fit FedEx SmartPost's format, which would make carrier detection ambiguous.
    """
    service_type = ("001", "055")[index % 2]
    serial = (index * 7919 + 13) % 10_000_000
    body = f"94{service_type}901234567{serial:07d}"
    return body + str(mod10_check_digit(body))


def mod10_check_digit(digits: str) -> int:
    """USPS's mod 10: weights 3 and 1 alternating from the rightmost digit, 10 minus the sum."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10
