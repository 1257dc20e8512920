"""The OpenAPI 3 document of ``/api/``, written out by hand from the same constants the API uses.

Objects are closed (``additionalProperties: false``), so a field the API adds without saying so
here fails the schemathesis run in the tests, as does any answer that does not match.
"""

from __future__ import annotations

from typing import Any

from tracker.engine.attention import FLAGS
from tracker.web.present import TAB_WORDS, WRITEBACK_WORDS
from tracker.web.selection import MAX_LIMIT, SORTS, TABS
from tracker.web.view import (
    MAX_CARRIER_LENGTH,
    MAX_CURSOR_LENGTH,
    MAX_SEARCH_LENGTH,
    MAX_STORE_LENGTH,
    NO_STATUS,
    STATUSES,
)

Schema = dict[str, Any]

CARRIER_STATES = [
    "pending",
    "found",
    "not_found",
    "invalid_number",
    "carrier_error",
    "unavailable",
    "no_adapter",
    "untracked",
]


def _nullable(schema: Schema) -> Schema:
    if "enum" in schema:
        return {**schema, "nullable": True, "enum": [*schema["enum"], None]}
    return {**schema, "nullable": True}


def _object(properties: dict[str, Schema], description: str = "") -> Schema:
    schema: Schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


TIME: Schema = {"type": "string", "format": "date-time", "description": "UTC, ISO 8601"}
TEXT: Schema = {"type": "string"}
COUNT: Schema = {"type": "integer", "minimum": 0}
STATUS: Schema = {"type": "string", "enum": STATUSES}

LAST_EVENT = _object(
    {
        "status": _nullable(STATUS),
        "message": TEXT,
        "city": _nullable(TEXT),
        "province": _nullable(TEXT),
        "country": _nullable(TEXT),
        "zip": _nullable(TEXT),
        "happened_at": TIME,
        "carrier_code": TEXT,
    },
    "The newest scan (or the one the shipment's status came from).",
)

SHIPMENT_PROPERTIES: dict[str, Schema] = {
    "id": {"type": "integer", "minimum": 1},
    "shop": {"type": "string", "description": "The store's myshopify domain"},
    "order_name": TEXT,
    "order_id": TEXT,
    "order_url": _nullable({"type": "string", "description": "The order in the Shopify admin"}),
    "customer": _object({"name": _nullable(TEXT), "email": _nullable(TEXT)}),
    "fulfillment_id": TEXT,
    "fulfilled_at": _nullable(TIME),
    "tracking_number": {"type": "string", "description": "Empty when fulfilled without one"},
    "tracking_company": _nullable(TEXT),
    "tracking_url": _nullable(
        {"type": "string", "description": "The carrier's public tracking page"}
    ),
    "carrier": _nullable(TEXT),
    "carrier_source": {"type": "string", "enum": ["shopify", "detected", "unknown"]},
    "status": _nullable(STATUS),
    "status_at": _nullable(TIME),
    "carrier_state": {"type": "string", "enum": CARRIER_STATES},
    "attention": _nullable({"type": "string", "enum": list(FLAGS)}),
    "attention_since": _nullable(TIME),
    "carrier_message": TEXT,
    "last_event": _nullable(LAST_EVENT),
    "last_scan_at": _nullable(TIME),
    "estimated_delivery_at": _nullable(TIME),
    "first_estimated_delivery_at": _nullable(TIME),
    "days_in_transit": _nullable(COUNT),
    "active": {"type": "boolean", "description": "Still being tracked"},
    "retired_reason": _nullable(TEXT),
    "writeback": _object({"written": COUNT, "pending": COUNT, "failed": COUNT}),
}

EVENT = _object(
    {
        "id": {"type": "integer", "minimum": 1},
        "status": _nullable(STATUS),
        "happened_at": TIME,
        "time_source": TEXT,
        "carrier_code": TEXT,
        "message": TEXT,
        "city": _nullable(TEXT),
        "province": _nullable(TEXT),
        "country": _nullable(TEXT),
        "zip": _nullable(TEXT),
        "estimated_delivery_at": _nullable(TIME),
        "writeback": _object(
            {
                "state": {"type": "string", "enum": list(WRITEBACK_WORDS)},
                "attempts": COUNT,
                "error": _nullable(TEXT),
                "shopify_event_id": _nullable(TEXT),
                "written_at": _nullable(TIME),
            }
        ),
    }
)

CURSOR = _nullable(
    {"type": "string", "description": "Pass as `cursor` (with the same view) to page on"}
)
ERROR = _object({"error": {"type": "string", "minLength": 1}})


def _query(name: str, schema: Schema, description: str, *, array: bool = False) -> Schema:
    parameter: Schema = {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "array", "items": schema} if array else schema,
    }
    if array:
        parameter.update(style="form", explode=True)
    return parameter


VIEW_PARAMETERS = [
    _query(
        "tab",
        {"type": "string", "enum": list(TABS), "default": "all"},
        "; ".join(f"{key}: {hint}" for key, (_label, hint) in TAB_WORDS.items()),
    ),
    _query(
        "status",
        {"type": "string", "enum": [*STATUSES, NO_STATUS]},
        "Any of these statuses (`none`: no scan yet); repeat it or separate with commas",
        array=True,
    ),
    _query(
        "attention",
        {"type": "string", "enum": list(FLAGS)},
        "Any of these attention flags",
        array=True,
    ),
    _query(
        "carrier",
        {"type": "string", "maxLength": MAX_CARRIER_LENGTH},
        "Carrier code; `unknown` for shipments with no known carrier",
    ),
    _query("store", {"type": "string", "maxLength": MAX_STORE_LENGTH}, "A store's domain"),
    _query("shipped_from", {"type": "string", "format": "date"}, "Fulfilled on or after (UTC)"),
    _query("shipped_to", {"type": "string", "format": "date"}, "Fulfilled on or before (UTC)"),
    _query(
        "last_scan_before",
        {
            "type": "string",
            "pattern": r"^([0-9]{1,4}[hdwHDW]|[0-9]{4}-[0-9]{2}-[0-9]{2})$",
        },
        "No scan since: an age (12h, 3d, 2w; at most 3650 days) or a date; never scanned counts",
    ),
    _query(
        "q",
        {"type": "string", "maxLength": MAX_SEARCH_LENGTH},
        "Part of the order name, tracking number, customer name or e-mail (any case)",
    ),
    _query(
        "include_inactive",
        {"type": "boolean", "default": False},
        "Include shipments whose tracking was stopped (order cancelled, number removed)",
    ),
    _query(
        "sort",
        {"type": "string", "enum": list(SORTS), "default": "status"},
        "status: most urgent first; transit: days in transit (by shipping date)",
    ),
    _query("dir", {"type": "string", "enum": ["asc", "desc"]}, "Default: the sort's own"),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100}, ""),
    _query(
        "cursor",
        {"type": "string", "maxLength": MAX_CURSOR_LENGTH},
        "next_cursor or prev_cursor of a page of the same sort and direction",
    ),
]


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


BAD_REQUEST = {
    "description": "The query string cannot be used; `error` says why. A request line over "
    "8190 bytes is refused by the HTTP server itself, as text/plain.",
    "content": {
        "application/json": {"schema": ERROR},
        "text/plain": {"schema": {"type": "string"}},
    },
}
ERRORS = {
    "400": BAD_REQUEST,
    "401": _json(ERROR, "web.auth is configured and the request has no token or session"),
    "503": _json(ERROR, "The database does not answer"),
}


def openapi_document() -> Schema:
    """The document served at ``/api/openapi.json``."""
    detail = _object({**SHIPMENT_PROPERTIES, "events": {"type": "array", "items": EVENT}})
    listing = _object(
        {
            "shipments": {"type": "array", "items": _object(SHIPMENT_PROPERTIES)},
            "next_cursor": CURSOR,
            "prev_cursor": CURSOR,
        }
    )
    counts = _object(
        {
            "tabs": _object(dict.fromkeys(TABS, COUNT), "Shipments per tab (the view's store)"),
            "stores": {
                "type": "object",
                "additionalProperties": COUNT,
                "description": "Every store by domain: shipments in the view's tab",
            },
        }
    )
    shipment_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Shipment tracker",
            "version": "1",
            "description": "The status table's shipments, filters and counts as JSON.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
        "paths": {
            "/api/shipments": {
                "get": {
                    "operationId": "listShipments",
                    "summary": "One page of a view, most urgent first by default",
                    "parameters": VIEW_PARAMETERS,
                    "responses": {"200": _json(listing, "A page"), **ERRORS},
                }
            },
            "/api/shipments/{id}": {
                "get": {
                    "operationId": "getShipment",
                    "summary": "One shipment with every tracking event, oldest first",
                    "parameters": [shipment_id],
                    "responses": {
                        "200": _json(detail, "The shipment"),
                        "404": _json(ERROR, "No such shipment"),
                        **ERRORS,
                    },
                }
            },
            "/api/counts": {
                "get": {
                    "operationId": "countShipments",
                    "summary": "Shipments per tab and per store under a view's filters",
                    "parameters": VIEW_PARAMETERS,
                    "responses": {"200": _json(counts, "The counts"), **ERRORS},
                }
            },
            "/api/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.0")},
                }
            },
        },
    }
