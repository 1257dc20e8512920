"""The merchant's status table: HTML pages, the JSON API and ``/healthz``.

Routes:

- ``GET /`` the status table (:mod:`tracker.web.table`): tabs, filters, sorts and keyset
  pages, all in the query string (:mod:`tracker.web.view`); ``GET /export.csv`` the same view
  as CSV (:mod:`tracker.web.export`).
- ``GET /shipments/{id}`` one shipment with every tracking event and its write-back state.
- ``/api/`` the same as JSON, described at ``/api/openapi.json`` (:mod:`tracker.web.api`).
- ``GET /healthz`` 200 when the database answers ``SELECT 1`` within two seconds, else 503.
- ``POST /shipments/{id}/poll`` "Poll now" (:mod:`tracker.web.actions`); ``GET /analytics``
  (:mod:`tracker.web.analytics_page`); ``/login`` and ``/logout``, and who may see what
  (:mod:`tracker.web.access`).

Bad input (an unknown status, a limit out of range, a cursor this server did not hand out)
is answered with 400 and a message, as HTML for pages and ``{"error": ...}`` for the API.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import asyncpg
import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler
from markupsafe import Markup

from tracker.config import Config
from tracker.web import present
from tracker.web.access import install_access
from tracker.web.actions import POLL_NOW, install_actions
from tracker.web.analytics_page import install_analytics
from tracker.web.queries import fetch_events, fetch_shipment, ping
from tracker.web.webhooks import add_webhook_route

log = logging.getLogger(__name__)

HEALTH_TIMEOUT = 2.0
_ID = re.compile(r"-?[0-9]{1,30}")
_BIGINT_MAX = 2**63 - 1


class WebError(Exception):
    """A request this app answers with ``status`` and ``message`` instead of a page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> WebError:
    return WebError(400, message)


@dataclass(frozen=True, slots=True)
class Pages:
    """Templates, the inline stylesheet and the Content-Security-Policy that allows it."""

    env: jinja2.Environment
    css: Markup
    csp: str

    @classmethod
    def load(cls) -> Pages:
        env = jinja2.Environment(
            loader=jinja2.PackageLoader("tracker.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(
            status_words=present.status_words,
            status_group=present.status_group,
            utc=present.utc_text,
            iso=present.iso,
            ago=present.relative,
        )
        env.globals.update(
            carrier_problem=present.carrier_problem,
            place=present.place,
            writeback_words=present.WRITEBACK_WORDS,
            attention_words=present.ATTENTION_WORDS,
        )
        css = resources.files("tracker.web").joinpath("static/style.css").read_text("utf-8")
        digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
        # The status table's live refresh, inline and allowed by its hash (no other script).
        live = resources.files("tracker.web").joinpath("static/live.js").read_text("utf-8")
        live_digest = base64.b64encode(hashlib.sha256(live.encode()).digest()).decode()
        env.globals["live_script"] = Markup(live)  # noqa: S704 - our own script, not input
        csp = (
            f"default-src 'self'; style-src 'self' 'sha256-{digest}'; img-src 'self' data:; "
            f"script-src 'sha256-{live_digest}'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        )
        return cls(env, Markup(css), csp)  # noqa: S704 - our own stylesheet, not input

    def render(self, name: str, status: int = 200, **context: Any) -> web.Response:
        html = self.env.get_template(name).render(css=self.css, **context)
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


POOL = web.AppKey("pool", asyncpg.Pool)
CONFIG = web.AppKey("config", Config)
PAGES = web.AppKey("pages", Pages)


def parse_shipment_id(request: web.Request) -> int:
    """The ``{id}`` of the path; 400 when it is not a whole number, 404 when none can exist."""
    raw = request.match_info["id"]
    if not _ID.fullmatch(raw):
        raise bad_request("shipment id must be a whole number")
    shipment_id = int(raw)
    if not 0 < shipment_id <= _BIGINT_MAX:
        raise WebError(404, f"no shipment {shipment_id}")
    return shipment_id


async def _shipment_and_events(
    request: web.Request,
) -> tuple[asyncpg.Record, list[asyncpg.Record]]:
    shipment_id = parse_shipment_id(request)
    pool = request.app[POOL]
    shipment = await fetch_shipment(pool, shipment_id)
    if shipment is None:
        raise WebError(404, f"no shipment {shipment_id}")
    return shipment, await fetch_events(pool, shipment_id)


async def shipment_page(request: web.Request) -> web.Response:
    shipment, events = await _shipment_and_events(request)
    poll_now = await request.app[POLL_NOW].view(request, shipment["id"])
    return request.app[PAGES].render(
        "shipment.html", shipment=shipment, events=events, poll_now=poll_now
    )


async def healthz(request: web.Request) -> web.Response:
    try:
        await asyncio.wait_for(ping(request.app[POOL]), HEALTH_TIMEOUT)
    except TimeoutError:
        error = f"the database did not answer within {HEALTH_TIMEOUT:g} s"
    except Exception as exc:  # any failure to answer is "unavailable", never a 500
        error = f"{type(exc).__name__}: {exc}"
    else:
        return web.json_response({"status": "ok"})
    log.warning("health check failed: %s", error)
    return web.json_response({"status": "unavailable", "error": error}, status=503)


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def error_response(request: web.Request, status: int, message: str) -> web.Response:
    if _wants_json(request):
        return web.json_response({"error": message}, status=status)
    return request.app[PAGES].render("error.html", status=status, code=status, message=message)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bad input -> 400, unknown -> 404, database down -> 503; as HTML or JSON."""
    try:
        return await handler(request)
    except WebError as exc:
        log.debug("%s %s: %s %s", request.method, request.path, exc.status, exc.message)
        return error_response(request, exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(request, exc.status, exc.reason)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.exception("%s %s: database error", request.method, request.path)
        return error_response(request, 503, f"the database is unavailable ({type(exc).__name__})")


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.content_type == "text/html":
        response.headers.setdefault("Content-Security-Policy", request.app[PAGES].csp)
        response.headers.setdefault("X-Frame-Options", "DENY")


def build_app(pool: asyncpg.Pool, config: Config) -> web.Application:
    """The web app on ``pool``; the caller owns the pool and runs the app."""
    app = web.Application(middlewares=[_errors])
    app[POOL] = pool
    app[CONFIG] = config
    app[PAGES] = Pages.load()
    app.on_response_prepare.append(_security_headers)
    # Imported here: these modules use this one's keys and errors.
    from tracker.web.api import add_api_routes
    from tracker.web.table import add_table_routes

    add_table_routes(app, config)
    app.router.add_get("/shipments/{id}", shipment_page, name="shipment")
    add_api_routes(app)
    app.router.add_get("/healthz", healthz, name="healthz")
    add_webhook_route(app, pool, config)
    install_access(app, config, app[PAGES])
    install_actions(app, pool, config)
    install_analytics(app, pool, app[PAGES])
    return app
