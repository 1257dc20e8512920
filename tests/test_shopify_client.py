"""The GraphQL client: cost bucket, retries, and what it refuses to retry."""

from __future__ import annotations

import time

import aiohttp
import pytest
from aiohttp import web

from tests.harness import Stack, start_stack
from tracker.sandbox.serve import serve
from tracker.shopify.client import (
    GraphQLError,
    ShopifyAuthError,
    ShopifyClient,
    ShopifyOutcomeUnknown,
    ShopifyUnavailable,
)
from tracker.shopify.pacing import CostBucket


@pytest.fixture
async def stack():
    stack = await start_stack()
    yield stack
    await stack.close()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def client_for(stack: Stack, http, **kwargs) -> ShopifyClient:
    return ShopifyClient(stack.config("postgresql://unused").shops[0], http, **kwargs)


# Shopify answers INTERNAL_SERVER_ERROR with HTTP 200 "instead of 500 in most circumstances".
@pytest.mark.parametrize("server_errors", ["http", "graphql"])
async def test_queries_are_retried_through_5xx(stack, http, server_errors):
    stack.store.add_order(fulfillments=[[("DHL", "JJD1", None)]])
    stack.store.server_errors = server_errors
    stack.store.set_faults(fail_next_requests=2)
    data = await client_for(stack, http).query(
        "FulfilledOrders", {"first": 10, "after": None, "query": ""}
    )
    assert [o["name"] for o in data["orders"]["nodes"]] == ["#1001"]
    assert stack.store.stats.failed_requests == 2


async def test_queries_give_up_after_bounded_attempts(stack, http):
    stack.store.set_faults(fail_next_requests=50)
    with pytest.raises(ShopifyUnavailable, match="HTTP 503"):
        await client_for(stack, http, max_attempts=3).query("ShopInfo")
    assert stack.store.stats.failed_requests == 3


async def test_a_mutation_with_a_lost_answer_is_not_retried(stack, http):
    order = stack.store.add_order(fulfillments=[[("DHL", "JJD1", None)]])
    fid = f"gid://shopify/Fulfillment/{order.fulfillments[0].id}"
    stack.store.set_faults(drop_next_mutation_responses=1)
    with pytest.raises(ShopifyOutcomeUnknown):
        await client_for(stack, http).mutate(
            "FulfillmentEventCreate",
            {"fulfillmentEvent": {"fulfillmentId": fid, "status": "IN_TRANSIT"}},
        )
    assert len(stack.store.events(fid)) == 1  # applied once, never sent again


async def test_a_mutation_answered_internal_server_error_is_not_retried(stack, http):
    order = stack.store.add_order(fulfillments=[[("DHL", "JJD1", None)]])
    fid = f"gid://shopify/Fulfillment/{order.fulfillments[0].id}"
    stack.store.server_errors = "graphql"
    stack.store.set_faults(drop_next_mutation_responses=1)  # stored, then INTERNAL_SERVER_ERROR
    with pytest.raises(ShopifyOutcomeUnknown, match="INTERNAL_SERVER_ERROR"):
        await client_for(stack, http).mutate(
            "FulfillmentEventCreate",
            {"fulfillmentEvent": {"fulfillmentId": fid, "status": "IN_TRANSIT"}},
        )
    assert len(stack.store.events(fid)) == 1  # applied once, never sent again
    assert stack.store.stats.by_operation["FulfillmentEventCreate"] == 1


async def test_an_internal_server_error_beside_data_leaves_a_mutation_unknown(http):
    calls: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append((await request.json())["operationName"])
        created = {"id": "gid://shopify/FulfillmentEvent/1", "status": "IN_TRANSIT"}
        error = {
            "message": "Internal error resolving happenedAt",
            "path": ["fulfillmentEventCreate", "fulfillmentEvent", "happenedAt"],
            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
        }
        payload = {"fulfillmentEvent": {**created, "happenedAt": None}, "userErrors": []}
        return web.json_response({"data": {"fulfillmentEventCreate": payload}, "errors": [error]})

    app = web.Application()
    app.router.add_post("/admin/api/{version}/graphql.json", handler)
    runner, url = await serve(app, 0)
    try:
        from tracker.config import ShopConfig

        shop = ShopConfig(domain="s.myshopify.com", access_token="t", api_url=url)
        with pytest.raises(ShopifyOutcomeUnknown, match="INTERNAL_SERVER_ERROR"):
            await ShopifyClient(shop, http).mutate(
                "FulfillmentEventCreate",
                {"fulfillmentEvent": {"fulfillmentId": "gid://shopify/Fulfillment/1"}},
            )
    finally:
        await runner.cleanup()
    assert calls == ["FulfillmentEventCreate"]


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("frozen", "HTTP 402: the shop is frozen"),
        ("locked", "HTTP 423: the shop is locked"),
        ("inactive", "SHOP_INACTIVE: the shop is inactive"),
    ],
)
async def test_a_closed_shop_pauses_calls_to_the_store_like_a_refused_token(stack, http, how, says):
    order = stack.store.add_order(fulfillments=[[("DHL", "JJD1", None)]])
    fid = f"gid://shopify/Fulfillment/{order.fulfillments[0].id}"
    stack.store.close_shop(how)
    client = client_for(stack, http)
    with pytest.raises(ShopifyAuthError, match=says) as refused:
        await client.query("ShopInfo")
    assert not refused.value.paused
    assert "access token" not in str(refused.value)
    with pytest.raises(ShopifyAuthError, match=says) as paused:
        await client.mutate(
            "FulfillmentEventCreate",
            {"fulfillmentEvent": {"fulfillmentId": fid, "status": "IN_TRANSIT"}},
        )
    assert paused.value.paused  # not sent: calls to the store wait
    assert stack.store.stats.closed_answers == 1
    assert says in (client.auth_refused or "")


async def test_a_revoked_token_is_an_auth_error_at_once(stack, http):
    stack.store.access_token = "revoked"
    with pytest.raises(ShopifyAuthError, match="HTTP 401"):
        await client_for(stack, http).query("ShopInfo")
    assert stack.store.stats.unauthorized == 1


async def test_graphql_errors_are_reported_not_retried(stack, http):
    with pytest.raises(GraphQLError, match="Invalid global id"):
        await client_for(stack, http).query("FulfillmentEvents", {"id": "123", "after": None})


async def test_429_is_retried_after_retry_after(http):
    calls: list[float] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return web.Response(status=429, headers={"Retry-After": "0.5"}, text="slow down")
        return web.json_response({"data": {"shop": {"name": "S", "myshopifyDomain": "s"}}})

    app = web.Application()
    app.router.add_post("/admin/api/{version}/graphql.json", handler)
    runner, url = await serve(app, 0)
    try:
        from tracker.config import ShopConfig

        shop = ShopConfig(domain="s.myshopify.com", access_token="t", api_url=url)
        client = ShopifyClient(shop, http)
        data = await client.query("ShopInfo")
    finally:
        await runner.cleanup()
    assert data["shop"]["name"] == "S"
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 0.45
    assert client.throttled_answers == 1


def test_bucket_counts_requests_in_flight():
    bucket = CostBucket()
    bucket.settle(0, {"maximumAvailable": 100, "currentlyAvailable": 30, "restoreRate": 10}, 0.0)
    assert bucket.take(20, 0.0) == 0.0  # 10 left
    assert bucket.take(20, 0.0) == pytest.approx(1.0)  # 10 short at 10/s
    # The first answer reports 30 - 20 = 10 left; the second request is still in flight.
    bucket.settle(20, {"maximumAvailable": 100, "currentlyAvailable": 10, "restoreRate": 10}, 0.0)
    assert bucket.level(0.0) == pytest.approx(-10)
    assert bucket.level(2.0) == pytest.approx(10)
    assert bucket.level(100.0) == 100


async def test_client_credentials_grant_is_used_and_renewed(stack, http):
    from tracker.config import ShopConfig

    shop = ShopConfig(
        domain=stack.store.domain,
        api_url=stack.shopify_url,
        client_id=stack.store.client_id,
        client_secret=stack.store.client_secret,
    )
    client = ShopifyClient(shop, http)
    assert (await client.query("ShopInfo"))["shop"]["myshopifyDomain"] == stack.store.domain
    await client.query("ShopInfo")
    assert client._grant is not None
    assert client._grant.fetches == 1  # one token, reused
    stack.store.revoke_granted_tokens()
    assert (await client.query("ShopInfo"))["shop"]
    assert client._grant.fetches == 2  # refused once, granted again


async def test_refused_grant_is_an_auth_error(stack, http):
    from tracker.config import ShopConfig

    shop = ShopConfig(
        domain=stack.store.domain,
        api_url=stack.shopify_url,
        client_id=stack.store.client_id,
        client_secret="wrong",
    )
    with pytest.raises(ShopifyAuthError, match="grant was refused"):
        await ShopifyClient(shop, http).query("ShopInfo")
