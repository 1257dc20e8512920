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
latencies are what a request costs without waiting behind others.

Prints one JSON line: requests, errors (any answer but 200, or no answer), requests/s, latency
p50/p95/p99 overall and per route (ms), the solo latencies, CPU seconds and share of one core of
the server, of PostgreSQL and of this driver, the server's peak RSS, how busy the machine's
cores were, load averages before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import multiprocessing
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.procstat import MachineCpu, busy_percent, postmaster_of, server_cpu_seconds
from bench.sweep import load_average
from bench.web_world import LAST_NAMES, ORDER_BASE, SHOPS

MIB = 1024 * 1024
TICKS = os.sysconf("SC_CLK_TCK")
REQUEST_TIMEOUT = 60.0
PAGES_FOLLOWED = 4
"""At most this many "next" pages after a first page (each followed with probability 1/2)."""
_NEXT = re.compile(r'<a href="([^"]+)" rel="next">')
TABS = (
    "all",
    "attention",
    "active",
    "pre_transit",
    "in_transit",
    "out_for_delivery",
    "delivered",
    "problems",
    "untracked",
)
STATUSES = ("in_transit", "delivered", "out_for_delivery", "label_printed", "attempted_delivery")
CARRIERS = ("dhl", "ups", "fedex", "usps", "postnord", "aftership", "unknown")
FLAGS = ("stalled", "late", "not_found", "delivery_attempt_failed", "expired")
SORTS = ("order", "last_scan", "eta", "transit", "shipped")


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


# -- what the clients ask ------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    """Real values to ask for: shipment ids, tracking numbers, the days shipments span."""

    ids: list[int]
    numbers: list[str]
    shipments: int
    today: datetime


def _query(path: str, **params: str) -> str:
    pairs = [(k, v) for k, v in params.items() if v]
    return path + ("?" + urlencode(pairs) if pairs else "")


def _table_view(rng: random.Random, targets: Targets) -> str:
    choice = rng.randrange(8)
    if choice == 0:
        return _query("/", status=rng.choice(STATUSES), carrier=rng.choice(CARRIERS))
    if choice == 1:
        return _query("/", store=rng.choice(SHOPS)[0], tab=rng.choice(("all", "active")))
    if choice == 2:
        return _query("/", tab="active", attention=",".join(rng.sample(FLAGS, 2)))
    if choice == 3:
        start = targets.today - timedelta(days=rng.randrange(7, 90))
        end = start + timedelta(days=6)
        return _query("/", shipped_from=f"{start:%Y-%m-%d}", shipped_to=f"{end:%Y-%m-%d}")
    if choice == 4:
        return _query("/", tab="active", last_scan_before=rng.choice(("2d", "5d", "1w")))
    if choice == 5:
        return _query("/", tab="in_transit", sort="eta", carrier=rng.choice(CARRIERS[:5]))
    if choice == 6:
        return _query("/", tab=rng.choice(TABS), sort=rng.choice(SORTS))
    return _query("/", sort=rng.choice(SORTS), dir=rng.choice(("asc", "desc")))


def _search(rng: random.Random, targets: Targets) -> str:
    choice = rng.randrange(4)
    if choice == 0:
        q = f"#{ORDER_BASE + rng.randrange(targets.shipments)}"
    elif choice == 1:
        q = rng.choice(targets.numbers)
    elif choice == 2:
        q = rng.choice(LAST_NAMES)
    else:
        q = f"{rng.choice(LAST_NAMES).lower()}{rng.randrange(997)}@"
    return _query("/", q=q)


@dataclass
class Recorder:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    examples: list[str] = field(default_factory=list)


class Client:
    """One merchant's browser or script: one session, one request at a time."""

    def __init__(
        self,
        session: Any,
        base: str,
        rng: random.Random,
        recorder: Recorder,
        until: float = float("inf"),
    ) -> None:
        self.session = session
        self.base = base
        self.rng = rng
        self.recorder = recorder
        self.until = until  # no more "next" pages after this (perf_counter)

    def follows(self) -> bool:
        """Whether the user goes on to the next page (half do, while the run lasts)."""
        return time.perf_counter() < self.until and self.rng.random() >= 0.5

    async def get(self, route: str, path: str) -> tuple[int, bytes]:
        started = time.perf_counter()
        status, body = 0, b""
        try:
            async with self.session.get(self.base + path, allow_redirects=False) as response:
                status, body = response.status, await response.read()
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            problem = f"HTTP {status}: {body[:200]!r}"
        self.recorder.latencies[route].append((time.perf_counter() - started) * 1000)
        if status != 200:
            self.recorder.errors[route] += 1
            if len(self.recorder.examples) < 10:
                self.recorder.examples.append(f"{route} {path}: {problem}")
        return status, body

    async def table(self, route: str, path: str) -> None:
        status, body = await self.get(route, path)
        for _ in range(PAGES_FOLLOWED):
            found = _NEXT.search(body.decode("utf-8", "replace")) if status == 200 else None
            if found is None or not self.follows():
                return
            status, body = await self.get("table_next_page", html.unescape(found.group(1)))

    async def api_list(self, path: str) -> None:
        status, body = await self.get("api_list", path)
        for _ in range(PAGES_FOLLOWED):
            cursor = json.loads(body).get("next_cursor") if status == 200 else None
            if not cursor or not self.follows():
                return
            joiner = "&" if "?" in path else "?"
            status, body = await self.get("api_next_page", f"{path}{joiner}cursor={cursor}")

    async def one(self, targets: Targets, kind: str | None = None) -> None:
        """One thing a user does (``kind``, or one picked by the mix's weights)."""
        rng = self.rng
        kind = kind or rng.choices(KINDS, weights=WEIGHTS)[0]
        if kind == "table_tab":
            tab = rng.choice(TABS)
            await self.table(kind, "/" if tab == "all" else _query("/", tab=tab))
        elif kind == "table_filter":
            await self.table(kind, _table_view(rng, targets))
        elif kind == "table_search":
            await self.table(kind, _search(rng, targets))
        elif kind == "shipment_page":
            await self.get(kind, f"/shipments/{rng.choice(targets.ids)}")
        elif kind == "api_list":
            view = _table_view(rng, targets) if rng.random() < 0.5 else f"/?tab={rng.choice(TABS)}"
            await self.api_list("/api/shipments" + view[1:])
        elif kind == "api_item":
            await self.get(kind, f"/api/shipments/{rng.choice(targets.ids)}")
        elif kind == "api_counts":
            await self.get(kind, "/api/counts" + _table_view(rng, targets)[1:])
        else:
            prefix = f"#{(ORDER_BASE + rng.randrange(targets.shipments)) // 10}"
            await self.get(kind, _query("/export.csv", q=prefix))  # 10 to 110 orders


MIX = {
    "table_tab": 20,
    "table_filter": 15,
    "table_search": 10,
    "shipment_page": 12,
    "api_list": 10,
    "api_item": 12,
    "api_counts": 4,
    "export_csv": 2,
}
KINDS, WEIGHTS = list(MIX), list(MIX.values())


async def drive(
    base: str, targets: Targets, clients: int, seconds: float, solo: int, seed: int
) -> tuple[Recorder, Recorder, float]:
    """The solo pass, then ``clients`` clients for ``seconds``; (solo, load, wall seconds)."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    solo_recorder = Recorder()
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = Client(session, base, random.Random(seed), solo_recorder)
        for _ in range(solo):
            for kind in KINDS:
                await client.one(targets, kind)

    recorder = Recorder()
    sessions = [aiohttp.ClientSession(timeout=timeout) for _ in range(clients)]
    started = time.perf_counter()
    end = started + seconds

    async def run(n: int) -> None:
        client = Client(sessions[n], base, random.Random(seed * 1000 + n), recorder, end)
        while time.perf_counter() < end:
            await client.one(targets)

    try:
        await asyncio.gather(*(run(n) for n in range(clients)))
    finally:
        wall = time.perf_counter() - started
        for session in sessions:
            await session.close()
    return solo_recorder, recorder, wall


def percentiles(values: list[float]) -> dict[str, float | int]:
    ordered = sorted(values)

    def at(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1)

    return {"n": len(ordered), "p50": at(0.5), "p95": at(0.95), "p99": at(0.99)}


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
