"""Three ``tracker run`` processes on one PostgreSQL share the work (issue 5, many replicas).

Real processes against a real ``tracker sandbox`` process (a store of a few hundred orders over
every carrier, parcels moving on their timelines) and the test's own database: each due
shipment is polled exactly once, no event reaches Shopify twice, a carrier's daily budget holds
across all three.
"""

from __future__ import annotations

import asyncio
import importlib
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import yaml

from carriers.sandbox_base import RequestRecord
from tests.processes import Processes, running_processes, worker_pid, write_config
from tracker.engine.budget import next_budget_day

DAEMONS = 3
ORDERS = 300
BUDGET_CARRIER = "dhl"  # the most common carrier of the demo world; one number per request
BUDGET = 50


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with running_processes(tmp_path) as group:
        yield group


def normalized(number: str) -> str:
    return "".join(number.split()).upper()


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def number_requests(
    http: aiohttp.ClientSession, code: str, url: str
) -> tuple[list[RequestRecord], list[RequestRecord]]:
    """A carrier sandbox's requests about numbers: (tracking reads, the rest).

    The rest are AfterShip's registrations; token fetches carry no number and are left out.
    """
    module = importlib.import_module(f"carriers.{code}.sandbox")
    is_read = getattr(module, "is_tracking_request", lambda record: True)
    records = [
        RequestRecord(r["at"], r["method"], r["path"], tuple(r["numbers"]), r["status"])
        for r in await get_json(http, f"{url}/_sandbox/requests")
        if r["numbers"]
    ]
    return [r for r in records if is_read(r)], [r for r in records if not is_read(r)]


def per_number(records: list[RequestRecord]) -> Counter[str]:
    return Counter(normalized(n) for r in records for n in r.numbers)


def replica_config(sandbox_config: dict[str, Any], database_url: str) -> dict[str, Any]:
    """The sandbox's configuration, on one shared database, with polls due once per test."""
    data = dict(sandbox_config)
    data["database"] = {"url": database_url, "pool_min_size": 1, "pool_max_size": 8}
    data["web"] = {"host": "127.0.0.1", "port": 0}  # no public_url: no webhooks
    for code, settings in data["carriers"].items():
        # 3 daemons x 15/s (x2 for AfterShip's registrations) stay under the sandboxes' 100/s,
        # so no request is ever answered 429 and retried.
        settings["requests_per_second"] = 15
        if code == BUDGET_CARRIER:
            settings["requests_per_day"] = BUDGET
    data["polling"] = {
        "sweep_interval": "0.5s",
        # Small claims, few at once (a daemon holds at most 50), so the three interleave:
        # with the defaults one daemon could claim every due shipment in one sweep.
        "batch_size": 25,
        "concurrent_batches": 2,
        "lease": "2m",
        # Long enough that every shipment is due exactly once during the test.
        "pre_transit_every": "6h",
        "in_transit_every": "1h",
        "out_for_delivery_every": "1h",
        "not_found_every": "6h",
    }
    data["writeback"] = {"drain_interval": "0.5s"}
    return data


async def test_three_daemons_share_one_database(processes, database_url, tmp_path):
    sandbox = processes.start(
        "sandbox",
        "sandbox",
        "--write-config",
        str(tmp_path / "sandbox.yaml"),
        "--orders",
        str(ORDERS),
        "--speed",
        "1",
        "--seed",
        "11",
    )
    shopify = (await sandbox.wait_for_line("Shopify sandbox: ")).split()[2].split("/admin/")[0]
    await sandbox.wait_for_line("Config written: ")
    carriers = {
        line.split()[2].rstrip(":"): line.split()[-1]
        for line in sandbox.stdout().splitlines()
        if line.startswith("Carrier sandbox ")
    }
    assert BUDGET_CARRIER in carriers, carriers
    assert len(carriers) >= 5, carriers
    config = write_config(
        tmp_path / "replica.yaml",
        replica_config(yaml.safe_load((tmp_path / "sandbox.yaml").read_text()), database_url),
    )

    db = await asyncpg.connect(database_url)
    try:
        # Read the store once, then hold every shipment back until all three daemons are up,
        # so that the first to start does not poll everything alone.
        sync = processes.start("sync", "sync", "--config", str(config))
        assert await sync.wait_exit(60) == 0, sync.tail()
        await db.execute(
            "UPDATE shipments SET next_poll_at = now() + interval '1 day' WHERE active"
        )
        daemons = [processes.run(f"daemon{i}", config) for i in range(DAEMONS)]
        for daemon in daemons:
            await daemon.status_table(timeout=60)
        released = await db.fetchval(
            """
            WITH due AS (
                UPDATE shipments SET next_poll_at = now()
                WHERE active AND next_poll_at > now() + interval '12 hours'
                  AND carrier = ANY($1::text[])
                RETURNING 1
            ) SELECT count(*) FROM due
            """,
            list(carriers),
        )
        assert released >= 200, f"only {released} shipments to poll"

        # Until nothing is due (but what the budget carrier's spent budget leaves due), claimed
        # or waiting to be written: watch who holds claims.
        owners: set[int] = set()
        deadline = time.monotonic() + 120  # a hang guard: ~10 s when the machine is idle
        while True:
            held = await db.fetch(
                "SELECT DISTINCT lease_owner FROM shipments WHERE lease_owner IS NOT NULL"
            )
            owners |= {worker_pid(r["lease_owner"]) for r in held}
            busy = await db.fetchrow(
                """
                SELECT
                  (SELECT count(*) FROM shipments
                   WHERE (active AND next_poll_at <= now() AND carrier = ANY($1::text[])
                          AND (carrier <> $2 OR NOT EXISTS (
                              SELECT 1 FROM carrier_budgets
                              WHERE carrier = $2 AND used >= $3
                                AND day = (now() AT TIME ZONE 'UTC')::date)))
                      OR lease_owner IS NOT NULL) AS polls,
                  (SELECT count(*) FROM tracking_events
                   WHERE writeback_state IN ('pending', 'sending')) AS writes
                """,
                list(carriers),
                BUDGET_CARRIER,
                BUDGET,
            )
            if busy["polls"] == 0 and busy["writes"] == 0:
                break
            assert time.monotonic() < deadline, f"still busy after 120 s: {dict(busy)}"
            await asyncio.sleep(0.05)

        codes = await asyncio.gather(*(d.stop(signal.SIGTERM) for d in daemons))
        assert codes == [0] * DAEMONS, processes.report()

        shipments = await db.fetch(
            """
            SELECT tracking_number, carrier, last_polled_at, next_poll_at, lease_owner,
                   lease_until
            FROM shipments WHERE carrier = ANY($1::text[]) AND tracking_number <> ''
            """,
            list(carriers),
        )
        written = await db.fetch(
            "SELECT shopify_event_id FROM tracking_events WHERE writeback_state = 'written'"
        )
        used = await db.fetchval(
            "SELECT used FROM carrier_budgets WHERE carrier = $1"
            " AND day = (now() AT TIME ZONE 'UTC')::date",
            BUDGET_CARRIER,
        )
    finally:
        await db.close()

    async with aiohttp.ClientSession() as http:
        requests = {code: await number_requests(http, code, url) for code, url in carriers.items()}
        events = (await get_json(http, f"{shopify}/_sandbox/events"))["events"]
    reads = {code: pair[0] for code, pair in requests.items()}

    # The work was shared: every daemon held claims while the shipments were polled.
    assert owners == {d.pid for d in daemons}, f"claims seen from {owners}"

    # (a) Every number asked about once: one read, or with AfterShip a read that did not list
    # it, its registration and one more read; none registered twice. Every shipment polled was
    # asked about, and only those were.
    for code, (read, other) in requests.items():
        registered = per_number(other)
        twice = {n: c for n, c in registered.items() if c > 1}
        assert not twice, f"{code}: {len(twice)} numbers registered more than once: {twice}"
        again = {n: c for n, c in per_number(read).items() if c > 1 + registered[n]}
        assert not again, f"{code}: {len(again)} numbers read more than once: {again}"
    asked = per_number([r for pair in requests.values() for part in pair for r in part])
    polled = {normalized(s["tracking_number"]) for s in shipments if s["last_polled_at"]}
    assert polled == set(asked), (
        f"polled but not asked: {sorted(polled - set(asked))[:10]}, "
        f"asked but not polled: {sorted(set(asked) - polled)[:10]}"
    )
    read_once = sum(len(per_number(read)) for read in reads.values())
    assert read_once >= 150, read_once
    assert not any(s["lease_owner"] for s in shipments)
    waiting = [s for s in shipments if not s["last_polled_at"]]
    assert {s["carrier"] for s in waiting} <= {BUDGET_CARRIER}, "a due shipment was not polled"

    # (c) The budget carrier: at most BUDGET reads by all three, the rest wait for tomorrow,
    # still due as they were (their place in the order kept), claimed by none.
    budget_reads = reads[BUDGET_CARRIER]
    assert len(budget_reads) <= BUDGET
    assert len(budget_reads) == used == BUDGET, (len(budget_reads), used)
    assert len(waiting) >= 10, f"only {len(waiting)} {BUDGET_CARRIER} shipments over budget"
    assert all(s["next_poll_at"] < next_budget_day() for s in waiting)
    assert all(s["lease_until"] == next_budget_day() for s in waiting)

    # (b) No event written twice; the store has exactly the events the daemons recorded.
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids))
    keys = Counter(
        (e["fulfillment_id"], e["status"], e["happened_at"], e["city"], e["message"])
        for e in events
    )
    assert not [k for k, c in keys.items() if c > 1], "an event was written twice"
    assert len(events) == len(written) >= 100, (len(events), len(written))
    assert set(ids) == {r["shopify_event_id"] for r in written}
    print(
        f"{released} shipments due; {read_once} numbers read once each, claims held by "
        f"{len(owners)} daemons; {BUDGET_CARRIER}: {len(budget_reads)} reads for a budget of "
        f"{BUDGET}, {len(waiting)} wait for tomorrow; {len(events)} events written once each"
    )
