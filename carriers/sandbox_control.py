"""``/_sandbox/*``: the routes every carrier sandbox adds for tests and the demo to drive it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from carriers.sandbox_base import WORLD_KEY, Timeline
from carriers.sandbox_faults import add_fault_injection
from carriers.sandbox_tokens import TOKENS_KEY


def add_control_routes(app: web.Application) -> None:
    """``/_sandbox/*``: register timelines, read the request log, move the clock, break and heal
    the sandbox (:mod:`carriers.sandbox_faults`, installed here too)."""
    add_fault_injection(app)

    async def register(request: web.Request) -> web.Response:
        world = request.app[WORLD_KEY]
        payload: Any = await request.json()
        items = payload if isinstance(payload, list) else [payload]
        timelines = [Timeline.model_validate(item) for item in items]
        world.register(timelines)
        return web.json_response({"registered": len(timelines)})

    async def requests_log(request: web.Request) -> web.Response:
        world = request.app[WORLD_KEY]
        return web.json_response(
            [
                {
                    "at": r.at,
                    "method": r.method,
                    "path": r.path,
                    "numbers": list(r.numbers),
                    "status": r.status,
                    "fault": r.fault,
                }
                for r in world.requests
            ]
        )

    async def advance(request: web.Request) -> web.Response:
        world = request.app[WORLD_KEY]
        try:
            hours = float(request.query.get("hours", "0"))
        except ValueError:
            raise web.HTTPBadRequest(text="hours must be a number") from None
        world.clock.advance(timedelta(hours=hours))
        return web.json_response({"now": world.clock.now().isoformat()})

    async def expire_tokens(request: web.Request) -> web.Response:
        issuer = request.app.get(TOKENS_KEY)
        if issuer is not None:
            issuer.expire_all()
        return web.json_response({"expired": issuer is not None})

    app.router.add_post("/_sandbox/tokens/expire", expire_tokens)
    app.router.add_post("/_sandbox/timelines", register)
    app.router.add_get("/_sandbox/requests", requests_log)
    app.router.add_post("/_sandbox/clock/advance", advance)
