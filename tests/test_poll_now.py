"""The shipment page's "Poll now" button: queues a poll within the budget, never by GET or
from another site, and the daemon then polls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from carriers.sandbox_base import Kind
from tests.harness import eventually, start_stack, timeline
from tests.webdata import Client, add_shipment, add_shop, csrf_token_in
from tracker.config import Config
from tracker.engine.daemon import Daemon
from tracker.web import build_app

QUOTA = 10
CONFIG = Config.model_validate(
    {"carriers": {"dhl": {"api_key": "k", "requests_per_day": QUOTA}, "aftership": {}}}
)
POLL_STATE = (
    "SELECT active, next_poll_at <= now() AS due, poll_priority, stopped_reason, final_confirmed"
    " FROM shipments WHERE id = $1"
)


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(pool, CONFIG), host="127.0.0.1")) as test_client:
        yield test_client


@pytest.fixture
async def finished(pool: asyncpg.Pool) -> int:
    """A delivered shipment whose confirming poll is done: no longer polled."""
    shipment = await add_shipment(pool, await add_shop(pool), "#1001", status="delivered")
    await pool.execute(
        "UPDATE shipments SET active = false, final_confirmed = true, poll_priority = 100,"
        " next_poll_at = now() + interval '30 days' WHERE id = $1",
        shipment,
    )
    return shipment


def same_site(client: Client) -> dict[str, str]:
    return {"Origin": str(client.make_url("/").origin())}


async def press(
    client: Client, shipment: int, headers: dict[str, str] | None = None, **form: str
) -> Any:
    """Open the shipment page and press "Poll now" (``form`` overrides the fields sent)."""
    page = await (await client.get(f"/shipments/{shipment}")).text()
    data = {"csrf_token": csrf_token_in(page), **form}
    return await client.post(
        f"/shipments/{shipment}/poll",
        data=data,
        headers=same_site(client) if headers is None else headers,
        allow_redirects=False,
    )


async def test_poll_now_queues_a_finished_shipment_first_in_line(
    client: Client, pool: asyncpg.Pool, finished: int
) -> None:
    response = await press(client, finished)
    assert response.status == 303
    assert response.headers["Location"] == f"/shipments/{finished}?flash=queued#poll-now"
    row = await pool.fetchrow(POLL_STATE, finished)
    assert dict(row) == {
        "active": True,
        "due": True,
        "poll_priority": 0,
        "stopped_reason": None,
        "final_confirmed": False,
    }
    page = await (await client.get(response.headers["Location"])).text()
    assert "Poll queued: the daemon asks dhl at its next sweep" in page
    assert "Due now: the next sweep polls it." in page
    assert f"dhl: 0 of {QUOTA} requests used today (UTC)." in page


async def test_get_never_changes_anything(
    client: Client, pool: asyncpg.Pool, finished: int
) -> None:
    before = await pool.fetchrow("SELECT * FROM shipments WHERE id = $1", finished)
    for method in ("GET", "HEAD"):
        response = await client.request(method, f"/shipments/{finished}/poll")
        assert response.status == 405
    assert await pool.fetchrow("SELECT * FROM shipments WHERE id = $1", finished) == before


@pytest.mark.parametrize(
    ("headers", "form"),
    [
        pytest.param(None, {"csrf_token": ""}, id="no token"),
        pytest.param(None, {"csrf_token": "forged"}, id="wrong token"),
        pytest.param({"Origin": "https://evil.example"}, {}, id="other origin"),
        pytest.param({"Origin": "null"}, {}, id="opaque origin"),
        pytest.param({}, {}, id="no origin nor referer"),
        pytest.param({"Referer": "https://evil.example/page"}, {}, id="other referer"),
        pytest.param({"Origin": "SAME", "Sec-Fetch-Site": "cross-site"}, {}, id="fetch metadata"),
    ],
)
async def test_cross_site_requests_are_refused(
    client: Client,
    pool: asyncpg.Pool,
    finished: int,
    headers: dict[str, str] | None,
    form: dict[str, str],
) -> None:
    if headers and headers.get("Origin") == "SAME":
        headers = {**headers, **same_site(client)}
    before = await pool.fetchrow("SELECT * FROM shipments WHERE id = $1", finished)
    response = await press(client, finished, headers, **form)
    assert response.status == 403
    assert await pool.fetchrow("SELECT * FROM shipments WHERE id = $1", finished) == before


async def test_a_token_from_another_browser_is_refused(
    client: Client, pool: asyncpg.Pool, finished: int
) -> None:
    page = await (await client.get(f"/shipments/{finished}")).text()
    async with TestClient(TestServer(client.app, host="127.0.0.1")) as other:
        response = await other.post(
            f"/shipments/{finished}/poll",
            data={"csrf_token": csrf_token_in(page)},
            headers=same_site(other),
            allow_redirects=False,
        )
    assert response.status == 403
    assert (await pool.fetchrow(POLL_STATE, finished))["poll_priority"] == 100


async def test_a_same_site_referer_is_enough_without_origin(
    client: Client, pool: asyncpg.Pool, finished: int
) -> None:
    referer = {"Referer": str(client.make_url(f"/shipments/{finished}"))}
    response = await press(client, finished, referer)
    assert response.status == 303
    assert (await pool.fetchrow(POLL_STATE, finished))["poll_priority"] == 0


async def test_a_spent_budget_is_said_instead_of_queueing(
    client: Client, pool: asyncpg.Pool, finished: int
) -> None:
    await pool.execute(
        "INSERT INTO carrier_budgets (carrier, day, used)"
        " VALUES ('dhl', (now() AT TIME ZONE 'UTC')::date, $1)",
        QUOTA,
    )
    response = await press(client, finished)
    assert response.headers["Location"].endswith("?flash=budget#poll-now")
    assert (await pool.fetchrow(POLL_STATE, finished))["active"] is False
    page = await (await client.get(response.headers["Location"])).text()
    assert f"Not queued: today&#39;s dhl budget of {QUOTA} requests is spent." in page
    assert f"dhl: {QUOTA} of {QUOTA} requests used today (UTC)." in page


@pytest.mark.parametrize(
    ("columns", "reason"),
    [
        ({"carrier": None}, "No carrier is known for this tracking number"),
        ({"carrier": "ups"}, "ups is not configured (carriers.ups): not polled."),
        ({"retired_reason": "order cancelled"}, "Tracking stopped for good: order cancelled."),
        ({"carrier_state": "untracked", "tracking_number": ""}, "no tracking number"),
    ],
)
async def test_untrackable_shipments_are_not_queued(
    client: Client,
    pool: asyncpg.Pool,
    finished: int,
    columns: dict[str, str | None],
    reason: str,
) -> None:
    for column, value in columns.items():
        await pool.execute(f"UPDATE shipments SET {column} = $2 WHERE id = $1", finished, value)
    page = await (await client.get(f"/shipments/{finished}")).text()
    assert '<button type="submit" disabled>Poll now</button>' in page
    assert reason in page
    response = await press(client, finished)
    assert response.headers["Location"].endswith("?flash=untrackable#poll-now")
    assert (await pool.fetchrow(POLL_STATE, finished))["poll_priority"] == 100
    flashed = await (await client.get(response.headers["Location"])).text()
    assert 'class="flash problem" role="status">Not queued.' in flashed


async def test_a_shipment_held_for_the_budget_says_so_and_poll_now_lifts_the_hold(
    client: Client, pool: asyncpg.Pool, finished: int
) -> None:
    """Due, but held by no one until the budget renews (tracker.engine.release.hold_until):
    the page gives the time of its next poll, not "due now"; with budget left again (the
    quota was raised), "Poll now" queues it and lifts the hold."""
    await pool.execute(
        "UPDATE shipments SET active = true, next_poll_at = now() - interval '1 hour',"
        " lease_owner = NULL, lease_until = now() + interval '5 hours' WHERE id = $1",
        finished,
    )
    page = await (await client.get(f"/shipments/{finished}")).text()
    assert "Due now" not in page
    assert "Being polled" not in page
    assert "Next poll <time" in page
    response = await press(client, finished)
    assert response.headers["Location"].endswith("?flash=queued#poll-now")
    held = await pool.fetchval("SELECT lease_until FROM shipments WHERE id = $1", finished)
    assert held is None


async def test_a_shipment_being_polled_is_left_alone(
    client: Client, pool: asyncpg.Pool, finished: int
) -> None:
    await pool.execute(
        "UPDATE shipments SET lease_owner = 'w', lease_until = now() + interval '5 minutes'"
        " WHERE id = $1",
        finished,
    )
    response = await press(client, finished)
    assert response.headers["Location"].endswith("?flash=running#poll-now")
    assert (await pool.fetchrow(POLL_STATE, finished))["poll_priority"] == 100


async def test_unknown_shipment_and_made_up_flashes(
    client: Client, pool: asyncpg.Pool, finished: int
) -> None:
    page = await (await client.get(f"/shipments/{finished}")).text()
    response = await client.post(
        "/shipments/999999/poll",
        data={"csrf_token": csrf_token_in(page)},
        headers=same_site(client),
    )
    assert response.status == 404
    for flash in ("%3Cscript%3E", "budget", "queued"):
        shown = await client.get(f"/shipments/{finished}?flash={flash}")
        assert shown.status == 200
        assert "<script" not in await shown.text()


async def test_the_daemon_polls_the_shipment_after_the_button(
    pool: asyncpg.Pool, database_url: str
) -> None:
    stack = await start_stack()
    number = "JJD000000000000000777"
    stack.dhl.register([timeline(number, [Kind.LABEL, Kind.PICKUP, Kind.TRANSIT])])
    stack.store.add_order(fulfillments=[[("DHL", number, None)]])
    daemon = Daemon(stack.config(database_url), pool)
    await daemon.start()
    try:

        async def polled_once() -> bool:
            return bool(
                await pool.fetchval(
                    "SELECT last_polled_at IS NOT NULL FROM shipments WHERE tracking_number = $1",
                    number,
                )
            )

        await eventually(polled_once, what="the first poll")
        shipment, first_poll = await pool.fetchrow(
            "SELECT id, last_polled_at FROM shipments WHERE tracking_number = $1", number
        )
        asked = sum(number in r.numbers for r in stack.dhl.requests)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(f"{daemon.url}shipments/{shipment}") as response:
                token = csrf_token_in(await response.text())
            async with http.post(
                f"{daemon.url}shipments/{shipment}/poll",
                data={"csrf_token": token},
                headers={"Origin": daemon.url.rstrip("/")},
            ) as response:
                assert response.status == 200
                assert "Poll queued" in await response.text()

        async def polled_again() -> bool:
            last = await pool.fetchval(
                "SELECT last_polled_at FROM shipments WHERE id = $1", shipment
            )
            return bool(last > first_poll)

        await eventually(polled_again, what="the poll the button queued")
        assert sum(number in r.numbers for r in stack.dhl.requests) > asked
    finally:
        await daemon.stop()
        await stack.close()
