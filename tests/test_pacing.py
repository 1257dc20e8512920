"""Per-second carrier pacing shared by every worker through PostgreSQL, and claims that take
no more of a slow carrier than its rate can ask."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web

from carriers.aftership import AftershipAdapter
from carriers.aftership import sandbox as aftership_sandbox
from carriers.base import CarrierSettings, CarrierUnavailable, Outcome
from carriers.postnord import sandbox as postnord_sandbox
from carriers.registry import build_adapters
from carriers.sandbox_base import CarrierWorld, Kind
from tests.harness import DHL_KEY, SHOP, start_stack, timeline
from tracker.config import PollingConfig, WritebackConfig
from tracker.engine.daemon import Daemon
from tracker.engine.pacing import (
    PostgresPacing,
    next_window,
    take_slot,
    take_slots,
    window_of,
)
from tracker.engine.poller import PollReport, SlowCarriers, poll_due
from tracker.sandbox.serve import serve
from tracker.shopify.sync import ensure_shops


@pytest.mark.parametrize(
    ("rate", "window"),
    [(10, (1, 10)), (1, (1, 1)), (2.5, (1, 2)), (60 / 3600, (60, 1)), (0.4, (3, 1))],
)
def test_windows(rate, window):
    assert window_of(rate) == window


def test_the_next_window_starts_where_the_current_one_ends():
    assert next_window(60 / 3600, now=125.0) == 180.0  # minutes, counted from the epoch
    assert next_window(5, now=10.5) == 11.0
    assert next_window(5, now=11.0) == 12.0


async def test_no_window_ever_holds_more_than_the_rate(pool):
    # Twelve requests from "several workers" at once against 5 per second.
    assert all(await asyncio.gather(*(take_slot(pool, "dhl", 5) for _ in range(12))))
    rows = await pool.fetch(
        "SELECT window_start, used FROM carrier_windows WHERE carrier = 'dhl' ORDER BY 1"
    )
    assert sum(r["used"] for r in rows) == 12
    assert max(r["used"] for r in rows) <= 5
    assert len(rows) >= 3  # they had to wait for later windows


async def test_carriers_do_not_share_a_window(pool):
    assert await take_slot(pool, "dhl", 1)
    assert await take_slot(pool, "ups", 1)
    assert await pool.fetchval("SELECT count(*) FROM carrier_windows") == 2


async def test_slots_for_many_requests_are_granted_as_far_as_the_window_allows(pool):
    # Three workers each want 4 requests' slots at once; 5 a second are allowed.
    grants = await asyncio.gather(*(take_slots(pool, "fedex", 5, 4) for _ in range(3)))
    assert all(1 <= g <= 4 for g in grants)
    rows = await pool.fetch("SELECT used FROM carrier_windows WHERE carrier = 'fedex'")
    assert sum(r["used"] for r in rows) == sum(grants)
    assert max(r["used"] for r in rows) <= 5
    assert await take_slots(pool, "fedex", 5, 0) == 0


async def test_no_slot_within_the_wait_gives_zero(pool):
    assert await take_slots(pool, "usps", 1 / 3600, 1) == 1  # the hour's only request
    assert await take_slots(pool, "usps", 1 / 3600, 1, max_wait=0.05) == 0


async def test_a_full_window_grants_nothing_and_counts_nothing_more(pool):
    hourly = 2 / 3600  # two requests an hour: one window of 1,800 seconds allows one
    assert await take_slots(pool, "postnord", hourly, 3) == 1
    assert await take_slots(pool, "postnord", hourly, 2, max_wait=0) == 0
    rows = await pool.fetch("SELECT used FROM carrier_windows WHERE carrier = 'postnord'")
    assert [r["used"] for r in rows] == [1]


async def test_a_slow_carrier_is_claimed_only_as_far_as_its_rate_can_ask(pool):
    """Issue 5: a carrier on a slow quota (here DHL at one request a day, so that its one pacing
    window lasts the whole test; USPS's default is 60 an hour) with many shipments due does
    not fill the claims: two claim loops of one
    process running at once take one of its shipments between them, not hundreds that would
    wait minutes for pacing slots while the loops poll nothing else. Once its window is spent
    a claim takes none of it until the next window, and a replica that claims one all the same
    gives it back as it was. The other carrier's due shipments are all polled; the slow
    carrier's others stay due, in their order, untouched."""
    stack = await start_stack()
    postnord = CarrierWorld(rate_limit_per_second=1000)
    runner, postnord_url = await serve(postnord_sandbox.sandbox_app(postnord), 0)
    try:
        config = stack.config("postgresql://unused")
        shop = (await ensure_shops(pool, config.shops))[SHOP]
        numbers = {
            "dhl": [f"JJD00000000000000060{n:02d}" for n in range(20)],
            "postnord": [postnord_sandbox.sample_number(n + 1) for n in range(20)],
        }
        stack.dhl.register([timeline(n, [Kind.LABEL, Kind.PICKUP]) for n in numbers["dhl"]])
        postnord.register([timeline(n, [Kind.LABEL, Kind.PICKUP]) for n in numbers["postnord"]])
        for code, batch in numbers.items():
            for number in batch:
                await pool.execute(
                    """
                    INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id,
                                           tracking_number, carrier, next_poll_at)
                    VALUES ($1, $2, $2, $2, $3, $4, now() - interval '1 hour')
                    """,
                    shop.id,
                    f"gid://shopify/Order/{number}",
                    number,
                    code,
                )
        due_before = dict(await pool.fetch("SELECT id, next_poll_at FROM shipments"))
        settings = {
            "dhl": CarrierSettings.model_validate(
                {"api_key": DHL_KEY, "base_url": stack.dhl_url, "requests_per_second": 1 / 86400}
            ),
            "postnord": CarrierSettings.model_validate(
                {
                    **postnord_sandbox.SANDBOX_SETTINGS,
                    "base_url": postnord_url,
                    "requests_per_second": 100,
                }
            ),
        }
        slow = SlowCarriers()
        async with aiohttp.ClientSession() as http:
            adapters = build_adapters(settings, http)

            async def sweep(known: SlowCarriers) -> PollReport:
                return await poll_due(
                    pool, adapters, PollingConfig(), WritebackConfig(), "w", settings, slow=known
                )

            reports = await asyncio.gather(sweep(slow), sweep(slow))
            assert sum(r.claimed for r in reports) == 21
            assert [r.capped_full for r in reports].count(True) == 1  # the loop that took DHL
            assert sum(r.polled for r in reports) == 21
            assert +slow.unsent == Counter()  # nothing left counted as waiting to be sent
            third = await sweep(slow)  # knows nothing yet: claims one, finds the window spent
            assert (third.claimed, third.polled) == (1, 0)
            assert (await sweep(slow)).claimed == 0  # now it knows: none until the next window
            other = await sweep(SlowCarriers())  # another replica does not know yet
            assert (other.claimed, other.polled) == (1, 0)
        assert len([r for r in stack.dhl.requests if r.numbers]) == 1
        rows = await pool.fetch(
            "SELECT id, carrier, last_polled_at IS NOT NULL AS polled, lease_owner, next_poll_at"
            " FROM shipments"
        )
        polled = Counter(r["carrier"] for r in rows if r["polled"])
        assert polled == {"dhl": 1, "postnord": 20}
        waiting = [r for r in rows if not r["polled"]]
        assert len(waiting) == 19
        assert all(r["lease_owner"] is None for r in waiting)
        assert all(r["next_poll_at"] == due_before[r["id"]] for r in waiting)
    finally:
        await runner.cleanup()
        await stack.close()


async def test_a_carrier_of_a_few_requests_a_second_is_asked_at_its_rate_within_one_claim(pool):
    """A capped carrier whose windows are short (DHL at five requests a second: a claim may
    take what it can ask in 10 s, 50) waits for the windows its claim needs, as the pacing
    allows, rather than giving back all but the first window's five."""
    stack = await start_stack()
    try:
        config = stack.config("postgresql://unused")
        shop = (await ensure_shops(pool, config.shops))[SHOP]
        numbers = [f"JJD00000000000000070{n:02d}" for n in range(12)]
        stack.dhl.register([timeline(n, [Kind.LABEL, Kind.PICKUP]) for n in numbers])
        for number in numbers:
            await pool.execute(
                """
                INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id,
                                       tracking_number, carrier)
                VALUES ($1, $2, $2, $2, $3, 'dhl')
                """,
                shop.id,
                f"gid://shopify/Order/{number}",
                number,
            )
        settings = {
            "dhl": CarrierSettings.model_validate(
                {"api_key": DHL_KEY, "base_url": stack.dhl_url, "requests_per_second": 5}
            )
        }
        slow = SlowCarriers()
        async with aiohttp.ClientSession() as http:
            report = await poll_due(
                pool,
                build_adapters(settings, http),
                PollingConfig(),
                WritebackConfig(),
                "w",
                settings,
                slow=slow,
            )
        assert (report.claimed, report.polled) == (12, 12)
        assert not report.capped_full  # 12 of a cap of 50: nothing more was due
        assert len([r for r in stack.dhl.requests if r.numbers]) == 12
        windows = await pool.fetch("SELECT used FROM carrier_windows WHERE carrier = 'dhl'")
        assert max(r["used"] for r in windows) <= 5  # paced all the same
        assert slow.resting == {}
    finally:
        await stack.close()


async def test_one_sweep_asks_a_slow_carriers_whole_backlog_at_its_rate(pool, database_url):
    """A sweep's loops go round again while a slow carrier's claim takes all it may (here 30, at
    three requests a second), instead of ending with the rest left to the next sweep."""
    stack = await start_stack()
    numbers = [f"JJD00000000000000080{n:02d}" for n in range(40)]
    stack.dhl.register([timeline(n, [Kind.LABEL, Kind.PICKUP]) for n in numbers])
    dhl = {"api_key": DHL_KEY, "base_url": stack.dhl_url, "requests_per_second": 3}
    config = stack.config(database_url, carriers={"dhl": dhl})
    shop = (await ensure_shops(pool, config.shops))[SHOP]
    for number in numbers:
        await pool.execute(
            """
            INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id,
                                   tracking_number, carrier)
            VALUES ($1, $2, $2, $2, $3, 'dhl')
            """,
            shop.id,
            f"gid://shopify/Order/{number}",
            number,
        )
    try:
        async with aiohttp.ClientSession() as http:
            daemon = Daemon(
                config=config,
                pool=pool,
                _session=http,
                _adapters=build_adapters(config.carriers, http),
            )
            await daemon.poll_sweep()
        assert await pool.fetchval("SELECT count(*) FROM shipments WHERE carrier_state = 'found'")
        polled = await pool.fetchval(
            "SELECT count(*) FROM shipments WHERE last_polled_at IS NOT NULL"
        )
        assert polled == 40  # 30 in the first round, 10 in the next
        assert len([r for r in stack.dhl.requests if r.numbers]) == 40
    finally:
        await stack.close()


# --- an adapter's requests beyond the one the engine paces -----------------------------------
AFTERSHIP_KEY = "pacing-aftership-key"


@pytest.fixture
async def aftership() -> AsyncIterator[tuple[CarrierWorld, str, aiohttp.ClientSession]]:
    world = CarrierWorld(rate_limit_per_second=10_000)
    runner = web.AppRunner(aftership_sandbox.build_app(world, api_key=AFTERSHIP_KEY))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    async with aiohttp.ClientSession() as session:
        yield world, f"http://{host}:{port}", session
    await runner.cleanup()


def aftership_settings(url: str, rate: float) -> CarrierSettings:
    return CarrierSettings(
        api_key=AFTERSHIP_KEY, base_url=url, requests_per_second=rate, max_attempts=1
    )


def aftership_replica(
    pool, url: str, session: aiohttp.ClientSession, rate: float, max_wait: float = 60.0
) -> AftershipAdapter:
    adapter = AftershipAdapter(aftership_settings(url, rate), session)
    adapter.use_shared_pacing(PostgresPacing(pool, "aftership", max_wait=max_wait))
    return adapter


async def test_replicas_registering_aftership_numbers_keep_its_rate_between_them(pool, aftership):
    """Issue 5, budgets hold across every replica: two daemons' AfterShip adapters register 20
    new numbers each at once. The engine paces each call's first list request; every create and
    every second read took a slot of the windows the replicas share, and no window gave more
    than the rate (before, each process kept 10 creates a second on its own: 20 together)."""
    world, url, session = aftership
    numbers = [aftership_sandbox.sample_number(i) for i in range(40)]
    world.register(timeline(n, [Kind.LABEL, Kind.PICKUP]) for n in numbers)
    replicas = [aftership_replica(pool, url, session, rate=10.0) for _ in range(2)]
    answers = await asyncio.gather(replicas[0].track(numbers[:20]), replicas[1].track(numbers[20:]))
    assert {r.outcome for answer in answers for r in answer.values()} == {Outcome.FOUND}
    sent = Counter(r.method for r in world.requests)
    assert sent == {"POST": 40, "GET": 4}  # each replica: read, 20 creates, read again
    windows = await pool.fetch(
        "SELECT carrier, window_start, used FROM carrier_windows ORDER BY carrier, window_start"
    )
    creates = [r["used"] for r in windows if r["carrier"] == "aftership:create"]
    assert sum(creates) == 40
    assert max(creates) <= 10
    assert len(creates) >= 4
    second_reads = [r["used"] for r in windows if r["carrier"] == "aftership"]
    assert sum(second_reads) == 2


async def test_an_aftership_list_asked_again_in_halves_takes_shared_slots(pool, aftership):
    """An unreadable list answer is asked again in halves: two more list requests, each a slot
    of the list windows every replica shares (the first read is the engine's)."""
    world, url, session = aftership
    good = aftership_sandbox.sample_number(7)
    world.register([timeline(good, [Kind.LABEL, Kind.PICKUP])])
    adapter = aftership_replica(pool, url, session, rate=10.0)
    await adapter.track([good])  # registered: its next reads need no create
    world.requests.clear()
    await pool.execute("DELETE FROM carrier_windows")
    results = await adapter.track(["SBBADJSON1", good])
    assert (results["SBBADJSON1"].outcome, results[good].outcome) == (Outcome.ERROR, Outcome.FOUND)
    assert [r.method for r in world.requests] == ["GET", "GET", "GET"]
    used = await pool.fetchval(
        "SELECT coalesce(sum(used), 0) FROM carrier_windows WHERE carrier = 'aftership'"
    )
    assert used == 2


async def test_an_aftership_create_with_no_shared_slot_in_time_is_not_sent(pool, aftership):
    """Another replica took the window's only create: the call fails as unavailable (the engine
    gives its numbers back with backoff) after the wait, and registers nothing."""
    world, url, session = aftership
    number = aftership_sandbox.sample_number(0)
    world.register([timeline(number, [Kind.LABEL])])
    hourly = 1 / 3600
    assert await take_slots(pool, "aftership:create", hourly, 1) == 1
    adapter = aftership_replica(pool, url, session, rate=hourly, max_wait=0.2)
    with pytest.raises(CarrierUnavailable, match="aftership:create"):
        await adapter.track([number])
    assert [r.method for r in world.requests] == ["GET"]


async def test_a_poll_whose_extra_requests_find_no_shared_slot_is_postponed_not_failed(
    pool, aftership
):
    """The engine polls an AfterShip number that needs registering while the other replicas
    hold the create rate: its shipment is given back due again shortly, with no failure
    counted against it or AfterShip's circuit (the carrier is fine), and nothing registered."""
    world, url, session = aftership
    stack = await start_stack()
    try:
        shop = (await ensure_shops(pool, stack.config("postgresql://unused").shops))[SHOP]
        number = aftership_sandbox.sample_number(3)
        world.register([timeline(number, [Kind.LABEL])])
        await pool.execute(
            """
            INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id,
                                   tracking_number, carrier, next_poll_at)
            VALUES ($1, 'gid://shopify/Order/1', '#1', 'gid://shopify/Fulfillment/1', $2,
                    'aftership', now() - interval '1 hour')
            """,
            shop.id,
            number,
        )
        hourly = 1 / 3600
        assert await take_slots(pool, "aftership:create", hourly, 1) == 1  # another replica's
        adapter = aftership_replica(pool, url, session, rate=hourly, max_wait=0.2)
        settings = {"aftership": aftership_settings(url, hourly)}
        before = datetime.now(UTC)
        report = await poll_due(
            pool, {"aftership": adapter}, PollingConfig(), WritebackConfig(), "w", settings
        )
        after = datetime.now(UTC)
        assert (report.claimed, report.polled, report.failed_batches) == (1, 0, 0)
        row = await pool.fetchrow(
            "SELECT lease_owner, poll_failures, carrier_state, last_polled_at, next_poll_at"
            " FROM shipments"
        )
        assert row["lease_owner"] is None
        assert (row["poll_failures"], row["carrier_state"], row["last_polled_at"]) == (
            0,
            "pending",
            None,
        )
        retry = timedelta(seconds=30)  # due again 30 s after it was given back
        assert before + retry <= row["next_poll_at"] <= after + retry
        failures = await pool.fetchval(
            "SELECT coalesce(sum(failures), 0) FROM carrier_circuits WHERE carrier = 'aftership'"
        )
        assert failures == 0
        assert [r.method for r in world.requests] == ["GET"]
    finally:
        await stack.close()
