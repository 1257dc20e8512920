"""``/api/`` against its own OpenAPI document: schemathesis finds no 5xx and no answer off-schema.

The app runs on 127.0.0.1 over real HTTP (aiohttp is not ASGI); schemathesis loads the document
from ``/api/openapi.json`` and sends its generated requests from a thread, so that the event
loop serving them stays free.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.tabledata import NOW, Client, add_shop, get_json, open_client, scan, ship
from tracker.engine.attention import FLAGS
from tracker.web.selection import SORTS, TABS
from tracker.web.view import PARAMETERS

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 40


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[Client]:
    async with open_client(pool) as test_client:
        yield test_client


async def seed(pool: asyncpg.Pool) -> list[int]:
    """Shipments of every kind, with text that HTML, SQL and CSV would all trip over."""
    shops = [await add_shop(pool), await add_shop(pool, "second-store.myshopify.com")]
    statuses = [None, "in_transit", "delivered", "failure", "ready_for_pickup", "label_printed"]
    ids = []
    for n in range(18):
        shipment = await ship(
            pool,
            shops[n % 2],
            f"#{1000 + n}<b>'\"",
            status=statuses[n % len(statuses)],
            attention=FLAGS[n % len(FLAGS)] if n % 3 == 0 else None,
            customer_name=None if n % 4 == 0 else f"Zoë {n} '); DROP TABLE shipments; --",
            customer_email=None if n % 5 == 0 else f"c{n}@example.com",
            carrier=None if n % 7 == 0 else "dhl",
            carrier_source="detected" if n % 6 == 0 else "shopify",
            fulfilled_at=None if n % 8 == 0 else NOW - timedelta(days=n % 9),
            estimated_delivery_at=NOW + timedelta(days=n % 4) if n % 2 else None,
            last_scan_at=NOW - timedelta(hours=n),
            retired_reason="order cancelled" if n == 17 else None,
        )
        for k, state in enumerate(["written", "pending", "failed", "skipped"][: n % 5]):
            await scan(
                pool,
                shipment,
                NOW - timedelta(hours=n + k),
                status="in_transit" if k else None,
                message="<script>alert(1)</script>",
                writeback_state=state,
                writeback_error="refused" if state in ("failed", "skipped") else None,
                shopify_event_id="gid://shopify/FulfillmentEvent/9" if state == "written" else None,
            )
        ids.append(shipment)
    await ship(pool, shops[0], "#2000", tracking_number="", carrier=None, carrier_state="untracked")
    return ids


def run_schemathesis(url: str, shipment_ids: list[int]) -> list[str]:
    """Every operation, positive and negative examples, plus each real shipment; the failures."""
    schema = schemathesis.openapi.from_url(url)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                case.call_and_validate(checks=CHECKS)

            try:
                check()
            except Exception as exc:
                failures.append(f"{operation.label} ({mode}): {exc}")
        if operation.path == "/api/shipments/{id}":
            for shipment_id in shipment_ids:
                case = operation.Case(path_parameters={"id": shipment_id})
                response = case.call_and_validate(checks=CHECKS)
                assert response.status_code == 200
    return failures


async def test_schemathesis_finds_no_server_error_and_no_answer_off_its_schema(
    client: Client, pool: asyncpg.Pool
) -> None:
    ids = await seed(pool)
    url = str(client.make_url("/api/openapi.json"))
    failures = await asyncio.to_thread(run_schemathesis, url, ids)
    assert failures == []


async def test_real_views_fit_the_schema(client: Client, pool: asyncpg.Pool) -> None:
    """Every tab and sort, both ways, all pages: what generated requests may rarely reach."""
    await seed(pool)
    views = [f"tab={tab}" for tab in TABS] + [
        f"sort={sort}&dir={direction}&limit=5&include_inactive=1"
        for sort in SORTS
        for direction in ("asc", "desc")
    ]
    urls = []
    for view in views:
        body = await get_json(client, f"/api/shipments?{view}")
        while body["next_cursor"] is not None:
            urls.append(f"/api/shipments?{view}&cursor={body['next_cursor']}")
            body = await get_json(client, urls[-1])
        urls.append(f"/api/counts?{view}")
    base = str(client.make_url("/"))

    def validate_all() -> list[str]:
        schema = schemathesis.openapi.from_url(base.rstrip("/") + "/api/openapi.json")
        problems = []
        for path in urls:
            operation = schema[
                "/api/counts" if path.startswith("/api/counts") else "/api/shipments"
            ]
            query = dict(part.split("=", 1) for part in path.split("?", 1)[1].split("&"))
            case = operation["GET"].Case(query=query)
            response = case.call(base_url=base.rstrip("/"))
            if response.status_code != 200:
                problems.append(f"{path}: {response.status_code}")
                continue
            try:
                case.validate_response(response, checks=CHECKS)
            except Exception as exc:
                problems.append(f"{path}: {exc}")
        return problems

    assert len(urls) > len(views)
    assert await asyncio.to_thread(validate_all) == []


async def test_the_document_describes_exactly_the_parameters_the_api_takes(
    client: Client,
) -> None:
    document = await get_json(client, "/api/openapi.json")
    assert document["openapi"].startswith("3.")
    for path in ("/api/shipments", "/api/counts"):
        names = [p["name"] for p in document["paths"][path]["get"]["parameters"]]
        assert sorted(names) == sorted(PARAMETERS)
        assert "400" in document["paths"][path]["get"]["responses"]
    schema = document["paths"]["/api/shipments"]["get"]["responses"]["200"]["content"]
    item = schema["application/json"]["schema"]["properties"]["shipments"]["items"]
    assert item["additionalProperties"] is False
