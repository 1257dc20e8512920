"""The merchant's status table: HTML pages, the JSON API and ``/healthz``.

Routes:

- ``GET /`` the status table, attention first; filters ``status``, ``carrier``, ``q``,
  ``limit``, ``cursor``, ``include_inactive``.
- ``GET /shipments/{id}`` one shipment with every tracking event and its write-back state.
- ``GET /api/shipments`` and ``GET /api/shipments/{id}`` the same as JSON.
- ``GET /healthz`` 200 when the database answers ``SELECT 1`` within two seconds, else 503.

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
from multidict import MultiMapping
from yarl import URL

from tracker.config import Config
from tracker.web import present
from tracker.web.queries import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    InvalidCursor,
    ShipmentFilter,
    SortKey,
    fetch_carriers,
    fetch_events,
    fetch_shipment,
    fetch_shipment_page,
    fetch_status_counts,
    ping,
)
from tracker.web.webhooks import add_webhook_route

log = logging.getLogger(__name__)

HEALTH_TIMEOUT = 2.0
MAX_SEARCH_LENGTH = 200
MAX_CARRIER_LENGTH = 64
_STATUS_CHOICES = frozenset(present.STATUSES_BY_URGENCY)
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
_DIGITS = re.compile(r"[0-9]{1,20}")
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
        csp = (
            f"default-src 'self'; style-src 'self' 'sha256-{digest}'; img-src 'self' data:; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        )
        return cls(env, Markup(css), csp)  # noqa: S704 - our own stylesheet, not input

    def render(self, name: str, status: int = 200, **context: Any) -> web.Response:
        html = self.env.get_template(name).render(css=self.css, **context)
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


POOL = web.AppKey("pool", asyncpg.Pool)
CONFIG = web.AppKey("config", Config)
PAGES = web.AppKey("pages", Pages)


@dataclass(frozen=True, slots=True)
class Listing:
    """A status table request: which shipments, how many, after which row."""

    where: ShipmentFilter
    limit: int
    after: SortKey | None

    def query(self, *, statuses: list[str] | None = None, cursor: str | None = None) -> URL:
        """The query string for these filters, with ``statuses`` and ``cursor`` if given."""
        if statuses is None:
            statuses = list(self.where.statuses or ())
            if self.where.no_status:
                statuses.append("none")
        pairs: list[tuple[str, str]] = [("status", status) for status in statuses]
        if self.where.carrier is not None:
            pairs.append(("carrier", self.where.carrier))
        if self.where.search is not None:
            pairs.append(("q", self.where.search))
        if self.where.include_inactive:
            pairs.append(("include_inactive", "1"))
        if self.limit != DEFAULT_LIMIT:
            pairs.append(("limit", str(self.limit)))
        if cursor is not None:
            pairs.append(("cursor", cursor))
        return URL("/").with_query(pairs)


def _text_param(query: MultiMapping[str], name: str, max_length: int) -> str | None:
    value = query.get(name, "").strip()
    if "\x00" in value:
        raise bad_request(f"{name} contains a NUL character")
    if len(value) > max_length:
        raise bad_request(f"{name} is longer than {max_length} characters")
    return value or None


def parse_listing(query: MultiMapping[str]) -> Listing:
    """The filters of ``/`` and ``/api/shipments``; :class:`WebError` 400 for bad ones."""
    statuses: list[str] = []
    no_status = False
    for raw in query.getall("status", []):
        for part in raw.split(","):
            value = part.strip().lower()
            if not value:
                continue
            if value == "none":
                no_status = True
            elif value in _STATUS_CHOICES:
                if value not in statuses:
                    statuses.append(value)
            else:
                raise bad_request(
                    f"unknown status {part.strip()[:40]!r}: use one of "
                    + ", ".join(present.STATUSES_BY_URGENCY)
                    + " or none"
                )
    raw_limit = query.get("limit", "").strip()
    limit = DEFAULT_LIMIT
    if raw_limit:
        if not _DIGITS.fullmatch(raw_limit):
            raise bad_request(f"limit must be a whole number from 1 to {MAX_LIMIT}")
        limit = int(raw_limit)
        if not 1 <= limit <= MAX_LIMIT:
            raise bad_request(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    include = query.get("include_inactive", "").strip().lower()
    if include not in _TRUE | _FALSE:
        raise bad_request("include_inactive must be 1 or 0")
    cursor = query.get("cursor", "").strip()
    try:
        after = SortKey.decode(cursor) if cursor else None
    except InvalidCursor as exc:
        raise bad_request(f"bad cursor: {exc}") from None
    where = ShipmentFilter(
        statuses=tuple(statuses) if statuses or no_status else None,
        no_status=no_status,
        carrier=_text_param(query, "carrier", MAX_CARRIER_LENGTH),
        search=_text_param(query, "q", MAX_SEARCH_LENGTH),
        include_inactive=include in _TRUE,
    )
    return Listing(where, limit, after)


def parse_shipment_id(request: web.Request) -> int:
    """The ``{id}`` of the path; 400 when it is not a whole number, 404 when none can exist."""
    raw = request.match_info["id"]
    if not _ID.fullmatch(raw):
        raise bad_request("shipment id must be a whole number")
    shipment_id = int(raw)
    if not 0 < shipment_id <= _BIGINT_MAX:
        raise WebError(404, f"no shipment {shipment_id}")
    return shipment_id


async def status_table(request: web.Request) -> web.Response:
    listing = parse_listing(request.query)
    pool = request.app[POOL]
    page = await fetch_shipment_page(pool, listing.where, listing.limit, listing.after)
    counts = await fetch_status_counts(pool, listing.where)
    carriers = await fetch_carriers(pool)
    store_problems = await pool.fetch(
        "SELECT domain, last_sync_error, notice FROM shops"
        " WHERE last_sync_error IS NOT NULL OR notice IS NOT NULL ORDER BY domain"
    )
    resting_carriers = await pool.fetch(
        "SELECT carrier, opened_until, last_error FROM carrier_circuits"
        " WHERE opened_until > now() ORDER BY carrier"
    )
    summary = [
        {
            "status": status,
            "count": counts.by_status[status],
            "url": listing.query(statuses=[status or "none"]),
        }
        for status in [*present.STATUSES_BY_URGENCY, None]
        if counts.by_status.get(status)
    ]
    chosen = list(listing.where.statuses or ()) + (["none"] if listing.where.no_status else [])
    next_url = None
    if page.next_key is not None:
        next_url = listing.query(cursor=page.next_key.encode())
    return request.app[PAGES].render(
        "shipments.html",
        rows=page.rows,
        listing=listing,
        counts=counts,
        summary=summary,
        all_url=listing.query(statuses=[]),
        chosen=chosen,
        statuses=present.STATUSES_BY_URGENCY,
        carriers=carriers,
        next_url=next_url,
        first_url=listing.query() if listing.after is not None else None,
        store_problems=store_problems,
        resting_carriers=resting_carriers,
    )


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
    return request.app[PAGES].render("shipment.html", shipment=shipment, events=events)


async def api_shipments(request: web.Request) -> web.Response:
    listing = parse_listing(request.query)
    page = await fetch_shipment_page(request.app[POOL], listing.where, listing.limit, listing.after)
    return web.json_response(
        {
            "shipments": [present.shipment_json(row) for row in page.rows],
            "next_cursor": None if page.next_key is None else page.next_key.encode(),
        }
    )


async def api_shipment(request: web.Request) -> web.Response:
    shipment, events = await _shipment_and_events(request)
    body = present.shipment_json(shipment)
    body["events"] = [present.event_json(event) for event in events]
    return web.json_response(body)


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
    app.router.add_get("/", status_table, name="status_table")
    app.router.add_get("/shipments/{id}", shipment_page, name="shipment")
    app.router.add_get("/api/shipments", api_shipments, name="api_shipments")
    app.router.add_get("/api/shipments/{id}", api_shipment, name="api_shipment")
    app.router.add_get("/healthz", healthz, name="healthz")
    add_webhook_route(app, pool, config)
    return app
