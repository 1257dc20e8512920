"""Carrier-wide faults for every sandbox: a middleware that spoils the carrier's own answers.

While ``world.fault_mode`` is set (see :class:`carriers.sandbox_base.FaultMode`), every request
outside ``/_sandbox/`` is first answered by the carrier's handler as usual (so the request is
logged with its numbers, and a registration or a token is really made), then that answer is
spoilt on its way out: replaced by a 5xx or 429, cut short, sent one byte at a time, relabelled,
never sent, or the connection is reset. The token modes act before the handler instead: they
refuse the bearer token in the sandbox's :class:`~carriers.sandbox_tokens.TokenIssuer`, so the
carrier answers its own 401 in its own shape.

The request log records the fault each request met and the status its client saw: ``0`` when
it got no answer at all (reset, not HTTP), 499 when it hung up first (timeout, trickle).

Over HTTP (for a sandbox in another process):

* ``POST /_sandbox/fault`` with ``{"mode": "...", "retry_after": "3600", "trickle_seconds": 1,
  "token_life_seconds": 2}`` (all but ``mode`` optional) breaks the sandbox;
* ``DELETE /_sandbox/fault`` heals it; ``GET /_sandbox/fault`` says which mode is set.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from carriers.sandbox_base import (
    CONTROL_PREFIX,
    RECORD_KEY,
    TOKEN_MODES,
    WORLD_KEY,
    CarrierWorld,
    FaultMode,
    RequestRecord,
)
from carriers.sandbox_tokens import TOKENS_KEY, bearer

__all__ = ["MAINTENANCE_PAGE", "add_fault_injection"]

log = logging.getLogger(__name__)

NO_ANSWER = 0
CLIENT_CLOSED = 499

SERVER_ERRORS = (503, 500, 502, 504)
"""What :attr:`FaultMode.SERVER_ERROR` answers, in turn."""
WRONG_LABELS = ("text/html", "text/plain")
"""How :attr:`FaultMode.WRONG_TYPE_JSON` labels the JSON, in turn (the first request: HTML)."""

MAINTENANCE_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Scheduled maintenance</title></head>\n"
    "<body><h1>We'll be back soon</h1>\n<p>The tracking service is undergoing scheduled "
    "maintenance. Please try again later.</p></body></html>\n"
)
BAD_GATEWAY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
UNAVAILABLE_TEXT = "Service temporarily unavailable. Please try again later.\n"


def add_fault_injection(app: web.Application) -> None:
    """The fault middleware and the ``/_sandbox/fault`` routes, on a sandbox app."""
    app.middlewares.append(_fault_middleware)
    app.router.add_get(CONTROL_PREFIX + "fault", _show_fault)
    app.router.add_post(CONTROL_PREFIX + "fault", _set_fault)
    app.router.add_delete(CONTROL_PREFIX + "fault", _heal)


@web.middleware
async def _fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    world = request.app.get(WORLD_KEY)
    mode = world.fault_mode if world is not None else None
    if world is None or mode is None or request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    if mode in TOKEN_MODES:
        _refuse_token(request, world, mode)
        answer = await handler(request)
        _seen(request, world, mode, answer.status)
        return answer
    answer = await handler(request)
    try:
        return await _spoil(request, world, mode, answer)
    except asyncio.CancelledError:  # the client hung up (timeout, trickle)
        _seen(request, world, mode, CLIENT_CLOSED)
        raise


async def _spoil(
    request: web.Request, world: CarrierWorld, mode: FaultMode, answer: web.StreamResponse
) -> web.StreamResponse:
    """What the client gets instead of ``answer`` under ``mode``."""
    body = _body(answer)
    spoilt: web.StreamResponse
    if mode is FaultMode.SERVER_ERROR:
        status = SERVER_ERRORS[len(world.fault_requests(mode)) % len(SERVER_ERRORS)]
        if status == 503:
            spoilt = web.json_response({"error": "Service Unavailable"}, status=status)
        else:
            spoilt = web.Response(status=status, text=f"HTTP {status}\n")
    elif mode in (FaultMode.RATE_LIMITED, FaultMode.RATE_LIMITED_BARE):
        headers = {"Retry-After": world.retry_after} if mode is FaultMode.RATE_LIMITED else {}
        spoilt = web.json_response({"message": "Too Many Requests"}, status=429, headers=headers)
    elif mode is FaultMode.RESET:
        _reset(request)
        _seen(request, world, mode, NO_ANSWER)
        return web.Response(status=500)  # never sent: the transport is gone
    elif mode is FaultMode.NOT_HTTP:
        if request.transport is not None:
            request.transport.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
            request.transport.close()
        _seen(request, world, mode, NO_ANSWER)
        return web.Response(status=500)  # never sent
    elif mode is FaultMode.TIMEOUT:
        await asyncio.sleep(world.hang_seconds)
        spoilt = web.Response(status=504, text="gave up waiting\n")
    elif mode is FaultMode.TRICKLE:
        return await _trickle(request, world, answer, body)
    elif mode is FaultMode.TRUNCATED:
        return await _truncate(request, world, answer, body)
    elif mode is FaultMode.MALFORMED:
        text = body.decode("utf-8", "replace").replace('"', "'")
        spoilt = web.Response(status=answer.status, text=text, content_type="application/json")
    elif mode is FaultMode.HTML_200:
        spoilt = web.Response(text=MAINTENANCE_PAGE, content_type="text/html")
    elif mode is FaultMode.HTML_502:
        spoilt = web.Response(status=502, text=BAD_GATEWAY_PAGE, content_type="text/html")
    elif mode is FaultMode.WRONG_TYPE_JSON:
        label = WRONG_LABELS[len(world.fault_requests(mode)) % len(WRONG_LABELS)]
        spoilt = web.Response(status=answer.status, body=body, content_type=label)
    else:  # FaultMode.WRONG_TYPE_TEXT
        spoilt = web.Response(text=UNAVAILABLE_TEXT, content_type="text/plain")
    _seen(request, world, mode, spoilt.status)
    return spoilt


async def _trickle(
    request: web.Request, world: CarrierWorld, answer: web.StreamResponse, body: bytes
) -> web.StreamResponse:
    """The answer's status and headers at once, then its body one byte at a time."""
    response = web.StreamResponse(status=answer.status)
    response.content_type = answer.content_type
    response.content_length = len(body)
    _seen(request, world, FaultMode.TRICKLE, answer.status)
    await response.prepare(request)
    try:
        for i in range(len(body)):
            await response.write(body[i : i + 1])
            await asyncio.sleep(world.trickle_seconds)
    except ConnectionResetError:  # the client hung up between two bytes
        _seen(request, world, FaultMode.TRICKLE, CLIENT_CLOSED)
        return response
    await response.write_eof()
    return response


async def _truncate(
    request: web.Request, world: CarrierWorld, answer: web.StreamResponse, body: bytes
) -> web.StreamResponse:
    """Headers promising the whole body, half of it, then the connection closes."""
    response = web.StreamResponse(status=answer.status)
    response.content_type = answer.content_type
    response.content_length = max(len(body), 2)
    _seen(request, world, FaultMode.TRUNCATED, answer.status)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.close()
    return response


def _reset(request: web.Request) -> None:
    """Close the connection with a TCP RST: the client reads "connection reset by peer"."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _refuse_token(request: web.Request, world: CarrierWorld, mode: FaultMode) -> None:
    """Revoke the request's bearer token when ``mode`` says it is no good (before the handler)."""
    issuer = request.app.get(TOKENS_KEY)
    token = bearer(request)
    if issuer is None or token is None:
        return  # a token request, or a carrier without OAuth
    if mode is FaultMode.REVOKED_TOKEN:
        issuer.revoke(token)
        return
    issued = issuer.issued_at(token)
    if issued is None:
        return
    stale = issued < world.fault_since or time.monotonic() - issued > world.token_life_seconds
    if stale:
        issuer.revoke(token)


def _body(answer: web.StreamResponse) -> bytes:
    body = getattr(answer, "body", None)
    return body if isinstance(body, bytes) else b""


def _seen(request: web.Request, world: CarrierWorld, mode: FaultMode, status: int) -> None:
    """Record in the request log that the request met ``mode`` and its client saw ``status``."""
    record = request.get(RECORD_KEY)
    if record is None:  # a route that does not log: log it here, without numbers
        record = RequestRecord(time.time(), request.method, request.path, (), status)
        world.requests.append(record)
        request[RECORD_KEY] = record
    record.fault = mode.value
    record.status = status


async def _show_fault(request: web.Request) -> web.Response:
    world = request.app[WORLD_KEY]
    return web.json_response({"mode": world.fault_mode.value if world.fault_mode else None})


async def _set_fault(request: web.Request) -> web.Response:
    world = request.app[WORLD_KEY]
    try:
        payload: Any = await request.json()
        mode = FaultMode(payload["mode"])
        if "retry_after" in payload:
            world.retry_after = str(payload["retry_after"])
        for name in ("trickle_seconds", "token_life_seconds", "hang_seconds"):
            if name in payload:
                setattr(world, name, float(payload[name]))
    except (ValueError, KeyError, TypeError) as exc:
        modes = ", ".join(m.value for m in FaultMode)
        raise web.HTTPBadRequest(text=f"expected {{'mode': one of {modes}}}: {exc}") from None
    world.set_fault(mode)
    log.info("sandbox %s: fault %s", request.host, mode.value)
    return web.json_response({"mode": mode.value})


async def _heal(request: web.Request) -> web.Response:
    world = request.app[WORLD_KEY]
    world.heal()
    return web.json_response({"mode": None})
