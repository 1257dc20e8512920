"""The status table and JSON API under load: N shipments, C concurrent clients for S seconds.

    python bench/load_web.py --shipments 1000000 --clients 50 --seconds 60
        [--database-url postgresql://.../db | --data-dir DIR] [--solo 5] [--seed 7]

The database holds N shipments of three stores as ``bench/web_world.py`` makes them (every tab
and filter has rows; attention flags by the daemon's own SQL). ``--database-url`` names a
database that is kept: empty, it is migrated and seeded; seeded before by this script with the
same N, it is reused as it is. Without it an embedded PostgreSQL is started, in ``--data-dir``
(kept, and its database reused by the next run) or in a temporary directory removed afterwards.

The web server runs in a process of its own: the app ``tracker run`` serves on 127.0.0.1
(``tracker.web.build_app`` on a pool of the default size; on loopback, so no login), without
the daemon's sync, polling and write-back jobs, so that the figures are the web's alone.
This process drives it with C concurrent clients (one ``aiohttp`` session each, no pause
between requests) over a mix of what merchants and scripts do: the first page of each tab,
filters and sorts, searches (order number, tracking number, surname), later pages by following
the page's "Next page" link or the API's ``next_cursor``, a shipment's page, the JSON list,
item and counts, and the CSV export of a search for an order-number prefix (10 to 110 rows).
Before the timed run each kind of request is made ``--solo`` times by one client alone: those
latencies are what a request costs without waiting behind others. The clients and their mix
are in ``bench/load_web_clients.py``.

Prints one JSON line: requests, errors (any answer but 200, or no answer), requests/s, latency
p50/p95/p99 overall and per route (ms), the solo latencies, CPU seconds and share of one core of
the server, of PostgreSQL and of this driver, the server's peak RSS, how busy the machine's
cores were, load averages before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load_web_clients import Recorder, Targets, drive, percentiles
from bench.procstat import MachineCpu, busy_percent, postmaster_of, server_cpu_seconds
from bench.sweep import load_average
from bench.web_world import SHOPS

MIB = 1024 * 1024
TICKS = os.sysconf("SC_CLK_TCK")


# -- the server process --------------------------------------------------------------------


def serve_web(database_url: str, pipe: Connection) -> None:
    """Child process: serve ``tracker run``'s web app until told to stop."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="server: %(levelname)s %(message)s")
    asyncio.run(_serve_web(database_url, pipe))


async def _serve_web(database_url: str, pipe: Connection) -> None:
    from aiohttp import web

    from tracker.config import Config
    from tracker.db.pool import create_pool
    from tracker.web import build_app

    config = Config.model_validate({"database": {"url": database_url}})
    pool = await create_pool(
        database_url,
        min_size=config.database.pool_min_size,
        max_size=config.database.pool_max_size,
    )
    runner = web.AppRunner(build_app(pool, config), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    pipe.send(("ready", runner.addresses[0][1]))
    try:
        await asyncio.to_thread(pipe.recv)
    finally:
        await runner.cleanup()
        await pool.close()


@dataclass(frozen=True)
class ServerProcess:
    pid: int

    def cpu_seconds(self) -> float:
        text = Path(f"/proc/{self.pid}/stat").read_text()
        fields = text[text.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def memory_mib(self, key: str) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        return 0.0


# -- the database --------------------------------------------------------------------------


async def prepare(database_url: str, shipments: int, seed: int) -> dict[str, Any]:
    """Migrate; seed an empty database, reuse one this script seeded with ``shipments``."""
    import asyncpg

    from bench.web_world import seed as seed_world
    from tracker.db.migrations import migrate

    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
        count = await conn.fetchval("SELECT count(*) FROM shipments")
        domains = sorted(await conn.fetchval("SELECT array_agg(domain) FROM shops") or [])
    finally:
        await conn.close()
    if count == 0 and not domains:
        return await seed_world(database_url, shipments, seed)
    if count != shipments or domains != sorted(d for d, _ in SHOPS):
        raise SystemExit(
            f"{urlsplit(database_url).path[1:]} holds {count} shipments of {domains}, not "
            f"{shipments} of this benchmark: give an empty database or the one seeded before"
        )
    return {"reused": True}


async def read_targets(database_url: str, shipments: int, seed: int) -> tuple[Targets, Any]:
    """What to ask for, the server's version and its postmaster (for its CPU)."""
    import asyncpg

    rng = random.Random(seed)
    ids = [rng.randrange(1, shipments + 1) for _ in range(5000)]
    conn = await asyncpg.connect(database_url)
    try:
        numbers = await conn.fetchval(
            "SELECT array_agg(tracking_number) FROM shipments "
            "WHERE id = ANY($1::bigint[]) AND tracking_number <> ''",
            ids[:1000],
        )
        version = await conn.fetchval("SHOW server_version")
        postmaster = postmaster_of(await conn.fetchval("SELECT pg_backend_pid()"))
    finally:
        await conn.close()
    return Targets(ids, list(numbers or ["none"]), shipments, datetime.now(UTC)), (
        version,
        postmaster,
    )


async def ensure_database(server_url: str, name: str) -> str:
    import asyncpg

    admin = await asyncpg.connect(server_url)
    try:
        if not await admin.fetchval("SELECT true FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


# -- the run -------------------------------------------------------------------------------


def route_figures(recorder: Recorder) -> dict[str, dict[str, float | int]]:
    return {
        route: {**percentiles(values), "errors": recorder.errors.get(route, 0)}
        for route, values in sorted(recorder.latencies.items())
    }


def measure(
    args: argparse.Namespace, database_url: str, prepared: dict[str, Any]
) -> dict[str, Any]:
    targets, (version, postmaster) = asyncio.run(
        read_targets(database_url, args.shipments, args.seed)
    )
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    child = context.Process(target=serve_web, args=(database_url, theirs), daemon=True)
    child.start()
    try:
        if not ours.poll(120):
            raise SystemExit("the web server did not start within 120 s")
        _, port = ours.recv()
        server = ServerProcess(child.pid or 0)
        rss_idle = server.memory_mib("VmRSS")
        base = f"http://127.0.0.1:{port}"

        load_before = load_average()
        cpu = (server.cpu_seconds(), time.process_time())
        pg_before = server_cpu_seconds(postmaster) if postmaster else None
        machine = MachineCpu.read()
        solo, load, wall = asyncio.run(
            drive(base, targets, args.clients, args.seconds, args.solo, args.seed)
        )
        machine_after = MachineCpu.read()
        pg_after = server_cpu_seconds(postmaster) if postmaster else None
        server_cpu = server.cpu_seconds() - cpu[0]
        driver_cpu = time.process_time() - cpu[1]
        peak_rss = server.memory_mib("VmHWM")
    finally:
        with contextlib.suppress(OSError, ValueError):
            ours.send("stop")
        child.join(30)
        if child.is_alive():
            child.terminate()
            child.join(10)
    every = [v for values in load.latencies.values() for v in values]
    errors = sum(load.errors.values()) + sum(solo.errors.values())
    pg_cpu = None if pg_before is None or pg_after is None else pg_after - pg_before
    solo_p50 = {route: percentiles(v)["p50"] for route, v in sorted(solo.latencies.items())}

    def share(seconds: float | None) -> float | None:
        return None if seconds is None else round(100 * seconds / wall, 1)

    return {
        "shipments": args.shipments,
        "clients": args.clients,
        "seconds": round(wall, 1),
        "requests": len(every),
        "errors": errors,
        "requests_per_s": round(len(every) / wall, 1),
        "latency_ms": percentiles(every),
        "routes_ms": route_figures(load),
        "solo_p50_ms": solo_p50,
        "server_cpu_s": round(server_cpu, 1),
        "server_cpu_pct_of_core": share(server_cpu),
        "server_peak_rss_mb": round(peak_rss, 1),
        "server_idle_rss_mb": round(rss_idle, 1),
        "postgres_cpu_s": None if pg_cpu is None else round(pg_cpu, 1),
        "postgres_cpu_pct_of_core": share(pg_cpu),
        "driver_cpu_s": round(driver_cpu, 1),
        "machine_busy_pct": busy_percent(machine, machine_after),
        "load_before": load_before,
        "load_after": load_average(),
        "error_examples": load.examples + solo.examples,
        "postgres": version,
        **prepared,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shipments", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--solo", type=int, default=5, help="solo requests of each kind first")
    parser.add_argument("--database-url", help="a database to seed, or seeded before: kept")
    parser.add_argument("--data-dir", type=Path, help="embedded PostgreSQL here, kept")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.shipments < 100 or args.clients < 1 or args.seconds <= 0 or args.solo < 0:
        parser.error("--shipments 100 or more, --clients and --seconds positive")
    if args.database_url and args.data_dir:
        parser.error("give --database-url or --data-dir, not both")
    return args


def main() -> int:
    args = parse_args()
    embedded = None
    workdir: Path | None = None
    try:
        database_url = args.database_url
        if not database_url:
            from tracker.db.embedded import EmbeddedPostgres

            data_dir = args.data_dir
            if data_dir is None:
                workdir = data_dir = Path(tempfile.mkdtemp(prefix="bench-web-"))
            embedded = EmbeddedPostgres(data_dir / "data")
            server_url = embedded.start()
            database_url = asyncio.run(ensure_database(server_url, f"bench_web_{args.shipments}"))
        prepared = asyncio.run(prepare(database_url, args.shipments, args.seed))
        result = measure(args, database_url, prepared)
    finally:
        if embedded is not None:
            embedded.stop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
