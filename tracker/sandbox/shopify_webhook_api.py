"""The sandbox's webhook API: GraphQL resolvers and the ``/_sandbox/webhooks/`` control routes.

GraphQL (as Shopify's Admin API): ``webhookSubscriptions(first:, after:, topics:, callbackUrl:,
format:, sortKey:, reverse:)``, ``webhookSubscription(id:)`` and ``webhookSubscriptionCreate(topic:,
webhookSubscription: {callbackUrl, format})`` with ``userErrors``.

Control routes (JSON, no auth):

==========================================  ==================================================
``GET  /_sandbox/webhooks/subscriptions``   every subscription
``GET  /_sandbox/webhooks/deliveries``      every delivery attempt, and how many are pending
``POST /_sandbox/webhooks/settings``        change :class:`DeliverySettings` (retries, dups, delays)
==========================================  ==================================================
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web
from graphql import GraphQLError, GraphQLObjectType, GraphQLSchema, GraphQLUnionType

from tracker.sandbox.pagination import PaginationError, SortKey, paginate
from tracker.sandbox.shopify_models import parse_gid
from tracker.sandbox.shopify_webhooks import SandboxWebhooks, Subscription

if TYPE_CHECKING:
    from graphql import GraphQLResolveInfo

    from tracker.sandbox.shopify_schema import RequestContext

    Info = GraphQLResolveInfo[RequestContext]

SUBSCRIPTION = "WebhookSubscription"


def _webhooks(info: Info) -> SandboxWebhooks:
    return info.context.store.webhooks


def resolve_webhook_subscriptions(_root: object, info: Info, **args: Any) -> dict[str, Any]:
    found = _webhooks(info).subscriptions(
        topics=args.get("topics"), callback_url=args.get("callbackUrl"), format=args.get("format")
    )

    def by(subscription: Subscription) -> SortKey:
        if args.get("sortKey") == "CREATED_AT":
            return subscription.created_at.timestamp(), subscription.id
        return float(subscription.id), subscription.id

    try:
        return paginate(
            found,
            by,
            first=args.get("first"),
            after=args.get("after"),
            last=args.get("last"),
            before=args.get("before"),
            reverse=bool(args.get("reverse")),
        ).as_connection()
    except PaginationError as error:
        raise GraphQLError(str(error)) from error


def resolve_webhook_subscription(_root: object, info: Info, id: str) -> Subscription | None:
    parsed = parse_gid(id)
    if parsed is None:
        raise GraphQLError(f"Invalid global id '{id}'")
    if parsed[0] != SUBSCRIPTION:
        return None
    return next((s for s in _webhooks(info).subscriptions() if s.id == parsed[1]), None)


def resolve_webhook_subscription_create(
    _root: object, info: Info, topic: str, webhookSubscription: dict[str, Any]
) -> dict[str, Any]:
    subscription, errors = _webhooks(info).subscribe(
        topic,
        webhookSubscription.get("callbackUrl"),
        webhookSubscription.get("format") or "JSON",
        info.context.api_version,
    )
    return {"webhookSubscription": subscription, "userErrors": errors}


def bind_webhook_resolvers(schema: GraphQLSchema) -> None:
    """Resolve the webhook fields of a sandbox schema built from ``shopify_schema.graphql``."""
    query, mutation = schema.query_type, schema.mutation_type
    assert query is not None
    assert mutation is not None
    query.fields["webhookSubscriptions"].resolve = resolve_webhook_subscriptions
    query.fields["webhookSubscription"].resolve = resolve_webhook_subscription
    mutation.fields["webhookSubscriptionCreate"].resolve = resolve_webhook_subscription_create
    subscription = schema.type_map[SUBSCRIPTION]
    assert isinstance(subscription, GraphQLObjectType)
    resolvers: dict[str, Any] = {
        "id": lambda s, _info: s.gid,
        "legacyResourceId": lambda s, _info: s.id,
        "topic": lambda s, _info: s.topic,
        "format": lambda s, _info: s.format,
        "callbackUrl": lambda s, _info: s.callback_url,
        "endpoint": lambda s, _info: {"callbackUrl": s.callback_url},
        "createdAt": lambda s, _info: s.created_at,
        "updatedAt": lambda s, _info: s.updated_at,
        "includeFields": lambda _s, _info: [],
        "metafieldNamespaces": lambda _s, _info: [],
        "filter": lambda _s, _info: None,
        "apiVersion": lambda s, _info: {
            "handle": s.api_version,
            "displayName": s.api_version,
            "supported": s.api_version != "unstable",
        },
    }
    for name, definition in subscription.fields.items():
        definition.resolve = resolvers[name]
    endpoint = schema.type_map["WebhookSubscriptionEndpoint"]
    assert isinstance(endpoint, GraphQLUnionType)
    endpoint.resolve_type = lambda _value, _info, _type: "WebhookHttpEndpoint"


def _subscription_json(subscription: Subscription) -> dict[str, Any]:
    return {
        "id": subscription.gid,
        "topic": subscription.topic,
        "callback_url": subscription.callback_url,
        "format": subscription.format,
        "api_version": subscription.api_version,
    }


def add_webhook_control_routes(router: web.UrlDispatcher, webhooks: SandboxWebhooks) -> None:
    """The ``/_sandbox/webhooks/`` routes for one store's webhooks."""

    async def subscriptions(_request: web.Request) -> web.Response:
        found = [_subscription_json(s) for s in webhooks.subscriptions()]
        return web.json_response({"subscriptions": found})

    async def deliveries(_request: web.Request) -> web.Response:
        return web.json_response(
            {"deliveries": webhooks.attempts_json(), "pending": webhooks.pending}
        )

    async def settings(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(
                text='{"error": "expected an object of settings"}', content_type="application/json"
            )
        try:
            changed = webhooks.configure(**body)
        except (TypeError, ValueError) as error:
            raise web.HTTPBadRequest(
                text=json.dumps({"error": str(error)}), content_type="application/json"
            ) from None
        return web.json_response({"settings": vars(changed)})

    router.add_get("/_sandbox/webhooks/subscriptions", subscriptions)
    router.add_get("/_sandbox/webhooks/deliveries", deliveries)
    router.add_post("/_sandbox/webhooks/settings", settings)
