"""A carrier that keeps failing, or refuses our credentials, is left alone for a while; the
others go on."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import aiohttp

from carriers.base import CarrierSettings
from carriers.registry import build_adapters
from carriers.sandbox_base import FaultMode
from tests.harness import DHL_KEY, SHOP, eventually, start_stack
from tests.test_carrier_faults import Box
from tests.test_metrics import Samples, scrape, value
from tracker.config import PollingConfig, WritebackConfig
from tracker.engine.circuit import (
    PAUSE_SLACK,
    Circuits,
    circuit_states,
    forget_refusals,
    record_failure,
)
from tracker.engine.daemon import Daemon
from tracker.engine.poller import poll_due
from tracker.shopify.sync import ensure_shops
from tracker.web.app import build_app


async def add_dhl_shipments(pool, shop_id: int, numbers: list[str]) -> None:
    """One due DHL shipment per number, each of its own order and fulfillment."""
    for n, number in enumerate(numbers):
        await pool.execute(
            """
            INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id,
                                   tracking_number, carrier)
            VALUES ($1, $2, $3, $4, $5, 'dhl')
            """,
            shop_id,
            f"gid://shopify/Order/{n}",
            f"#{n}",
            f"gid://shopify/Fulfillment/{n}",
            number,
        )


async def test_circuit_opens_pauses_the_carrier_and_shows_on_the_table(pool):
    stack = await start_stack()
    try:
        config = stack.config("postgresql://unused")
        shop = (await ensure_shops(pool, config.shops))[SHOP]
        await add_dhl_shipments(pool, shop.id, [f"SB500{n}" for n in range(4)])
        settings = {
            "dhl": CarrierSettings.model_validate(
                {
                    "api_key": DHL_KEY,
                    "base_url": stack.dhl_url,
                    "requests_per_second": 100,
                    "max_attempts": 1,
                }
            )
        }
        polling = PollingConfig.model_validate({"circuit_failures": 3, "batch_size": 4})
        async with aiohttp.ClientSession() as http:
            adapters = build_adapters(settings, http)
            first = await poll_due(pool, adapters, polling, WritebackConfig(), "w", settings)
            assert first.failed_batches == 4
            await pool.execute("UPDATE shipments SET next_poll_at = now()")
            second = await poll_due(pool, adapters, polling, WritebackConfig(), "w", settings)
        assert second.claimed == 0  # circuit open: nothing claimed for DHL
        assert len([r for r in stack.dhl.requests if r.numbers]) == 4
        from aiohttp.test_utils import TestClient, TestServer

        async with TestClient(TestServer(build_app(pool, stack.config("postgresql://u")))) as web:
            page = await (await web.get("/")).text()
        assert "<strong>dhl</strong> keeps failing" in page
        assert "other carriers go on" in page
    finally:
        await stack.close()


async def test_a_success_closes_a_troubled_circuit_once_its_time_is_up(pool):
    """Failures counted and a circuit whose time is up: the next answered request resets both
    (the sweep reads which circuits are troubled and resets those of the carriers it asked)."""
    stack = await start_stack()
    try:
        config = stack.config("postgresql://unused")
        shop = (await ensure_shops(pool, config.shops))[SHOP]
        await add_dhl_shipments(pool, shop.id, [f"10000000{n}{n}" for n in range(3)])
        await record_failure(pool, "ups", "timeout", threshold=5, open_for=timedelta(minutes=1))
        await record_failure(pool, "dhl", "timeout", threshold=1, open_for=timedelta(minutes=1))
        states = await circuit_states(pool)
        assert set(states.resting) == {"dhl"}
        assert states.troubled == {"dhl", "ups"}
        await pool.execute(
            "UPDATE carrier_circuits SET opened_until = now() - interval '1 s'"
            " WHERE carrier = 'dhl'"
        )
        states = await circuit_states(pool)
        assert states.resting == {}
        assert states.troubled == {"dhl", "ups"}

        settings = {
            "dhl": CarrierSettings.model_validate(
                {"api_key": DHL_KEY, "base_url": stack.dhl_url, "requests_per_second": 100}
            ),
        }
        polling = PollingConfig.model_validate({"circuit_failures": 3, "batch_size": 10})
        async with aiohttp.ClientSession() as http:
            adapters = build_adapters(settings, http)
            report = await poll_due(pool, adapters, polling, WritebackConfig(), "w", settings)
        assert report.polled == 3
        assert report.failed_batches == 0
        rows = await pool.fetch("SELECT carrier, failures, opened_until FROM carrier_circuits")
        assert {(r["carrier"], r["failures"], r["opened_until"]) for r in rows} == {
            ("dhl", 0, None),
            ("ups", 1, None),  # not asked: nothing to reset
        }
        assert await circuit_states(pool) == Circuits({}, frozenset({"ups"}))
    finally:
        await stack.close()


def reason_gauges(samples: Samples) -> dict[str, float]:
    """``tracker_carrier_circuit_reason`` for DHL, by reason."""
    return {
        reason: value(samples, "tracker_carrier_circuit_reason", carrier="dhl", reason=reason)
        for reason in ("credentials", "unavailable")
    }


async def test_refused_credentials_open_the_circuit_until_a_restart_with_new_ones(
    pool, database_url
):
    """A wrong DHL key: a failed request per shipment until the circuit opens, then none; the
    table names the carrier and the setting; a daemon started with the right key asks at once
    (the circuit would stay open for an hour otherwise) and the shipments get their events."""
    stack = await start_stack()
    dhl = Box("dhl", stack.dhl)
    numbers = [dhl.number(n) for n in range(1, 7)]
    for number in numbers:
        dhl.register(number)
        stack.store.add_order(fulfillments=[[("DHL Express", number, None)]])
    polling = {
        "circuit_failures": 3,
        "circuit_open_for": "1h",
        "batch_size": 2,
        "concurrent_batches": 1,
    }
    wrong_key = {
        "dhl": {"api_key": "not-the-key", "base_url": stack.dhl_url, "requests_per_second": 50}
    }
    daemon = Daemon(stack.config(database_url, carriers=wrong_key, polling=polling), pool)
    try:
        await daemon.start()

        async def opened() -> bool:
            row = await pool.fetchrow(
                "SELECT reason, opened_until > now() AS open FROM carrier_circuits"
                " WHERE carrier = 'dhl'"
            )
            return row is not None and row["open"] and row["reason"] == "credentials"

        await eventually(opened, what="DHL's circuit opened by the refused key")

        async def settled() -> bool:  # the sweep under way when it opened has ended
            return not await pool.fetchval(
                "SELECT count(*) FROM shipments WHERE lease_owner IS NOT NULL"
            )

        await eventually(settled, what="the claims given back")
        asked = len(stack.dhl.requests)
        async with aiohttp.ClientSession() as http, http.get(daemon.url) as response:
            page = await response.text()
        assert "<strong>dhl</strong> refuses our credentials" in page
        assert "<code>carriers.dhl</code>" in page
        assert "not-the-key" not in page
        samples = await scrape(daemon.url)
        assert value(samples, "tracker_carrier_circuit_open", carrier="dhl") == 1
        assert reason_gauges(samples) == {"credentials": 1, "unavailable": 0}
        await pool.execute("UPDATE shipments SET next_poll_at = now()")
        await asyncio.sleep(1.0)  # five sweeps
        assert len(stack.dhl.requests) == asked  # resting: not one more request
        await daemon.stop()
        assert asked < len(numbers), asked  # not a request per shipment: three, and in flight

        daemon = Daemon(stack.config(database_url, polling=polling), pool)
        await daemon.start()

        async def all_polled() -> bool:
            found = await pool.fetchval(
                "SELECT count(*) FROM shipments WHERE carrier_state = 'found'"
            )
            return bool(found == len(numbers))

        await eventually(all_polled, what="every shipment polled with the right key")
        assert await circuit_states(pool) == Circuits({}, frozenset())
        samples = await scrape(daemon.url)
        assert value(samples, "tracker_carrier_circuit_open", carrier="dhl") == 0
        assert reason_gauges(samples) == {"credentials": 0, "unavailable": 0}
    finally:
        await daemon.stop()
        await stack.close()


async def test_a_start_forgets_only_refusals_of_its_own_carriers(pool):
    hour = timedelta(hours=1)
    reasons = {"dhl": "credentials", "ups": "credentials", "usps": "unavailable"}
    for carrier, reason in reasons.items():
        await record_failure(pool, carrier, "failed", threshold=1, open_for=hour, reason=reason)
    assert await forget_refusals(pool, ["dhl", "usps"]) == ["dhl"]
    assert set((await circuit_states(pool)).resting) == {"ups", "usps"}
    assert await forget_refusals(pool, ["dhl", "usps"]) == []  # nothing left to forget


async def test_a_long_retry_after_pauses_the_carrier_for_every_replica_at_once(pool):
    """One 429 with ``Retry-After: 3600`` opens DHL's circuit for the hour (the threshold is
    five failures); a second worker with its own adapter, never told, sends nothing."""
    stack = await start_stack()
    try:
        config = stack.config("postgresql://unused")
        shop = (await ensure_shops(pool, config.shops))[SHOP]
        await add_dhl_shipments(pool, shop.id, [f"10000000{n}{n}" for n in range(2)])
        stack.dhl.retry_after = "3600"
        stack.dhl.set_fault(FaultMode.RATE_LIMITED)
        settings = {
            "dhl": CarrierSettings.model_validate(
                {"api_key": DHL_KEY, "base_url": stack.dhl_url, "requests_per_second": 100}
            )
        }
        polling = PollingConfig.model_validate({"circuit_failures": 5, "batch_size": 1})
        async with aiohttp.ClientSession() as one, aiohttp.ClientSession() as two:
            told = await poll_due(
                pool, build_adapters(settings, one), polling, WritebackConfig(), "a", settings
            )
            assert told.failed_batches == 1
            until = (await circuit_states(pool)).resting["dhl"]
            left = (until - await pool.fetchval("SELECT now()")).total_seconds()
            assert 3590 < left <= 3600, left
            sent = len(stack.dhl.requests)
            await pool.execute("UPDATE shipments SET next_poll_at = now()")
            other = await poll_due(
                pool, build_adapters(settings, two), polling, WritebackConfig(), "b", settings
            )
        assert other.claimed == 0
        assert len(stack.dhl.requests) == sent == 1
    finally:
        await stack.close()


async def test_a_pause_extends_an_open_circuit_only_when_it_ends_clearly_later(pool):
    minute, hour = timedelta(minutes=1), timedelta(hours=1)
    assert await record_failure(pool, "ups", "429", threshold=5, open_for=minute, pause=hour)
    # The requests in flight get the same answer a moment later: no new opening.
    assert not await record_failure(pool, "ups", "429", threshold=5, open_for=minute, pause=hour)
    # Failures without a pause do not shorten it.
    assert not await record_failure(pool, "ups", "timeout", threshold=1, open_for=minute)
    first = (await circuit_states(pool)).resting["ups"]
    assert await record_failure(
        pool, "ups", "429", threshold=5, open_for=minute, pause=hour + 2 * PAUSE_SLACK
    )
    assert (await circuit_states(pool)).resting["ups"] > first + PAUSE_SLACK
