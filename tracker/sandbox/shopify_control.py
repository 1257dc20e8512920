"""The Shopify sandbox's control routes (``/_sandbox/...``, JSON, no auth) for tests and the demo.

=============================================  ===========================================
``POST /_sandbox/orders``                      create orders (body below); 201
``GET  /_sandbox/orders``                      every order with its fulfillments
``POST /_sandbox/orders/{id}/cancel``          cancel an order
``POST /_sandbox/orders/{id}/fulfillments``    ``{"tracking": [...]}``: ship one more item
``POST /_sandbox/fulfillments/{id}/cancel``    cancel a fulfillment
``POST /_sandbox/fulfillments/{id}/tracking``  ``{"tracking": [...]}``: replace parcels
``GET  /_sandbox/fulfillments/{id}/events``    a fulfillment's events, by happened_at
``GET  /_sandbox/events``                      every event, in creation order
``GET  /_sandbox/stats``                       counters, faults left, bucket state
``POST /_sandbox/faults``                      set fault counters (names as on the store)
``POST /_sandbox/held/release``                send the answers ``hold_...`` is holding
``GET  /_sandbox/webhooks/...``                webhooks: see :mod:`shopify_webhook_api`
=============================================  ===========================================

``{id}`` is a legacy id or a gid (URL-encoded or not). ``POST /_sandbox/orders`` takes
``{"orders": [order, ...]}`` or one order, where an order is ``{"name"?, "email"?,
"created_at"?, "unfulfilled_items"?, "fulfillments": [{"tracking": [{"company", "number",
"url"?}], "estimated_delivery_at"?}]}``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from tracker.sandbox.shopify_models import (
    Fulfillment,
    FulfillmentEvent,
    Order,
    TrackingInfo,
    gid,
)
from tracker.sandbox.shopify_store import SandboxError, ShopifyStore, UnknownObjectError
from tracker.sandbox.shopify_webhook_api import add_webhook_control_routes


def _stamp(moment: Any) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Tracking(BaseModel):
    model_config = ConfigDict(extra="forbid")

    company: str | None = None
    number: str | None = None
    url: str | None = None

    def info(self) -> TrackingInfo:
        return TrackingInfo(self.company, self.number, self.url)


class _FulfillmentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tracking: list[_Tracking] = Field(default_factory=list)
    estimated_delivery_at: AwareDatetime | None = None


class _OrderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    email: str | None = None
    created_at: AwareDatetime | None = None
    unfulfilled_items: int = Field(default=0, ge=0)
    fulfillments: list[_FulfillmentBody] = Field(default_factory=list)


class _OrdersBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    orders: list[_OrderBody]


def event_json(event: FulfillmentEvent) -> dict[str, Any]:
    """An event as the control routes show it (snake_case, enum names, gids)."""
    return {
        "id": event.gid,
        "legacy_resource_id": event.id,
        "fulfillment_id": gid("Fulfillment", event.fulfillment_id),
        "order_id": gid("Order", event.order_id),
        "status": event.status,
        "happened_at": _stamp(event.happened_at),
        "created_at": _stamp(event.created_at),
        "estimated_delivery_at": _stamp(event.estimated_delivery_at),
        "message": event.message,
        "address1": event.address1,
        "city": event.city,
        "province": event.province,
        "country": event.country,
        "zip": event.zip,
        "latitude": event.latitude,
        "longitude": event.longitude,
    }


def fulfillment_json(fulfillment: Fulfillment) -> dict[str, Any]:
    return {
        "id": fulfillment.gid,
        "legacy_resource_id": fulfillment.id,
        "order_id": gid("Order", fulfillment.order_id),
        "name": fulfillment.name,
        "status": fulfillment.status,
        "display_status": fulfillment.display_status,
        "tracking": [
            {"company": t.company, "number": t.number, "url": t.url} for t in fulfillment.tracking
        ],
        "estimated_delivery_at": _stamp(fulfillment.estimated_delivery_at),
        "in_transit_at": _stamp(fulfillment.in_transit_at),
        "delivered_at": _stamp(fulfillment.delivered_at),
        "event_count": len(fulfillment.events),
    }


def order_json(order: Order) -> dict[str, Any]:
    return {
        "id": order.gid,
        "legacy_resource_id": order.id,
        "name": order.name,
        "email": order.email,
        "created_at": _stamp(order.created_at),
        "updated_at": _stamp(order.updated_at),
        "cancelled_at": _stamp(order.cancelled_at),
        "closed": order.closed,
        "display_fulfillment_status": order.display_fulfillment_status,
        "fulfillments": [fulfillment_json(f) for f in order.fulfillments],
    }


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise _bad_request("the body is not JSON") from None


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def _not_found(error: Exception) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=json.dumps({"error": str(error)}), content_type="application/json")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SandboxControl:
    """The ``/_sandbox/`` handlers for one store."""

    def __init__(self, store: ShopifyStore) -> None:
        self.store = store

    def add_routes(self, router: web.UrlDispatcher) -> None:
        routes: list[tuple[str, str, Handler]] = [
            ("POST", "/_sandbox/orders", self.create_orders),
            ("GET", "/_sandbox/orders", self.list_orders),
            ("POST", "/_sandbox/orders/{id:.+}/cancel", self.cancel_order),
            ("POST", "/_sandbox/orders/{id:.+}/fulfillments", self.add_fulfillment),
            ("POST", "/_sandbox/fulfillments/{id:.+}/cancel", self.cancel_fulfillment),
            ("POST", "/_sandbox/fulfillments/{id:.+}/tracking", self.update_tracking),
            ("GET", "/_sandbox/fulfillments/{id:.+}/events", self.fulfillment_events),
            ("GET", "/_sandbox/events", self.all_events),
            ("GET", "/_sandbox/stats", self.stats),
            ("POST", "/_sandbox/faults", self.set_faults),
            ("POST", "/_sandbox/held/release", self.release_held),
        ]
        for method, path, handler in routes:
            router.add_route(method, path, handler)
        add_webhook_control_routes(router, self.store.webhooks)

    async def create_orders(self, request: web.Request) -> web.Response:
        raw = await _json_body(request)
        try:
            if isinstance(raw, dict) and "orders" in raw:
                bodies = _OrdersBody.model_validate(raw).orders
            else:
                bodies = [_OrderBody.model_validate(raw)]
        except ValidationError as error:
            raise _bad_request(str(error)) from None
        created = [self._create_order(body) for body in bodies]
        return web.json_response({"orders": [order_json(o) for o in created]}, status=201)

    def _create_order(self, body: _OrderBody) -> Order:
        order = self.store.add_order(
            body.name,
            email=body.email,
            fulfillments=[[t.info() for t in f.tracking] for f in body.fulfillments],
            unfulfilled_items=body.unfulfilled_items,
            created_at=body.created_at,
        )
        for fulfillment, spec in zip(order.fulfillments, body.fulfillments, strict=True):
            fulfillment.estimated_delivery_at = spec.estimated_delivery_at
            fulfillment.initial_estimated_delivery_at = spec.estimated_delivery_at
        return order

    async def list_orders(self, _request: web.Request) -> web.Response:
        return web.json_response({"orders": [order_json(o) for o in self.store.orders()]})

    async def cancel_order(self, request: web.Request) -> web.Response:
        try:
            order = self.store.cancel_order(request.match_info["id"])
        except UnknownObjectError as error:
            raise _not_found(error) from None
        return web.json_response(order_json(order))

    async def add_fulfillment(self, request: web.Request) -> web.Response:
        try:
            body = _FulfillmentBody.model_validate(await _json_body(request))
        except ValidationError as error:
            raise _bad_request(str(error)) from None
        try:
            fulfillment = self.store.add_fulfillment(
                request.match_info["id"],
                [t.info() for t in body.tracking],
                estimated_delivery_at=body.estimated_delivery_at,
            )
        except UnknownObjectError as error:
            raise _not_found(error) from None
        return web.json_response(fulfillment_json(fulfillment), status=201)

    async def cancel_fulfillment(self, request: web.Request) -> web.Response:
        try:
            fulfillment = self.store.cancel_fulfillment(request.match_info["id"])
        except UnknownObjectError as error:
            raise _not_found(error) from None
        return web.json_response(fulfillment_json(fulfillment))

    async def update_tracking(self, request: web.Request) -> web.Response:
        try:
            body = _FulfillmentBody.model_validate(await _json_body(request))
        except ValidationError as error:
            raise _bad_request(str(error)) from None
        try:
            fulfillment = self.store.update_tracking(
                request.match_info["id"], [t.info() for t in body.tracking]
            )
        except UnknownObjectError as error:
            raise _not_found(error) from None
        except SandboxError as error:
            raise web.HTTPConflict(
                text=json.dumps({"error": str(error)}), content_type="application/json"
            ) from None
        return web.json_response(fulfillment_json(fulfillment))

    async def fulfillment_events(self, request: web.Request) -> web.Response:
        fulfillment_id = request.match_info["id"]
        try:
            fulfillment = self.store.fulfillment(fulfillment_id)
        except UnknownObjectError as error:
            raise _not_found(error) from None
        events = self.store.events(fulfillment.id)
        return web.json_response(
            {"fulfillment_id": fulfillment.gid, "events": [event_json(e) for e in events]}
        )

    async def all_events(self, _request: web.Request) -> web.Response:
        return web.json_response({"events": [event_json(e) for e in self.store.all_events()]})

    async def stats(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                **self.store.stats.as_dict(),
                "faults": self.store.faults(),
                "throttle_status": self.store.bucket.throttle_status(),
            }
        )

    async def set_faults(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise _bad_request("expected an object of fault counters")
        try:
            faults = self.store.set_faults(**body)
        except ValueError as error:
            raise _bad_request(str(error)) from None
        return web.json_response({"faults": faults})

    async def release_held(self, _request: web.Request) -> web.Response:
        self.store.release_held_responses()
        return web.json_response({"released": True})
