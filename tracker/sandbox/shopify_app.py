"""The Shopify Admin GraphQL sandbox: an aiohttp app that answers like Shopify for one shop.

``POST /admin/api/{version}/graphql.json`` checks the version (404), the access token (401),
whether the shop is closed (402, 423, SHOP_INACTIVE) and the body (400), then prices the document
(:mod:`tracker.sandbox.cost`), takes the cost from the shop's leaky bucket (THROTTLED if it is
short, nothing executed), executes it with graphql-core against the schema of that API version,
refunds requested minus actual cost and answers with ``extensions.cost`` as Shopify does. The
``/_sandbox/`` control routes (no auth) are in :mod:`tracker.sandbox.shopify_control`.
"""

from __future__ import annotations

import inspect
import json
import logging
from typing import Any

from aiohttp import web
from graphql import (
    ExecutionResult,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    execute,
    get_operation_ast,
    parse,
    validate,
)

from tracker.sandbox.cost import SINGLE_QUERY_MAX_COST, actual_cost, requested_cost
from tracker.sandbox.shopify_bulk_api import add_bulk_routes
from tracker.sandbox.shopify_control import SandboxControl
from tracker.sandbox.shopify_schema import API_VERSION, RequestContext, schema_for_version
from tracker.sandbox.shopify_store import ShopifyStore

log = logging.getLogger(__name__)

SHOPIFY_STORE = web.AppKey("shopify_store", ShopifyStore)
RATE_LIMITS_DOC = "https://shopify.dev/api/usage/rate-limits"
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"  # noqa: S105


def _cost(store: ShopifyStore, requested: int, actual: int | None) -> dict[str, Any]:
    return {
        "requestedQueryCost": requested,
        "actualQueryCost": actual,
        "throttleStatus": store.bucket.throttle_status(),
    }


def _errors(*errors: dict[str, Any], **extensions: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"errors": list(errors)}
    if extensions:
        body["extensions"] = extensions
    return body


def _answer(version: str, body: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(body, status=status, headers={"X-Shopify-API-Version": version})


def _server_error(store: ShopifyStore, version: str, status: int) -> web.Response:
    """An injected 502/503, or HTTP 200 + INTERNAL_SERVER_ERROR as Shopify mostly sends one."""
    if store.server_errors == "graphql":
        error = {
            "message": "Internal error. Looks like something went wrong on our end.",
            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
        }
        return _answer(version, _errors(error))
    if status == 502:
        return web.Response(status=502, text="<html><body>502 Bad Gateway</body></html>")
    return web.json_response({"errors": "Service Unavailable"}, status=503)


def _closed(store: ShopifyStore, version: str) -> web.Response:
    """The shop is frozen (402), locked (423) or inactive (200 + SHOP_INACTIVE)."""
    store.stats.closed_answers += 1
    if store.shop_closed == "frozen":
        return web.json_response({"errors": "Unavailable Shop"}, status=402)
    if store.shop_closed == "locked":
        return web.json_response({"errors": "Locked"}, status=423)
    error = {"message": "Shop is inactive", "extensions": {"code": "SHOP_INACTIVE"}}
    return _answer(version, _errors(error))


def _throttled(store: ShopifyStore, version: str, requested: int) -> web.Response:
    store.stats.throttled += 1
    error = {
        "message": "Throttled",
        "extensions": {"code": "THROTTLED", "documentation": RATE_LIMITS_DOC},
    }
    return _answer(version, _errors(error, cost=_cost(store, requested, None)))


async def _read_body(request: web.Request) -> tuple[str, dict[str, Any] | None, str | None]:
    """``(query, variables, operationName)``; raises 400 like Shopify for anything else."""
    bad = web.HTTPBadRequest(
        text=json.dumps({"errors": {"query": "Required parameter missing or invalid"}}),
        content_type="application/json",
    )
    text = await request.text()
    if request.content_type == "application/graphql":
        if not text.strip():
            raise bad
        return text, None, None
    try:
        body = json.loads(text)
    except ValueError:
        raise bad from None
    if not isinstance(body, dict):
        raise bad
    query, variables, name = body.get("query"), body.get("variables"), body.get("operationName")
    if isinstance(variables, str) and variables.strip():
        try:
            variables = json.loads(variables)
        except ValueError:
            raise bad from None
    if not isinstance(query, str) or not query.strip():
        raise bad
    if variables is not None and not isinstance(variables, dict):
        raise bad
    if name is not None and not isinstance(name, str):
        raise bad
    return query, variables or None, name


async def graphql_endpoint(request: web.Request) -> web.Response:
    """``POST /admin/api/{version}/graphql.json``."""
    store = request.app[SHOPIFY_STORE]
    version = request.match_info["version"]
    if not API_VERSION.match(version):
        return web.json_response({"errors": "Not Found"}, status=404)
    token = request.headers.get("X-Shopify-Access-Token", "")
    if not store.token_valid(token):
        store.stats.unauthorized += 1
        return web.json_response({"errors": INVALID_TOKEN}, status=401)
    store.stats.requests += 1
    # A retired version falls forward to the oldest supported one, named in the answer's header.
    version = store.profile.served_version(version)
    if store.shop_closed is not None:
        return _closed(store, version)
    store.bulk.base_url = str(request.url.origin())  # where bulk result URLs point
    query, variables, operation_name = await _read_body(request)
    if store.consume_fault("fail_next_requests"):
        store.stats.failed_requests += 1
        log.info("sandbox %s: injected 503", store.domain)
        return _server_error(store, version, 503)
    return await _run(store, version, query, variables, operation_name)


async def token_grant(request: web.Request) -> web.Response:
    """``POST /admin/oauth/access_token``: the client-credentials grant, form-encoded."""
    store = request.app[SHOPIFY_STORE]
    form = await request.post()
    if form.get("grant_type") != "client_credentials":
        return web.json_response(
            {
                "error": "unsupported_grant_type",
                "error_description": "grant_type must be client_credentials",
            },
            status=400,
        )
    token = store.grant_token(str(form.get("client_id", "")), str(form.get("client_secret", "")))
    if token is None:
        return web.json_response(
            {"error": "invalid_client", "error_description": "Client authentication failed"},
            status=401,
        )
    return web.json_response(
        {
            "access_token": token,
            "scope": ",".join(sorted(store.access_scopes)),
            "expires_in": int(store.granted_token_lifetime),
        }
    )


async def _run(
    store: ShopifyStore,
    version: str,
    query: str,
    variables: dict[str, Any] | None,
    operation_name: str | None,
) -> web.Response:
    schema = schema_for_version(version)
    try:
        document = parse(query)
    except GraphQLError as error:
        return _answer(version, _errors(dict(error.formatted), cost=_cost(store, 0, 0)))
    problems = validate(schema, document)
    if problems:
        formatted = (dict(problem.formatted) for problem in problems)
        return _answer(version, _errors(*formatted, cost=_cost(store, 0, 0)))
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        message = (
            f"No operation named '{operation_name}'"
            if operation_name
            else "An operation name is required when the document holds several operations"
        )
        return _answer(version, _errors({"message": message}, cost=_cost(store, 0, 0)))
    label = operation_name or (operation.name.value if operation.name else "anonymous")
    store.stats.by_operation[label] += 1
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    requested = requested_cost(schema, operation, fragments, variables)
    mutation = operation.operation == OperationType.MUTATION
    if store.consume_fault("fail_next_mutations" if mutation else "fail_next_queries"):
        store.stats.failed_requests += 1
        log.info("sandbox %s: injected 503 on %s (not run)", store.domain, label)
        return _server_error(store, version, 503)
    if store.consume_fault("throttle_next"):
        return _throttled(store, version, requested)
    if requested > SINGLE_QUERY_MAX_COST:
        too_costly = {
            "message": (
                f"Query cost is {requested}, which exceeds the single query max cost limit "
                f"({SINGLE_QUERY_MAX_COST})."
            ),
            "extensions": {
                "code": "MAX_COST_EXCEEDED",
                "cost": requested,
                "maxCost": SINGLE_QUERY_MAX_COST,
            },
        }
        return _answer(version, _errors(too_costly, cost=_cost(store, requested, None)))
    if not store.bucket.try_take(requested):
        return _throttled(store, version, requested)
    context = RequestContext(store, version)
    result = await _execute(schema, document, context, variables, operation_name)
    actual = actual_cost(schema, operation, fragments, variables, result.data)
    store.bucket.refund(requested - actual)
    body: dict[str, Any] = {}
    if result.errors:
        body["errors"] = [error.formatted for error in result.errors]
    if result.data is not None:
        body["data"] = result.data
    body["extensions"] = {"cost": _cost(store, requested, actual)}
    if context.search:
        body["extensions"]["search"] = context.search
    if _is_executed_mutation(operation, result):
        store.stats.mutations += 1
        if store.consume_fault("drop_next_mutation_responses"):
            store.stats.dropped_responses += 1
            log.info("sandbox %s: mutation stored, answer dropped (502)", store.domain)
            return _server_error(store, version, 502)
        if store.consume_fault("hold_mutation_responses"):
            store.stats.held_responses += 1
            log.info("sandbox %s: mutation stored, answer held", store.domain)
            await store.wait_for_release()
    return _answer(version, body)


async def _execute(
    schema: GraphQLSchema,
    document: Any,
    context: RequestContext,
    variables: dict[str, Any] | None,
    operation_name: str | None,
) -> ExecutionResult:
    outcome = execute(
        schema,
        document,
        context_value=context,
        variable_values=variables,
        operation_name=operation_name,
    )
    if inspect.isawaitable(outcome):
        outcome = await outcome
    assert isinstance(outcome, ExecutionResult)
    return outcome


def _is_executed_mutation(operation: OperationDefinitionNode, result: ExecutionResult) -> bool:
    """A mutation that reached its resolver and returned a payload (not an error or null)."""
    if operation.operation != OperationType.MUTATION or not result.data:
        return False
    return any(value is not None for value in result.data.values())


def build_app(store: ShopifyStore) -> web.Application:
    """The sandbox for ``store``: the GraphQL endpoint plus the ``/_sandbox/`` control routes."""
    app = web.Application()
    app[SHOPIFY_STORE] = store

    async def release_held(_app: web.Application) -> None:
        store.release_held_responses()

    app.on_shutdown.append(release_held)
    app.cleanup_ctx.append(store.webhooks.background)
    app.router.add_post("/admin/api/{version}/graphql.json", graphql_endpoint)
    app.router.add_post("/admin/oauth/access_token", token_grant)
    SandboxControl(store).add_routes(app.router)
    add_bulk_routes(app, store)
    return app


async def start_sandbox_server(
    store: ShopifyStore, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Serve ``store`` on ``host:port`` (0: any free port); returns the runner and base URL.

    Stop it with ``await runner.cleanup()``. The GraphQL endpoint is
    ``{base_url}/admin/api/{version}/graphql.json``.
    """
    runner = web.AppRunner(build_app(store), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = port
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            bound_port = int(address[1])
            break
    base_url = f"http://{host}:{bound_port}"
    log.info("Shopify sandbox for %s at %s", store.domain, base_url)
    return runner, base_url
