"""The JSON API under ``/api/``: the status table's views as data.

- ``GET /api/shipments``: one page of a view (the table's query string: tab, filters, sort,
  ``limit``, ``cursor``), with ``next_cursor`` and ``prev_cursor`` to page on.
- ``GET /api/shipments/{id}``: one shipment with every tracking event and its write-back state.
- ``GET /api/counts``: shipments per tab and per store under a view's filters.
- ``GET /api/openapi.json``: the OpenAPI document of all of these (:mod:`tracker.web.openapi`).

Errors are ``{"error": "..."}``: 400 for a query string this API cannot use, 404 for an unknown
shipment, 503 when the database does not answer.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from tracker.web import present
from tracker.web.app import POOL, WebError, parse_shipment_id
from tracker.web.counts import fetch_counts
from tracker.web.openapi import openapi_document
from tracker.web.queries import fetch_events, fetch_page, fetch_shipment
from tracker.web.table import LINKS, page_cursors, view_of

OPENAPI = web.AppKey("openapi", dict)


async def api_shipments(request: web.Request) -> web.Response:
    view = view_of(request)
    page = await fetch_page(
        request.app[POOL], view.where, view.sort, view.descending, view.after, view.limit
    )
    after, before = page_cursors(view, page)
    now = datetime.now(UTC)
    links = request.app[LINKS]
    return web.json_response(
        {
            "shipments": [present.shipment_json(row, links, now) for row in page.rows],
            "next_cursor": after,
            "prev_cursor": before,
        }
    )


async def api_shipment(request: web.Request) -> web.Response:
    shipment_id = parse_shipment_id(request)
    pool = request.app[POOL]
    shipment = await fetch_shipment(pool, shipment_id)
    if shipment is None:
        raise WebError(404, f"no shipment {shipment_id}")
    body = present.shipment_json(shipment, request.app[LINKS])
    body["events"] = [present.event_json(event) for event in await fetch_events(pool, shipment_id)]
    return web.json_response(body)


async def api_counts(request: web.Request) -> web.Response:
    view = view_of(request)
    counts = await fetch_counts(request.app[POOL], view.where)
    return web.json_response({"tabs": counts.tabs, "stores": counts.stores})


async def api_openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


def add_api_routes(app: web.Application) -> None:
    app[OPENAPI] = openapi_document()
    app.router.add_get("/api/shipments", api_shipments, name="api_shipments")
    app.router.add_get("/api/shipments/{id}", api_shipment, name="api_shipment")
    app.router.add_get("/api/counts", api_counts, name="api_counts")
    app.router.add_get("/api/openapi.json", api_openapi, name="api_openapi")
