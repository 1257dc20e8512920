"""The local Shopify Admin GraphQL sandbox: a real aiohttp server on 127.0.0.1.

Pure parts (search syntax) are tested directly; everything else over HTTP, with the store's
clocks replaced so that bucket refills and timestamps move only when a test says so.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import graphql
import pytest

from tracker.sandbox.cost import requested_cost
from tracker.sandbox.search_query import (
    And,
    Not,
    Or,
    SearchSyntaxError,
    Term,
    evaluate,
    parse_search_query,
)
from tracker.sandbox.shopify_app import start_sandbox_server
from tracker.sandbox.shopify_schema import schema_for_version, sdl
from tracker.sandbox.shopify_store import ShopifyStore

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = REPO / "tracker" / "shopify" / "graphql"
REAL_SCHEMA = REPO.parent / "shared" / "specs" / "shopify" / "admin-2025-01.schema.json.gz"
# Enum values newer than the 2025-01 schema file (see ../shared/specs/README.md).
NEWER_ENUM_VALUES = {("FulfillmentEventStatus", "CARRIER_PICKED_UP")}
TOKEN = "shpat_test_token"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def document(name: str) -> str:
    return (DOCUMENTS / f"{name}.graphql").read_text()


# -- search syntax (pure) ----------------------------------------------------------------------


def test_search_terms_are_anded_implicitly_and_keep_comparators_and_quotes() -> None:
    parsed = parse_search_query(
        "fulfillment_status:shipped updated_at:>='2026-01-01T00:00:00Z' name:\"#10 01\""
    )
    assert parsed == And(
        (
            Term("fulfillment_status", ":", "shipped"),
            Term("updated_at", ">=", "2026-01-01T00:00:00Z"),
            Term("name", ":", "#10 01"),
        )
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id:<5", Term("id", "<", "5")),
        ("id:<=5", Term("id", "<=", "5")),
        ("id:>5", Term("id", ">", "5")),
        ("created_at:<'2026-01-01'", Term("created_at", "<", "2026-01-01")),
        ("hello", Term(None, ":", "hello")),
    ],
)
def test_search_comparators(text: str, expected: Term) -> None:
    assert parse_search_query(text) == expected


def test_search_and_binds_tighter_than_or_and_parentheses_regroup() -> None:
    a, b, c = Term("a", ":", "1"), Term("b", ":", "2"), Term("c", ":", "3")
    assert parse_search_query("a:1 OR b:2 AND c:3") == Or((a, And((b, c))))
    assert parse_search_query("(a:1 OR b:2) c:3") == And((Or((a, b)), c))


def test_search_negation_by_dash_and_not() -> None:
    closed = Term("status", ":", "closed")
    assert parse_search_query("-status:closed") == Not(closed)
    assert parse_search_query("NOT status:closed") == Not(closed)
    assert parse_search_query("NOT (status:closed OR id:1)") == Not(
        Or((closed, Term("id", ":", "1")))
    )


def test_lowercase_connectives_are_plain_words() -> None:
    assert parse_search_query("a and b") == And(
        (Term(None, ":", "a"), Term(None, ":", "and"), Term(None, ":", "b"))
    )


@pytest.mark.parametrize("text", ["(status:open", "status:open OR", "name:'#1001", "NOT", ")"])
def test_search_syntax_errors(text: str) -> None:
    with pytest.raises(SearchSyntaxError):
        parse_search_query(text)


def test_ignored_terms_neither_narrow_nor_widen() -> None:
    def match(term: Term) -> bool | None:
        return None if term.field == "unknown" else term.value == "yes"

    assert evaluate(parse_search_query("unknown:x"), match)
    assert evaluate(parse_search_query("unknown:x a:yes"), match)
    assert not evaluate(parse_search_query("unknown:x AND a:no"), match)
    assert not evaluate(parse_search_query("unknown:x OR a:no"), match)
    assert not evaluate(parse_search_query("-unknown:x a:no"), match)
    assert evaluate(parse_search_query(""), match)


# -- the SDL is a faithful subset of Shopify's schema ------------------------------------------


def test_sdl_is_a_subset_of_shopifys_admin_schema() -> None:
    if not REAL_SCHEMA.exists():
        pytest.skip(f"{REAL_SCHEMA} is absent (../shared is only beside the checkout in CI)")
    with gzip.open(REAL_SCHEMA) as handle:
        real = graphql.build_client_schema(json.load(handle)["data"])
    ours = graphql.build_schema(sdl())
    assert ours.query_type is not None
    assert ours.mutation_type is not None
    assert real.query_type is not None
    assert real.mutation_type is not None
    assert (ours.query_type.name, ours.mutation_type.name) == (
        real.query_type.name,
        real.mutation_type.name,
    )
    problems: list[str] = []
    for name, ours_type in ours.type_map.items():
        if name.startswith("__"):
            continue
        real_type = real.type_map.get(name)
        if real_type is None or type(real_type) is not type(ours_type):
            problems.append(f"type {name} missing or of another kind")
            continue
        if isinstance(ours_type, graphql.GraphQLEnumType):
            assert isinstance(real_type, graphql.GraphQLEnumType)
            extra = set(ours_type.values) - set(real_type.values)
            problems += [
                f"enum value {name}.{v}" for v in extra if (name, v) not in NEWER_ENUM_VALUES
            ]
        if isinstance(ours_type, graphql.GraphQLObjectType | graphql.GraphQLInputObjectType):
            assert isinstance(real_type, type(ours_type))
            for field_name, field in ours_type.fields.items():
                real_field = real_type.fields.get(field_name)
                if real_field is None or str(real_field.type) != str(field.type):
                    problems.append(f"field {name}.{field_name}: {field.type}")
                    continue
                for arg_name, arg in getattr(field, "args", {}).items():
                    real_arg = real_field.args.get(arg_name)
                    if real_arg is None or str(real_arg.type) != str(arg.type):
                        problems.append(f"argument {name}.{field_name}({arg_name})")
                    elif real_arg.default_value != arg.default_value:
                        problems.append(f"default of {name}.{field_name}({arg_name})")
    assert problems == []


def test_the_client_documents_validate_against_the_sandbox_schema() -> None:
    schema = graphql.build_schema(sdl())
    for path in sorted(DOCUMENTS.glob("*.graphql")):
        errors = graphql.validate(schema, graphql.parse(path.read_text()))
        assert errors == [], path.name


@pytest.mark.parametrize(
    ("name", "variables", "cost"),
    [
        # 2 + 249 orders x (order 1 + customer 1 + fulfillment 1 + trackingInfo 1): under the
        # 1000 limit, so sync.page_size is at most 249.
        ("FulfilledOrders", {"first": 249, "query": ""}, 998),
        ("FulfillmentEvents", {"id": "gid://shopify/Fulfillment/1"}, 1 + 2 + 50),
        ("FulfillmentEventCreate", {}, 10),
        ("ShopInfo", {}, 1),
    ],
)
def test_requested_cost_of_the_client_documents(
    name: str, variables: dict[str, Any], cost: int
) -> None:
    schema = schema_for_version("2025-10")
    parsed = graphql.parse(document(name))
    operation = graphql.get_operation_ast(parsed)
    assert operation is not None
    assert requested_cost(schema, operation, {}, variables) == cost


# -- HTTP fixtures -----------------------------------------------------------------------------


@dataclass
class Clock:
    """Wall clock and monotonic clock of the store, moved by the tests."""

    wall: datetime = T0
    seconds: float = 0.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        self.seconds += seconds
        self.wall += timedelta(seconds=seconds)


@dataclass
class Sandbox:
    store: ShopifyStore
    clock: Clock
    base_url: str
    http: aiohttp.ClientSession

    def url(self, version: str = "2025-10") -> str:
        return f"{self.base_url}/admin/api/{version}/graphql.json"

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        version: str = "2025-10",
        token: str = TOKEN,
    ) -> tuple[int, Any]:
        async with self.http.post(
            self.url(version),
            json={"query": query, "variables": variables or {}},
            headers={"X-Shopify-Access-Token": token},
        ) as response:
            if response.content_type != "application/json":
                return response.status, await response.text()
            return response.status, await response.json()

    async def control(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(method, self.base_url + path, json=body) as response:
            return response.status, await response.json()

    async def create_event(
        self, fulfillment_id: str, status: str, *, version: str = "2025-10", **extra: Any
    ) -> tuple[int, Any]:
        variables = {"fulfillmentEvent": {"fulfillmentId": fulfillment_id, "status": status}}
        variables["fulfillmentEvent"].update(extra)
        return await self.post(document("FulfillmentEventCreate"), variables, version=version)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    clock = Clock()
    store = ShopifyStore("test-shop.myshopify.com", TOKEN, now=clock.now, monotonic=clock.monotonic)
    runner, base_url = await start_sandbox_server(store)
    async with aiohttp.ClientSession() as http:
        yield Sandbox(store, clock, base_url, http)
    await runner.cleanup()


# -- transport -------------------------------------------------------------------------------


async def test_wrong_or_missing_token_is_401_like_shopify(sandbox: Sandbox) -> None:
    status, body = await sandbox.post("{ shop { name } }", token="shpat_wrong")
    assert status == 401
    assert body == {
        "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
    }
    async with sandbox.http.post(sandbox.url(), json={"query": "{ shop { name } }"}) as response:
        assert response.status == 401
    assert sandbox.store.stats.requests == 0
    assert sandbox.store.stats.unauthorized == 2


@pytest.mark.parametrize("version", ["2025-13", "v1", "2025-1", "latest"])
async def test_unknown_api_version_is_404(sandbox: Sandbox, version: str) -> None:
    status, _ = await sandbox.post("{ shop { name } }", version=version)
    assert status == 404


@pytest.mark.parametrize("version", ["2025-01", "2025-10", "unstable"])
async def test_known_api_versions_answer(sandbox: Sandbox, version: str) -> None:
    status, body = await sandbox.post(document("ShopInfo"), version=version)
    assert status == 200
    assert body["data"]["shop"] == {
        "name": "Test Shop",
        "myshopifyDomain": "test-shop.myshopify.com",
    }


async def test_bad_json_body_is_400(sandbox: Sandbox) -> None:
    for payload in (b"{not json", b'{"variables": {}}', b"[1]"):
        async with sandbox.http.post(
            sandbox.url(),
            data=payload,
            headers={"X-Shopify-Access-Token": TOKEN, "Content-Type": "application/json"},
        ) as response:
            assert response.status == 400
            assert (await response.json())["errors"]["query"]


async def test_invalid_document_answers_errors_without_running(sandbox: Sandbox) -> None:
    status, body = await sandbox.post("{ shop { nope } }")
    assert status == 200
    assert "nope" in body["errors"][0]["message"]
    assert "data" not in body
    assert body["extensions"]["cost"]["actualQueryCost"] == 0
    status, body = await sandbox.post("{ shop { name }")
    assert status == 200
    assert "Syntax Error" in body["errors"][0]["message"]


# -- the client's documents --------------------------------------------------------------------


async def test_fulfilled_orders_document_returns_orders_with_tracking(sandbox: Sandbox) -> None:
    store = sandbox.store
    shipped = store.add_order(
        fulfillments=[[("DHL", "JD0001", "https://dhl.example/JD0001"), ("DHL", "JD0002", None)]],
        created_at=T0 - timedelta(days=3),
    )
    partial = store.add_order(fulfillments=[[("UPS", "1Z999", None)]], unfulfilled_items=1)
    store.add_order()  # unfulfilled: not in a shipped/partial search
    sandbox.clock.advance(60)
    cancelled = store.add_order(fulfillments=[[("USPS", "9400", None)]])
    store.cancel_order(cancelled.id)

    status, body = await sandbox.post(
        document("FulfilledOrders"),
        {"first": 50, "query": "fulfillment_status:shipped OR fulfillment_status:partial"},
    )
    assert status == 200
    nodes = body["data"]["orders"]["nodes"]
    assert [node["name"] for node in nodes] == [shipped.name, partial.name, cancelled.name]
    first = nodes[0]
    assert first["id"] == f"gid://shopify/Order/{shipped.id}"
    assert first["displayFulfillmentStatus"] == "FULFILLED"
    assert first["cancelledAt"] is None
    assert first["fulfillments"] == [
        {
            "id": f"gid://shopify/Fulfillment/{shipped.fulfillments[0].id}",
            "status": "SUCCESS",
            "createdAt": "2026-02-27T09:00:00Z",
            "updatedAt": "2026-02-27T09:00:00Z",
            "estimatedDeliveryAt": None,
            "trackingInfo": [
                {"company": "DHL", "number": "JD0001", "url": "https://dhl.example/JD0001"},
                {"company": "DHL", "number": "JD0002", "url": None},
            ],
        }
    ]
    assert nodes[1]["displayFulfillmentStatus"] == "PARTIALLY_FULFILLED"
    assert nodes[2]["cancelledAt"] == "2026-03-02T09:01:00Z"
    assert body["data"]["orders"]["pageInfo"]["hasNextPage"] is False
    assert body["extensions"]["cost"]["requestedQueryCost"] == 2 + 50 * 4  # with customer


async def test_order_search_fields(sandbox: Sandbox) -> None:
    store = sandbox.store
    old = store.add_order(fulfillments=[[("DHL", "1", None)]], email="ann@example.com")
    sandbox.clock.advance(3600)
    new = store.add_order(fulfillments=[[("DHL", "2", None)]])
    closed = store.add_order(fulfillments=[[("DHL", "3", None)]])
    store.close_order(closed.id)
    cancelled = store.add_order()
    store.cancel_order(cancelled.id)
    unshipped = store.add_order()

    async def names(search: str) -> list[str]:
        status, body = await sandbox.post(
            "query($q: String) { orders(first: 250, query: $q) { nodes { name } } }", {"q": search}
        )
        assert status == 200, body
        return [node["name"] for node in body["data"]["orders"]["nodes"]]

    everything = [o.name for o in (old, new, closed, cancelled, unshipped)]
    assert await names("") == everything
    assert await names("status:any") == everything
    assert await names("status:open") == [old.name, new.name, unshipped.name]
    assert await names("status:closed") == [closed.name, cancelled.name]
    assert await names("status:cancelled") == [cancelled.name]
    assert await names("fulfillment_status:unshipped") == [cancelled.name, unshipped.name]
    assert await names("-fulfillment_status:unfulfilled") == [old.name, new.name, closed.name]
    assert await names("updated_at:<'2026-03-02T09:30:00Z'") == [old.name]
    assert await names("created_at:>='2026-03-02T10:00:00Z' status:open") == [
        new.name,
        unshipped.name,
    ]
    assert await names(f"name:{new.name} OR id:{old.id}") == [old.name, new.name]
    assert await names("NOT (status:closed OR fulfillment_status:unshipped)") == [
        old.name,
        new.name,
    ]
    assert await names("ann@example.com") == [old.name]
    assert await names("bogus_field:1 status:cancelled") == [cancelled.name]


async def test_unknown_search_field_is_ignored_with_a_warning(sandbox: Sandbox) -> None:
    sandbox.store.add_order()
    status, body = await sandbox.post('{ orders(first: 5, query: "colour:red") { nodes { id } } }')
    assert status == 200
    assert len(body["data"]["orders"]["nodes"]) == 1
    assert body["extensions"]["search"][0]["warnings"][0]["field"] == "colour"


async def test_fulfillment_events_document_pages_events_by_happened_at(sandbox: Sandbox) -> None:
    order = sandbox.store.add_order(fulfillments=[[("DHL", "JD1", None)]])
    fulfillment = order.fulfillments[0]
    for hours, status in ((5, "DELIVERED"), (1, "IN_TRANSIT"), (3, "OUT_FOR_DELIVERY")):
        sandbox.store.create_event(
            fulfillment.id, status, happened_at=T0 + timedelta(hours=hours), message=status
        )
    status, body = await sandbox.post(document("FulfillmentEvents"), {"id": fulfillment.gid})
    assert status == 200
    data = body["data"]["fulfillment"]
    assert data["id"] == fulfillment.gid
    assert [(n["status"], n["happenedAt"]) for n in data["events"]["nodes"]] == [
        ("IN_TRANSIT", "2026-03-02T10:00:00Z"),
        ("OUT_FOR_DELIVERY", "2026-03-02T12:00:00Z"),
        ("DELIVERED", "2026-03-02T14:00:00Z"),
    ]
    assert data["events"]["nodes"][0]["id"].startswith("gid://shopify/FulfillmentEvent/")

    query = """query($id: ID!, $after: String) { fulfillment(id: $id) {
        events(first: 2, after: $after, sortKey: HAPPENED_AT, reverse: true) {
          edges { cursor node { status } } pageInfo { hasNextPage endCursor } } } }"""
    _, page1 = await sandbox.post(query, {"id": fulfillment.gid})
    events1 = page1["data"]["fulfillment"]["events"]
    assert [e["node"]["status"] for e in events1["edges"]] == ["DELIVERED", "OUT_FOR_DELIVERY"]
    assert events1["pageInfo"]["hasNextPage"] is True
    _, page2 = await sandbox.post(
        query, {"id": fulfillment.gid, "after": events1["pageInfo"]["endCursor"]}
    )
    events2 = page2["data"]["fulfillment"]["events"]
    assert [e["node"]["status"] for e in events2["edges"]] == ["IN_TRANSIT"]
    assert events2["pageInfo"]["hasNextPage"] is False


async def test_unknown_fulfillment_reads_as_null_and_bad_gid_is_an_error(
    sandbox: Sandbox,
) -> None:
    _, body = await sandbox.post(
        document("FulfillmentEvents"), {"id": "gid://shopify/Fulfillment/1"}
    )
    assert body["data"]["fulfillment"] is None
    _, body = await sandbox.post(document("FulfillmentEvents"), {"id": "12345"})
    assert body["errors"][0]["message"] == "Invalid global id '12345'"


# -- pagination --------------------------------------------------------------------------------

ORDER_PAGE = """query($first: Int, $after: String, $last: Int, $before: String, $reverse: Boolean,
                      $sortKey: OrderSortKeys) {
  orders(first: $first, after: $after, last: $last, before: $before, reverse: $reverse,
         sortKey: $sortKey) {
    edges { cursor node { legacyResourceId updatedAt } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


async def test_cursor_pagination_over_600_orders(sandbox: Sandbox) -> None:
    store = sandbox.store
    created = [store.add_order() for _ in range(600)]
    # Touch orders out of id order, so UPDATED_AT order differs from id order.
    for order in created[::-7]:
        sandbox.clock.advance(1)
        store.add_fulfillment(order.id, [("DHL", f"N{order.id}", None)])
    expected = [
        str(o.id) for o in sorted(store.orders(), key=lambda order: (order.updated_at, order.id))
    ]

    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        sandbox.clock.advance(10)  # let the bucket refill between pages
        status, body = await sandbox.post(
            ORDER_PAGE, {"first": 250, "after": after, "sortKey": "UPDATED_AT"}
        )
        assert status == 200, body
        connection = body["data"]["orders"]
        seen += [edge["node"]["legacyResourceId"] for edge in connection["edges"]]
        pages += 1
        assert connection["pageInfo"]["hasPreviousPage"] is (after is not None)
        assert connection["pageInfo"]["endCursor"] == connection["edges"][-1]["cursor"]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert pages == 3
    assert seen == expected

    # Backwards from the end with last/before, and reverse, give the same orders.
    _, tail = await sandbox.post(ORDER_PAGE, {"last": 100, "sortKey": "UPDATED_AT"})
    tail_ids = [e["node"]["legacyResourceId"] for e in tail["data"]["orders"]["edges"]]
    assert tail_ids == expected[-100:]
    assert tail["data"]["orders"]["pageInfo"]["hasPreviousPage"] is True
    before = tail["data"]["orders"]["pageInfo"]["startCursor"]
    _, previous = await sandbox.post(
        ORDER_PAGE, {"last": 5, "before": before, "sortKey": "UPDATED_AT"}
    )
    assert [e["node"]["legacyResourceId"] for e in previous["data"]["orders"]["edges"]] == (
        expected[-105:-100]
    )
    _, reverse = await sandbox.post(ORDER_PAGE, {"first": 3, "reverse": True, "sortKey": "ID"})
    assert [e["node"]["legacyResourceId"] for e in reverse["data"]["orders"]["edges"]] == [
        str(o.id) for o in reversed(created[-3:])
    ]


async def test_cursor_survives_an_update_of_a_seen_order(sandbox: Sandbox) -> None:
    store = sandbox.store
    orders = [store.add_order() for _ in range(4)]
    _, body = await sandbox.post(ORDER_PAGE, {"first": 2, "sortKey": "UPDATED_AT"})
    cursor = body["data"]["orders"]["pageInfo"]["endCursor"]
    store.cancel_order(orders[0].id)  # moves to the end of UPDATED_AT order
    _, body = await sandbox.post(
        ORDER_PAGE, {"first": 10, "after": cursor, "sortKey": "UPDATED_AT"}
    )
    assert [e["node"]["legacyResourceId"] for e in body["data"]["orders"]["edges"]] == [
        str(orders[2].id),
        str(orders[3].id),
        str(orders[0].id),
    ]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"first": 251}, "cannot exceed 250"),
        ({}, "you must provide one of first or last"),
        ({"first": 1, "after": "not-a-cursor"}, "Invalid cursor"),
    ],
)
async def test_bad_page_arguments_are_errors(
    sandbox: Sandbox, variables: dict[str, Any], message: str
) -> None:
    sandbox.store.add_order()
    status, body = await sandbox.post(ORDER_PAGE, variables)
    assert status == 200
    assert message in body["errors"][0]["message"]
    assert body.get("data") is None


# -- fulfillmentEventCreate --------------------------------------------------------------------


async def test_event_create_stores_the_event_and_moves_the_fulfillment(sandbox: Sandbox) -> None:
    store = sandbox.store
    order = store.add_order(fulfillments=[[("DHL", "JD1", None)]])
    fulfillment = order.fulfillments[0]
    before = order.updated_at

    status, body = await sandbox.create_event(
        fulfillment.gid,
        "IN_TRANSIT",
        happenedAt="2026-03-01T08:00:00Z",
        message="Departed hub",
        city="Leipzig",
        country="DE",
        estimatedDeliveryAt="2026-03-04T18:00:00Z",
    )
    assert status == 200
    payload = body["data"]["fulfillmentEventCreate"]
    assert payload["userErrors"] == []
    assert payload["fulfillmentEvent"]["status"] == "IN_TRANSIT"
    assert payload["fulfillmentEvent"]["happenedAt"] == "2026-03-01T08:00:00Z"
    [stored] = store.events(fulfillment.id)
    assert payload["fulfillmentEvent"]["id"] == stored.gid
    assert (stored.message, stored.city, stored.country) == ("Departed hub", "Leipzig", "DE")
    assert body["extensions"]["cost"]["requestedQueryCost"] == 10
    assert body["extensions"]["cost"]["actualQueryCost"] == 10

    # A second event in the same second still moves updatedAt on.
    await sandbox.create_event(fulfillment.gid, "DELIVERED", happenedAt="2026-03-02T08:30:00Z")
    # An older scan arriving late does not take over the display status.
    await sandbox.create_event(
        fulfillment.gid, "OUT_FOR_DELIVERY", happenedAt="2026-03-02T07:00:00Z"
    )
    assert order.updated_at == before + timedelta(seconds=3)

    query = """query($id: ID!) { fulfillment(id: $id) {
        displayStatus inTransitAt deliveredAt estimatedDeliveryAt updatedAt
        order { updatedAt displayFulfillmentStatus } } }"""
    _, read = await sandbox.post(query, {"id": fulfillment.gid})
    assert read["data"]["fulfillment"] == {
        "displayStatus": "DELIVERED",
        "inTransitAt": "2026-03-01T08:00:00Z",
        "deliveredAt": "2026-03-02T08:30:00Z",
        "estimatedDeliveryAt": "2026-03-04T18:00:00Z",
        "updatedAt": "2026-03-02T09:00:00Z",
        "order": {"updatedAt": "2026-03-02T09:00:03Z", "displayFulfillmentStatus": "FULFILLED"},
    }
    assert store.stats.mutations == 3
    assert store.stats.by_operation["FulfillmentEventCreate"] == 3


async def test_event_happened_at_defaults_to_now(sandbox: Sandbox) -> None:
    order = sandbox.store.add_order(fulfillments=[[("DHL", "JD1", None)]])
    sandbox.clock.advance(90)
    _, body = await sandbox.create_event(order.fulfillments[0].gid, "CONFIRMED")
    assert body["data"]["fulfillmentEventCreate"]["fulfillmentEvent"]["happenedAt"] == (
        "2026-03-02T09:01:30Z"
    )


async def test_event_create_for_unknown_fulfillment_is_a_user_error(sandbox: Sandbox) -> None:
    for missing in ("gid://shopify/Fulfillment/424242", "gid://shopify/FulfillmentOrder/1"):
        status, body = await sandbox.create_event(missing, "IN_TRANSIT")
        assert status == 200
        assert body["data"]["fulfillmentEventCreate"] == {
            "fulfillmentEvent": None,
            "userErrors": [
                {
                    "field": ["fulfillmentEvent", "fulfillmentId"],
                    "message": "Fulfillment does not exist.",
                }
            ],
        }
    status, body = await sandbox.create_event("7000001", "IN_TRANSIT")
    assert body["errors"][0]["message"] == "Invalid global id '7000001'"
    assert sandbox.store.all_events() == []
    assert sandbox.store.stats.mutations == 2


async def test_event_create_for_cancelled_fulfillment_is_a_user_error(sandbox: Sandbox) -> None:
    order = sandbox.store.add_order(fulfillments=[[("DHL", "JD1", None)]])
    fulfillment = order.fulfillments[0]
    status, cancelled = await sandbox.control(
        "POST", f"/_sandbox/fulfillments/{fulfillment.id}/cancel"
    )
    assert status == 200
    assert cancelled["status"] == "CANCELLED"
    _, body = await sandbox.create_event(fulfillment.gid, "IN_TRANSIT")
    payload = body["data"]["fulfillmentEventCreate"]
    assert payload["fulfillmentEvent"] is None
    assert payload["userErrors"][0]["field"] == ["fulfillmentEvent", "fulfillmentId"]
    assert "cancelled" in payload["userErrors"][0]["message"]
    assert sandbox.store.events(fulfillment.id) == []
    _, read = await sandbox.post(
        "query($id: ID!) { fulfillment(id: $id) { status displayStatus } }",
        {"id": fulfillment.gid},
    )
    assert read["data"]["fulfillment"] == {"status": "CANCELLED", "displayStatus": "CANCELED"}


async def test_carrier_picked_up_is_unknown_before_2025_10(sandbox: Sandbox) -> None:
    order = sandbox.store.add_order(fulfillments=[[("DHL", "JD1", None)]])
    fulfillment = order.fulfillments[0]

    status, body = await sandbox.create_event(
        fulfillment.gid, "CARRIER_PICKED_UP", version="2025-07"
    )
    assert status == 200
    assert "data" not in body
    assert "CARRIER_PICKED_UP" in body["errors"][0]["message"]
    assert "$fulfillmentEvent" in body["errors"][0]["message"]
    assert sandbox.store.all_events() == []

    status, body = await sandbox.create_event(
        fulfillment.gid, "CARRIER_PICKED_UP", version="2025-10"
    )
    assert body["data"]["fulfillmentEventCreate"]["fulfillmentEvent"]["status"] == (
        "CARRIER_PICKED_UP"
    )
    assert [e.status for e in sandbox.store.events(fulfillment.id)] == ["CARRIER_PICKED_UP"]

    # Read on an older version, the event shows its stand-in instead of breaking the enum.
    _, read = await sandbox.post(
        document("FulfillmentEvents"), {"id": fulfillment.gid}, version="2025-07"
    )
    assert read["data"]["fulfillment"]["events"]["nodes"][0]["status"] == "IN_TRANSIT"


# -- cost and throttling -----------------------------------------------------------------------


async def test_a_burst_of_mutations_is_throttled_and_the_bucket_refills(sandbox: Sandbox) -> None:
    order = sandbox.store.add_order(fulfillments=[[("DHL", "JD1", None)]])
    fulfillment = order.fulfillments[0]
    answers = []
    for _ in range(101):
        _, body = await sandbox.create_event(fulfillment.gid, "IN_TRANSIT")
        answers.append(body)
    assert all("data" in body for body in answers[:100])
    throttled = answers[100]
    assert throttled["errors"] == [
        {
            "message": "Throttled",
            "extensions": {
                "code": "THROTTLED",
                "documentation": "https://shopify.dev/api/usage/rate-limits",
            },
        }
    ]
    assert throttled["extensions"]["cost"] == {
        "requestedQueryCost": 10,
        "actualQueryCost": None,
        "throttleStatus": {
            "maximumAvailable": 1000.0,
            "currentlyAvailable": 0.0,
            "restoreRate": 50.0,
        },
    }
    assert len(sandbox.store.events(fulfillment.id)) == 100
    assert sandbox.store.stats.throttled == 1

    sandbox.clock.advance(0.1)  # 5 points: still short of a mutation's 10
    _, body = await sandbox.create_event(fulfillment.gid, "IN_TRANSIT")
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 5.0
    sandbox.clock.advance(1)  # 50 more
    _, body = await sandbox.create_event(fulfillment.gid, "DELIVERED")
    assert body["data"]["fulfillmentEventCreate"]["userErrors"] == []
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 45.0
    assert len(sandbox.store.events(fulfillment.id)) == 101


async def test_unused_requested_cost_is_refunded(sandbox: Sandbox) -> None:
    for _ in range(3):
        sandbox.store.add_order()
    _, body = await sandbox.post("{ orders(first: 250) { nodes { id } } }")
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 252
    assert cost["actualQueryCost"] == 5
    assert cost["throttleStatus"]["currentlyAvailable"] == 995.0


async def test_query_over_1000_points_is_max_cost_exceeded(sandbox: Sandbox) -> None:
    sandbox.store.add_order(fulfillments=[[("DHL", "JD1", None)]])
    query = """{ orders(first: 100) { nodes { fulfillments(first: 5) {
        events(first: 250) { nodes { id } } } } } }"""
    status, body = await sandbox.post(query)
    assert status == 200
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert body["extensions"]["cost"]["requestedQueryCost"] == 2 + 100 * (1 + 1 + 2 + 250)
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 1000.0


async def test_request_costing_more_than_available_is_throttled_without_running(
    sandbox: Sandbox,
) -> None:
    sandbox.store.bucket.drain(800)
    order = sandbox.store.add_order(fulfillments=[[("DHL", "JD1", None)]])
    _, body = await sandbox.post(document("FulfilledOrders"), {"first": 100, "query": ""})
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert body["extensions"]["cost"]["requestedQueryCost"] == 402
    _, body = await sandbox.post(document("FulfilledOrders"), {"first": 10, "query": ""})
    assert body["data"]["orders"]["nodes"][0]["id"] == order.gid


# -- faults ------------------------------------------------------------------------------------


async def test_dropped_mutation_response_still_stores_the_event(sandbox: Sandbox) -> None:
    order = sandbox.store.add_order(fulfillments=[[("DHL", "JD1", None)]])
    fulfillment = order.fulfillments[0]
    status, faults = await sandbox.control(
        "POST", "/_sandbox/faults", {"drop_next_mutation_responses": 1}
    )
    assert status == 200
    assert faults["faults"]["drop_next_mutation_responses"] == 1

    status, _ = await sandbox.create_event(fulfillment.gid, "OUT_FOR_DELIVERY")
    assert status == 502
    status, events = await sandbox.control(
        "GET", f"/_sandbox/fulfillments/{quote(fulfillment.gid, safe='')}/events"
    )
    assert status == 200
    assert [e["status"] for e in events["events"]] == ["OUT_FOR_DELIVERY"]
    status, _ = await sandbox.create_event(fulfillment.gid, "DELIVERED")
    assert status == 200  # only the next one was dropped
    assert len(sandbox.store.events(fulfillment.id)) == 2
    assert sandbox.store.stats.dropped_responses == 1


async def test_failed_and_throttled_requests_run_nothing(sandbox: Sandbox) -> None:
    order = sandbox.store.add_order(fulfillments=[[("DHL", "JD1", None)]])
    sandbox.store.fail_next_requests = 1
    sandbox.store.throttle_next = 1
    status, _ = await sandbox.create_event(order.fulfillments[0].gid, "IN_TRANSIT")
    assert status == 503
    status, body = await sandbox.create_event(order.fulfillments[0].gid, "IN_TRANSIT")
    assert status == 200
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert body["extensions"]["cost"]["actualQueryCost"] is None
    assert sandbox.store.all_events() == []
    status, body = await sandbox.create_event(order.fulfillments[0].gid, "IN_TRANSIT")
    assert body["data"]["fulfillmentEventCreate"]["userErrors"] == []
    _, stats = await sandbox.control("GET", "/_sandbox/stats")
    assert stats["failed_requests"] == 1
    assert stats["throttled"] == 1
    assert stats["mutations"] == 1
    assert stats["requests"] == 3
    assert stats["faults"] == {
        "drop_next_mutation_responses": 0,
        "fail_next_requests": 0,
        "fail_next_queries": 0,
        "fail_next_mutations": 0,
        "throttle_next": 0,
        "hold_mutation_responses": 0,
    }


async def test_held_mutation_response_is_stored_and_answered_on_release(
    sandbox: Sandbox,
) -> None:
    order = sandbox.store.add_order(fulfillments=[[("DHL", "JD1", None)]])
    fulfillment = order.fulfillments[0]
    sandbox.store.set_faults(hold_mutation_responses=1)
    call = asyncio.create_task(sandbox.create_event(fulfillment.gid, "IN_TRANSIT"))
    for _ in range(500):
        if sandbox.store.events(fulfillment.id):
            break
        await asyncio.sleep(0.01)
    assert [e.status for e in sandbox.store.events(fulfillment.id)] == ["IN_TRANSIT"]
    assert not call.done()
    assert sandbox.store.stats.held_responses == 1

    status, _ = await sandbox.control("POST", "/_sandbox/held/release")
    assert status == 200
    status, body = await call
    assert status == 200
    assert body["data"]["fulfillmentEventCreate"]["fulfillmentEvent"]["status"] == "IN_TRANSIT"


async def test_held_response_is_let_go_at_shutdown() -> None:
    store = ShopifyStore("held.myshopify.com", TOKEN)
    order = store.add_order(fulfillments=[[("DHL", "JD1", None)]])
    store.hold_mutation_responses = 1
    runner, base_url = await start_sandbox_server(store)
    variables = {
        "fulfillmentEvent": {"fulfillmentId": order.fulfillments[0].gid, "status": "DELIVERED"}
    }
    async with aiohttp.ClientSession() as http:
        call = asyncio.create_task(
            http.post(
                f"{base_url}/admin/api/2025-10/graphql.json",
                json={"query": document("FulfillmentEventCreate"), "variables": variables},
                headers={"X-Shopify-Access-Token": TOKEN},
            )
        )
        for _ in range(500):
            if store.all_events():
                break
            await asyncio.sleep(0.01)
        assert not call.done()
        await asyncio.wait_for(runner.cleanup(), timeout=30)
        response = await call
        assert response.status == 200
        response.release()
    assert len(store.all_events()) == 1


async def test_unknown_fault_is_400(sandbox: Sandbox) -> None:
    status, body = await sandbox.control("POST", "/_sandbox/faults", {"explode": 1})
    assert status == 400
    assert "explode" in body["error"]


# -- control routes ----------------------------------------------------------------------------


async def test_control_routes_create_cancel_and_list(sandbox: Sandbox) -> None:
    status, body = await sandbox.control(
        "POST",
        "/_sandbox/orders",
        {
            "orders": [
                {
                    "email": "bo@example.com",
                    "fulfillments": [
                        {
                            "tracking": [{"company": "UPS", "number": "1Z1"}],
                            "estimated_delivery_at": "2026-03-05T12:00:00Z",
                        }
                    ],
                    "unfulfilled_items": 1,
                },
                {"name": "#9000"},
            ]
        },
    )
    assert status == 201
    first, second = body["orders"]
    assert first["name"] == "#1001"
    assert first["display_fulfillment_status"] == "PARTIALLY_FULFILLED"
    assert first["fulfillments"][0]["tracking"] == [
        {"company": "UPS", "number": "1Z1", "url": None}
    ]
    assert first["fulfillments"][0]["estimated_delivery_at"] == "2026-03-05T12:00:00Z"
    assert second["name"] == "#9000"
    fulfillment_gid = first["fulfillments"][0]["id"]

    _, added = await sandbox.control(
        "POST",
        f"/_sandbox/orders/{first['legacy_resource_id']}/fulfillments",
        {"tracking": [{"company": "UPS", "number": "1Z2"}]},
    )
    assert added["order_id"] == first["id"]
    await sandbox.create_event(fulfillment_gid, "IN_TRANSIT", happenedAt="2026-03-02T08:00:00Z")
    await sandbox.create_event(added["id"], "LABEL_PRINTED")
    status, events = await sandbox.control("GET", "/_sandbox/events")
    assert status == 200
    assert [(e["fulfillment_id"], e["status"]) for e in events["events"]] == [
        (fulfillment_gid, "IN_TRANSIT"),
        (added["id"], "LABEL_PRINTED"),
    ]

    status, cancelled = await sandbox.control("POST", f"/_sandbox/orders/{second['id']}/cancel")
    assert status == 200
    assert cancelled["cancelled_at"] == "2026-03-02T09:00:00Z"
    assert cancelled["closed"] is True
    status, _ = await sandbox.control("POST", "/_sandbox/orders/777/cancel")
    assert status == 404
    status, _ = await sandbox.control("GET", "/_sandbox/fulfillments/777/events")
    assert status == 404
    status, _ = await sandbox.control("POST", "/_sandbox/orders", {"orders": [{"bogus": 1}]})
    assert status == 400


async def test_update_tracking_is_visible_to_the_client(sandbox: Sandbox) -> None:
    order = sandbox.store.add_order(fulfillments=[[("DHL", "JD1", None)]])
    fulfillment = order.fulfillments[0]
    sandbox.clock.advance(5)
    status, _ = await sandbox.control(
        "POST",
        f"/_sandbox/fulfillments/{fulfillment.id}/tracking",
        {"tracking": [{"company": "FedEx", "number": "7777", "url": "https://fx.example/7777"}]},
    )
    assert status == 200
    _, body = await sandbox.post(
        document("FulfilledOrders"), {"first": 5, "query": "updated_at:>'2026-03-02T09:00:00Z'"}
    )
    [node] = body["data"]["orders"]["nodes"]
    assert node["fulfillments"][0]["trackingInfo"] == [
        {"company": "FedEx", "number": "7777", "url": "https://fx.example/7777"}
    ]
