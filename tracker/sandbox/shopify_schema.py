"""The sandbox's executable GraphQL schema: ``shopify_schema.graphql`` plus resolvers.

One schema per set of enum values an API version lacks: a request on 2025-07 gets a schema
without ``FulfillmentEventStatus.CARRIER_PICKED_UP``, so graphql-core rejects that value exactly
where Shopify does (variable coercion or validation) and nothing runs. Events stored with a
status newer than the request's version are served as their stand-in (``IN_TRANSIT``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from graphql import (
    EnumTypeDefinitionNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    build_ast_schema,
    parse,
)

from tracker.sandbox.order_search import order_matches, search_warnings
from tracker.sandbox.pagination import PaginationError, SortKey, paginate
from tracker.sandbox.search_query import SearchSyntaxError, parse_search_query
from tracker.sandbox.shopify_bulk import window_connection
from tracker.sandbox.shopify_bulk_api import bind_bulk_resolvers
from tracker.sandbox.shopify_models import (
    FULFILLMENT,
    ORDER,
    SHOP,
    Fulfillment,
    FulfillmentEvent,
    Order,
    gid,
    parse_gid,
)
from tracker.sandbox.shopify_profile import bind_profile_resolvers
from tracker.sandbox.shopify_scalars import bind_scalars
from tracker.sandbox.shopify_store import (
    FulfillmentCancelledError,
    ShopifyStore,
    UnknownObjectError,
)
from tracker.sandbox.shopify_webhook_api import bind_webhook_resolvers

# (enum, value) -> first API version that has it, and the value older versions see instead.
ENUM_VALUES_INTRODUCED: dict[tuple[str, str], tuple[str, str]] = {
    ("FulfillmentEventStatus", "CARRIER_PICKED_UP"): ("2025-10", "IN_TRANSIT"),
    ("FulfillmentEventStatus", "DELAYED"): ("2025-01", "IN_TRANSIT"),
}
API_VERSION = re.compile(r"^(?:\d{4}-(?:0[1-9]|1[0-2])|unstable)$")


@dataclass
class RequestContext:
    """What resolvers of one request share: the store, the API version, search warnings."""

    store: ShopifyStore
    api_version: str
    search: list[dict[str, Any]] = field(default_factory=list)
    bulk_nodes: list[Any] | None = None
    """A bulk operation's window: the root connection returns exactly these nodes."""


if TYPE_CHECKING:
    Info = GraphQLResolveInfo[RequestContext]


def version_has(api_version: str, introduced_in: str) -> bool:
    """Whether ``api_version`` (``YYYY-MM`` or ``unstable``) is ``introduced_in`` or newer."""
    return api_version == "unstable" or api_version >= introduced_in


def missing_enum_values(api_version: str) -> frozenset[tuple[str, str]]:
    """The ``(enum, value)`` pairs of the SDL that ``api_version`` does not have yet."""
    return frozenset(
        pair
        for pair, (since, _) in ENUM_VALUES_INTRODUCED.items()
        if not version_has(api_version, since)
    )


def sdl() -> str:
    """The schema's SDL text, as shipped in the package."""
    return resources.files("tracker.sandbox").joinpath("shopify_schema.graphql").read_text()


def schema_for_version(api_version: str) -> GraphQLSchema:
    """The executable schema for an API version (built once per distinct set of enum values)."""
    return _build_schema(missing_enum_values(api_version))


@functools.cache
def _build_schema(missing: frozenset[tuple[str, str]]) -> GraphQLSchema:
    document = parse(sdl())
    definitions = []
    for definition in document.definitions:
        if isinstance(definition, EnumTypeDefinitionNode) and definition.values:
            kept = tuple(
                value
                for value in definition.values
                if (definition.name.value, value.name.value) not in missing
            )
            definition = EnumTypeDefinitionNode(
                name=definition.name,
                description=definition.description,
                directives=definition.directives,
                values=kept,
            )
        definitions.append(definition)
    schema = build_ast_schema(type(document)(definitions=tuple(definitions)))
    bind_scalars(schema)
    _bind_resolvers(schema)
    return schema


# -- resolvers ---------------------------------------------------------------------------------


def _context(info: Info) -> RequestContext:
    return info.context


def _id_of(value: str, type_name: str) -> int | None:
    """The legacy id in a gid of ``type_name``; None for another type; an error if no gid."""
    parsed = parse_gid(value)
    if parsed is None:
        raise GraphQLError(
            f"Invalid global id '{value}'", extensions={"code": "argumentLiteralsIncompatible"}
        )
    return parsed[1] if parsed[0] == type_name else None


def _page(items: list[Any], key: Any, args: dict[str, Any]) -> dict[str, Any]:
    try:
        return paginate(
            items,
            key,
            first=args.get("first"),
            after=args.get("after"),
            last=args.get("last"),
            before=args.get("before"),
            reverse=bool(args.get("reverse")),
        ).as_connection()
    except PaginationError as error:
        raise GraphQLError(str(error)) from error


def _order_key(sort_key: str) -> Any:
    def by(order: Order) -> SortKey:
        if sort_key in ("CREATED_AT", "PROCESSED_AT"):
            return order.created_at.timestamp(), order.id
        if sort_key == "UPDATED_AT":
            return order.updated_at.timestamp(), order.id
        if sort_key == "ORDER_NUMBER":
            return float(order.number), order.id
        return float(order.id), order.id

    return by


def _protected(name: str) -> Any:
    """Customer data: refused like Shopify when the app lacks protected customer data access."""

    def resolve(source: Any, info: Info) -> Any:
        if not _context(info).store.protected_customer_data:
            raise GraphQLError(
                f"This app is not approved to access the {name} field. See "
                "https://shopify.dev/docs/apps/launch/protected-customer-data for more details.",
                extensions={"code": "ACCESS_DENIED"},
            )
        return getattr(source, name)

    return resolve


def resolve_orders(_root: object, info: Info, **args: Any) -> dict[str, Any]:
    context = _context(info)
    if context.bulk_nodes is not None:
        return window_connection(context.bulk_nodes)
    text = args.get("query")
    try:
        query = parse_search_query(text)
    except SearchSyntaxError as error:
        raise GraphQLError(f"Invalid search query {text!r}: {error}") from error
    warnings = search_warnings(query)
    if warnings:
        context.search.append(
            {"path": list(info.path.as_list()), "query": text, "warnings": warnings}
        )
    matching = [order for order in context.store.visible_orders() if order_matches(order, query)]
    return _page(matching, _order_key(args.get("sortKey") or "PROCESSED_AT"), args)


def resolve_order(_root: object, info: Info, id: str) -> Order | None:
    number = _id_of(id, ORDER)
    try:
        return None if number is None else _context(info).store.order(number)
    except UnknownObjectError:
        return None


def resolve_fulfillment(_root: object, info: Info, id: str) -> Fulfillment | None:
    number = _id_of(id, FULFILLMENT)
    try:
        return None if number is None else _context(info).store.fulfillment(number)
    except UnknownObjectError:
        return None


def resolve_shop(_root: object, info: Info) -> dict[str, Any]:
    store = _context(info).store
    return {
        "id": gid(SHOP, 1),
        "name": store.shop_name,
        "email": f"owner@{store.domain}",
        "myshopifyDomain": store.domain,
        "plan": store.profile.plan(),
    }


def resolve_fulfillment_events(
    fulfillment: Fulfillment, _info: Info, **args: Any
) -> dict[str, Any]:
    def by(event: FulfillmentEvent) -> SortKey:
        if args.get("sortKey") == "HAPPENED_AT":
            return event.happened_at.timestamp(), event.id
        return float(event.id), event.id

    return _page(list(fulfillment.events), by, args)


def resolve_event_status(event: FulfillmentEvent, info: Info) -> str:
    """The event's status, or its stand-in when the request's API version lacks it."""
    since, stand_in = ENUM_VALUES_INTRODUCED.get(("FulfillmentEventStatus", event.status), ("", ""))
    if since and not version_has(_context(info).api_version, since):
        return stand_in
    return event.status


def _user_error(message: str) -> dict[str, Any]:
    return {
        "fulfillmentEvent": None,
        "userErrors": [{"field": ["fulfillmentEvent", "fulfillmentId"], "message": message}],
    }


def resolve_fulfillment_event_create(
    _root: object, info: Info, fulfillmentEvent: dict[str, Any]
) -> dict[str, Any]:
    store = _context(info).store
    event_input = fulfillmentEvent
    number = _id_of(event_input["fulfillmentId"], FULFILLMENT)
    if number is None:
        return _user_error("Fulfillment does not exist.")
    try:
        event = store.create_event(
            number,
            event_input["status"],
            happened_at=event_input.get("happenedAt"),
            estimated_delivery_at=event_input.get("estimatedDeliveryAt"),
            message=event_input.get("message"),
            address1=event_input.get("address1"),
            city=event_input.get("city"),
            province=event_input.get("province"),
            country=event_input.get("country"),
            zip=event_input.get("zip"),
            latitude=event_input.get("latitude"),
            longitude=event_input.get("longitude"),
        )
    except UnknownObjectError:
        return _user_error("Fulfillment does not exist.")
    except FulfillmentCancelledError:
        return _user_error("Cannot create a fulfillment event for a cancelled fulfillment.")
    return {"fulfillmentEvent": event, "userErrors": []}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _attribute(name: str) -> Any:
    attribute = _snake(name)

    def resolve(source: object, _info: Info, **_args: Any) -> Any:
        return getattr(source, attribute)

    return resolve


def _bind(type_: Any, resolvers: dict[str, Any]) -> None:
    """Resolve every field of a model-backed type: ``resolvers`` first, else the attribute."""
    assert isinstance(type_, GraphQLObjectType)
    for name, definition in type_.fields.items():
        definition.resolve = resolvers.get(name) or _attribute(name)


def _limited(attribute: str) -> Any:
    def resolve(source: object, _info: Info, first: int | None = None) -> Any:
        values = list(getattr(source, attribute))
        return values if first is None else values[: max(first, 0)]

    return resolve


def _bind_resolvers(schema: GraphQLSchema) -> None:
    query = schema.query_type
    mutation = schema.mutation_type
    assert query is not None
    assert mutation is not None
    query.fields["orders"].resolve = resolve_orders
    query.fields["order"].resolve = resolve_order
    query.fields["fulfillment"].resolve = resolve_fulfillment
    query.fields["shop"].resolve = resolve_shop
    mutation.fields["fulfillmentEventCreate"].resolve = resolve_fulfillment_event_create
    bind_bulk_resolvers(schema)
    bind_webhook_resolvers(schema)
    bind_profile_resolvers(schema)
    common = {
        "id": lambda source, _info: source.gid,
        "legacyResourceId": lambda source, _info: source.id,
    }
    _bind(
        schema.type_map["Order"],
        {
            **common,
            "displayFulfillmentStatus": _attribute("displayFulfillmentStatus"),
            "fulfillments": _limited("fulfillments"),
            "email": _protected("email"),
            "customer": _protected("customer"),
        },
    )
    _bind(schema.type_map["Customer"], common)
    _bind(
        schema.type_map["Fulfillment"],
        {
            **common,
            "requiresShipping": lambda _source, _info: True,
            "totalQuantity": lambda source, _info: source.quantity,
            "trackingInfo": _limited("tracking"),
            "events": resolve_fulfillment_events,
            "order": lambda source, info: _context(info).store.order(source.order_id),
        },
    )
    _bind(schema.type_map["FulfillmentEvent"], {**common, "status": resolve_event_status})
    _bind(schema.type_map["FulfillmentTrackingInfo"], {})
