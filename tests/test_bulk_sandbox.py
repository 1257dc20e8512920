"""The sandbox's bulk operations and the client's JSONL reader, on their own.

Shopify's rules for bulk queries, its answers while one runs, the signed and expiring result
URL, the ``bulk_operations/finish`` webhook; and the reader's resume after a dropped connection
and its joining of ``__parentId`` lines.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import graphql
import pytest
from aiohttp import web

from tests.harness import TOKEN, Stack, eventually, start_stack
from tracker.sandbox.serve import serve
from tracker.sandbox.shopify_bulk_query import flatten, plan_bulk_query
from tracker.shopify.bulk_results import BulkResultReader
from tracker.shopify.client import load_document

VERSION = "2026-10"


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    stack = await start_stack()
    yield stack
    await stack.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def graphql_call(
    http: aiohttp.ClientSession, stack: Stack, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    url = f"{stack.shopify_url}/admin/api/{VERSION}/graphql.json"
    body = {"query": query, "variables": variables or {}}
    async with http.post(url, json=body, headers={"X-Shopify-Access-Token": TOKEN}) as response:
        assert response.status == 200
        answer: dict[str, Any] = await response.json()
    assert "errors" not in answer, answer
    return answer["data"]


async def run_bulk(http: aiohttp.ClientSession, stack: Stack, inner: str) -> dict[str, Any]:
    data = await graphql_call(http, stack, load_document("BulkOperationRunQuery"), {"query": inner})
    payload: dict[str, Any] = data["bulkOperationRunQuery"]
    return payload


async def finished(http: aiohttp.ClientSession, stack: Stack, gid: str) -> dict[str, Any]:
    node: dict[str, Any] = {}

    async def done() -> bool:
        nonlocal node
        node = (await graphql_call(http, stack, load_document("BulkOperation"), {"id": gid}))[
            "node"
        ]
        return node["status"] not in ("CREATED", "RUNNING")

    await eventually(done, what=f"{gid} to finish")
    return node


@pytest.mark.parametrize(
    ("inner", "message"),
    [
        ("{ shop { name } }", "Bulk queries must contain at least one connection."),
        (
            "{ " + " ".join(f"o{i}: orders {{ nodes {{ id }} }}" for i in range(6)) + " }",
            "Bulk queries cannot contain more than 5 connections.",
        ),
        (
            "{ orders { nodes { fulfillments { events { nodes { id } } } } } }",
            "Queries that contain a connection field within a list field are not currently "
            "supported.",
        ),
        ("query Q($q: String) { orders(query: $q) { nodes { id } } }", "cannot use variables"),
        ("{ orders { nodes { nope } } }", "Invalid bulk query: Cannot query field 'nope'"),
    ],
)
async def test_queries_shopify_would_refuse_are_invalid(
    stack: Stack, http: aiohttp.ClientSession, inner: str, message: str
) -> None:
    payload = await run_bulk(http, stack, inner)
    assert payload["bulkOperation"] is None
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID", ["query"])
    assert message in error["message"]
    assert stack.store.bulk.operations == {}


async def test_one_operation_at_a_time_and_its_result_file(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    for n in range(7):
        stack.store.add_order(f"#{n}", fulfillments=[[("DHL", f"JJD{n}"), ("DHL", f"JJE{n}")]])
    stack.store.add_order("#CANCELLED")
    stack.store.cancel_order(stack.store.orders()[-1].id)
    stack.store.set_faults(bulk_slow_seconds=60)
    started = await run_bulk(http, stack, load_document("BulkFulfilledOrders"))
    gid = started["bulkOperation"]["id"]
    assert started["bulkOperation"]["status"] == "CREATED"

    second = await run_bulk(http, stack, '{ orders(query: "status:open") { nodes { id } } }')
    assert second["userErrors"] == [
        {
            "code": "OPERATION_IN_PROGRESS",
            "field": None,
            "message": f"A bulk query operation for this app and shop is already in progress: "
            f"{gid}.",
        }
    ]
    current = await graphql_call(http, stack, load_document("CurrentBulkOperation"))
    assert current["currentBulkOperation"]["id"] == gid
    assert current["currentBulkOperation"]["status"] == "RUNNING"
    stack.store.bulk.release_slow()
    node = await finished(http, stack, gid)

    assert (node["status"], node["errorCode"], node["objectCount"]) == ("COMPLETED", None, "8")
    assert node["partialDataUrl"] is None
    async with http.get(node["url"]) as response:
        assert response.status == 200
        lines = [json.loads(line) for line in (await response.text()).splitlines()]
    assert [line["name"] for line in lines] == [f"#{n}" for n in range(7)] + ["#CANCELLED"]
    assert lines[0]["fulfillments"][0]["trackingInfo"] == [
        {"company": "DHL", "number": "JJD0", "url": None},
        {"company": "DHL", "number": "JJE0", "url": None},
    ]
    assert lines[-1]["cancelledAt"] is not None
    assert all("__parentId" not in line for line in lines)

    async with http.get(node["url"].replace("signature=", "signature=0")) as response:
        assert response.status == 403
    clock = stack.store.now
    stack.store.now = lambda: clock() + timedelta(days=8)
    async with http.get(node["url"]) as response:
        assert response.status == 403
    expired = await finished(http, stack, gid)
    assert (expired["status"], expired["url"]) == ("EXPIRED", None)


async def test_partial_and_failed_operations_as_shopify_reports_them(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    for n in range(10):
        stack.store.add_order(f"#{n}", fulfillments=[[("DHL", f"JJD{n}")]])
    async with http.post(
        f"{stack.shopify_url}/_sandbox/faults", json={"bulk_partial_next": 1}
    ) as r:
        assert (await r.json())["faults"]["bulk_partial_next"] == 1
    partial = await finished(
        http,
        stack,
        (await run_bulk(http, stack, "{ orders { nodes { id } } }"))["bulkOperation"]["id"],
    )
    assert (partial["status"], partial["errorCode"], partial["url"]) == ("FAILED", "TIMEOUT", None)
    async with http.get(partial["partialDataUrl"]) as response:
        assert len((await response.text()).splitlines()) == 5

    stack.store.set_faults(bulk_fail_next=1)
    failed = await finished(
        http,
        stack,
        (await run_bulk(http, stack, "{ orders { nodes { id } } }"))["bulkOperation"]["id"],
    )
    assert (failed["status"], failed["errorCode"]) == ("FAILED", "INTERNAL_SERVER_ERROR")
    assert (failed["url"], failed["partialDataUrl"]) == (None, None)


async def test_the_finish_webhook_goes_to_subscribers(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    received: list[tuple[str, dict[str, Any]]] = []

    async def receive(request: web.Request) -> web.Response:
        received.append((request.headers["X-Shopify-Topic"], await request.json()))
        return web.Response()

    app = web.Application()
    app.router.add_post("/hooks", receive)
    runner, url = await serve(app, 0)
    try:
        _, errors = stack.store.webhooks.subscribe(
            "BULK_OPERATIONS_FINISH", f"{url}/hooks", "JSON", VERSION
        )
        assert errors == []
        gid = (await run_bulk(http, stack, "{ orders { nodes { id } } }"))["bulkOperation"]["id"]

        async def delivered() -> bool:
            return bool(received)

        await eventually(delivered, what="the bulk_operations/finish webhook")
    finally:
        await runner.cleanup()
    topic, body = received[0]
    assert topic == "bulk_operations/finish"
    assert (body["admin_graphql_api_id"], body["status"], body["type"]) == (
        gid,
        "completed",
        "query",
    )


def test_nested_connections_come_on_their_own_lines_after_their_parent() -> None:
    schema = graphql.build_schema(
        """
        type Query { orders(first: Int): OrderConnection! }
        type OrderConnection { edges: [OrderEdge!]! nodes: [Order!]! pageInfo: PageInfo! }
        type OrderEdge { node: Order! }
        type Order { id: ID! name: String! lines(first: Int): LineConnection! }
        type LineConnection { edges: [LineEdge!]! nodes: [Line!]! pageInfo: PageInfo! }
        type LineEdge { node: Line! }
        type Line { id: ID! sku: String! }
        type PageInfo { hasNextPage: Boolean! }
        """
    )
    plan = plan_bulk_query(
        schema, "{ orders { edges { node { id name lines { nodes { sku } } } } } }"
    )
    assert "lines(first: 250)" in graphql.print_ast(plan.document)
    node = {"id": "O1", "name": "#1", "lines": {"nodes": [{"sku": "a"}, {"sku": "b"}]}}
    assert list(flatten(node, plan)) == [
        {"id": "O1", "name": "#1"},
        {"sku": "a", "__parentId": "O1"},
        {"sku": "b", "__parentId": "O1"},
    ]
    with pytest.raises(ValueError, match="must select the 'id' field"):
        plan_bulk_query(schema, "{ orders { nodes { name lines { nodes { sku } } } } }")


async def test_the_reader_resumes_a_dropped_download_and_joins_children(
    http: aiohttp.ClientSession,
) -> None:
    rows = [{"id": f"gid://shopify/Order/{n}", "n": n} for n in range(300)]
    rows.insert(1, {"id": "gid://shopify/LineItem/1", "__parentId": rows[0]["id"]})
    rows.append({"id": "gid://shopify/LineItem/2", "__parentId": "gid://shopify/Order/0"})
    body = "".join(json.dumps(row) + "\n" for row in rows).encode()
    ranges: list[str | None] = []

    async def serve_file(request: web.Request) -> web.StreamResponse:
        ranges.append(request.headers.get("Range"))
        if request.headers.get("Range"):
            start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
            return web.Response(body=body[start:], status=206)
        response = web.StreamResponse(headers={"Content-Length": str(len(body))})
        await response.prepare(request)
        await response.write(body[: len(body) // 2])  # then the connection drops
        assert request.transport is not None
        request.transport.close()
        return response

    app = web.Application()
    app.router.add_get("/result.jsonl", serve_file)
    runner, url = await serve(app, 0)
    try:
        reader = BulkResultReader(http, f"{url}/result.jsonl")
        batches = [batch async for batch in reader.root_batches(100)]
    finally:
        await runner.cleanup()

    assert ranges[0] is None
    assert ranges[1] is not None
    assert ranges[1].startswith("bytes=")
    assert [row["n"] for batch in batches for row in batch] == list(range(300))
    assert [len(batch) for batch in batches] == [100, 100, 100]
    assert batches[0][0]["__children"] == [{"id": "gid://shopify/LineItem/1"}]
    assert (reader.lines, reader.orphans, reader.delivered) == (302, 1, 301)
