"""The GraphQL side of the sandbox's bulk operations, and the route serving their results.

``bulkOperationRunQuery``, ``currentBulkOperation`` and ``node(id:)`` read and start the store's
bulk operations (:mod:`shopify_bulk`); ``currentAppInstallation`` shows the scopes the merchant
granted (``store.access_scopes``), which the bulk backfill reads to tell whether orders older than
60 days are visible. ``node(id:)`` resolves bulk operations and the app installation; other
types answer null in the sandbox. Result files are served at ``/_sandbox/bulk/<id>.jsonl`` while
their signature matches and they have not expired (403 otherwise, as a signed URL would).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from graphql import GraphQLInterfaceType, GraphQLObjectType, GraphQLSchema

from tracker.sandbox.shopify_bulk import BULK_OPERATION, BulkOperation, BulkUserError
from tracker.sandbox.shopify_models import gid, parse_gid

if TYPE_CHECKING:
    from tracker.sandbox.shopify_schema import Info
    from tracker.sandbox.shopify_store import ShopifyStore

APP_INSTALLATION = "AppInstallation"


def resolve_bulk_operation_run_query(_root: object, info: Info, query: str) -> dict[str, Any]:
    context = info.context
    try:
        operation = context.store.bulk.run_query(query, context.api_version)
    except BulkUserError as error:
        problem = {"code": error.code, "field": error.field, "message": str(error)}
        return {"bulkOperation": None, "userErrors": [problem]}
    return {"bulkOperation": operation, "userErrors": []}


def resolve_current_bulk_operation(
    _root: object, info: Info, type: str = "QUERY"
) -> BulkOperation | None:
    return info.context.store.bulk.current(type)


def _app_installation(store: ShopifyStore) -> dict[str, Any]:
    return {
        "__typename": APP_INSTALLATION,
        "id": gid(APP_INSTALLATION, 1),
        "accessScopes": [
            {"handle": handle, "description": f"Sandbox scope {handle}"}
            for handle in sorted(store.access_scopes)
        ],
    }


def resolve_current_app_installation(_root: object, info: Info) -> dict[str, Any]:
    return _app_installation(info.context.store)


def resolve_node(_root: object, info: Info, id: str) -> object | None:
    """``node(id:)`` for bulk operations and the app installation; null for other types."""
    parsed = parse_gid(id)
    store = info.context.store
    if parsed is None:
        return None
    if parsed[0] == BULK_OPERATION:
        return store.bulk.get(parsed[1])
    if parsed[0] == APP_INSTALLATION and parsed[1] == 1:
        return _app_installation(store)
    return None


def _node_type(value: object, *_args: object) -> str | None:
    if isinstance(value, BulkOperation):
        return BULK_OPERATION
    if isinstance(value, dict):
        typename = value.get("__typename")
        return typename if isinstance(typename, str) else None
    return None


def _operation_url(operation: BulkOperation, info: Info) -> str | None:
    if operation.status != "COMPLETED" or operation.path is None:
        return None
    return operation.file_url(info.context.store.bulk.base_url)


def _partial_url(operation: BulkOperation, info: Info) -> str | None:
    if not operation.partial or operation.status != "FAILED" or operation.path is None:
        return None
    return operation.file_url(info.context.store.bulk.base_url)


def bind_bulk_resolvers(schema: GraphQLSchema) -> None:
    """Wire this module's resolvers into the sandbox schema."""
    query, mutation = schema.query_type, schema.mutation_type
    assert query is not None
    assert mutation is not None
    query.fields["node"].resolve = resolve_node
    query.fields["currentBulkOperation"].resolve = resolve_current_bulk_operation
    query.fields["currentAppInstallation"].resolve = resolve_current_app_installation
    mutation.fields["bulkOperationRunQuery"].resolve = resolve_bulk_operation_run_query
    node = schema.type_map["Node"]
    assert isinstance(node, GraphQLInterfaceType)
    node.resolve_type = _node_type
    bulk = schema.type_map[BULK_OPERATION]
    assert isinstance(bulk, GraphQLObjectType)
    special: dict[str, Callable[..., Any]] = {
        "id": lambda op, _info: op.gid,
        "url": _operation_url,
        "partialDataUrl": _partial_url,
    }
    for name, definition in bulk.fields.items():
        attribute = "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
        definition.resolve = special.get(name) or (
            lambda op, _info, attribute=attribute: getattr(op, attribute)
        )


# -- the result files --------------------------------------------------------------------------


def add_bulk_routes(app: web.Application, store: ShopifyStore) -> None:
    """``GET /_sandbox/bulk/<id>.jsonl``: a result file, while its signed URL is valid."""

    async def download(request: web.Request) -> web.StreamResponse:
        operation = store.bulk.operations.get(int(request.match_info["id"]))
        if operation is None or operation.path is None:
            raise web.HTTPNotFound(text="NoSuchKey: The specified key does not exist.")
        signature = request.query.get("signature", "")
        if not hmac.compare_digest(signature.encode(), operation.signature.encode()):
            raise web.HTTPForbidden(text="SignatureDoesNotMatch")
        if store.bulk.get(operation.id) is None or operation.path is None:  # expired just now
            raise web.HTTPForbidden(text="ExpiredToken: Request has expired")
        return web.FileResponse(operation.path, headers={"Content-Type": "application/jsonl"})

    async def close(_app: web.Application) -> None:
        await store.bulk.close()

    app.router.add_get(r"/_sandbox/bulk/{id:\d+}.jsonl", download)
    app.on_cleanup.append(close)
