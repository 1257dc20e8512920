"""Poll sweep throughput, CPU, memory and database size: N due shipments, sandboxes at L ms.

    python bench/sweep.py --shipments 100000 --latency-ms 200 [--carrier fedex ...]
        [--sweeps 1] [--pollers 1] [--database-url postgresql://...] [--max-seconds 1200]

A child process seeds N shipments into a fresh database (COPY, 50,000 rows a statement) and
then serves every carrier sandbox on 127.0.0.1 with ``L`` ms of latency per request and no
rate limit (see ``bench/sweep_world.py``). This process runs the daemon's own poll path,
``Daemon.poll_sweep`` (``tracker.engine.poller.poll_due``) with the adapters of
``carriers.registry.build_adapters`` on the daemon's HTTP session and default polling and pool
settings, until every seeded shipment has been polled once, ``--sweeps`` times (between two
sweeps, untimed: the sandbox clocks move on so one more scan is visible, every shipment is due
again, ``VACUUM ANALYZE shipments``). With ``--pollers N``, N - 1 more processes poll side by
side with this one, as N replicas of ``tracker run`` on this machine would
(``bench/sweep_pollers.py``).

Without ``--database-url`` (or ``TRACKER_TEST_DATABASE_URL``) an embedded PostgreSQL is started
in a temporary directory, removed afterwards. Prints one JSON line: shipments, latency_ms,
updates_per_s (polls that found the parcel, per second of sweep), cpu_ms_per_1k (CPU of the
polling processes per 1,000 updates), peak_rss_mb (the largest polling process, MiB; each one's
in pollers_peak_rss_mb), db_mb_per_1k_shipments (``pg_database_size`` / N * 1,000, MiB), then
details: CPU of the sandboxes and of PostgreSQL per 1,000 updates, transactions committed per
1,000 updates, how busy the machine's cores were, load averages, counts, and
``host_parse_us``: the host's speed before and after the run as ``bench/parse_speed.py``
measures it (microseconds per shipment; the same code on the same machine has shown 48 to 85,
and every process's CPU per update moves with it). The sweeps run on the event loop and
garbage-collector settings ``tracker run`` uses (:mod:`tracker.loop`).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.procstat import (
    MachineCpu,
    busy_percent,
    postmaster_of,
    server_cpu_seconds,
)
from bench.sweep_pollers import (
    DUE,
    OtherPoller,
    drain,
    open_daemon,
    peak_rss_mib,
    start_pollers,
)
from bench.sweep_setup import Child, create_database, drop_database, host_speed, start_child
from bench.sweep_world import HOURS_PER_SWEEP, WorldSpec, default_mix
from tracker.loop import loop_name, settle_gc
from tracker.loop import run as run_loop

MIB = 1024 * 1024
_COUNTS = """
SELECT count(*) FILTER (WHERE last_polled_at >= $1) AS polled,
       count(*) FILTER (WHERE last_polled_at >= $1 AND carrier_state = 'found') AS found,
       count(*) FILTER (WHERE last_polled_at >= $1
                          AND carrier_state IN ('carrier_error', 'unavailable')) AS failed
FROM shipments
"""
_REQUEUE = """
UPDATE shipments SET next_poll_at = $1::timestamptz + id * interval '1 microsecond'
WHERE active
"""


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


@dataclass
class Totals:
    polled: int = 0
    found: int = 0
    failed: int = 0
    new_events: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    commits: int = 0
    sandbox_cpu: float = 0.0
    pg_cpu: float | None = 0.0
    busy: MachineCpu = field(default_factory=lambda: MachineCpu(0.0, 0.0))
    per_sweep: list[float] = field(default_factory=list)
    complete: bool = True


async def sweeps(
    args: argparse.Namespace,
    database_url: str,
    carriers: dict[str, dict[str, Any]],
    child: Child,
    deadline: float,
) -> dict[str, Any]:
    """Run ``args.sweeps`` full sweeps with the daemon's poll path; the figures."""
    rss_before = peak_rss_mib()
    totals = Totals()
    profiler = cProfile.Profile() if args.profile else None
    load_before = load_average()
    others = await asyncio.to_thread(start_pollers, args.pollers - 1, args, database_url, carriers)
    try:
        async with open_daemon(args, database_url, carriers) as daemon:
            pool = daemon.pool
            settle_gc()  # as `tracker run` does
            postmaster = postmaster_of(await pool.fetchval("SELECT pg_backend_pid()"))
            for k in range(args.sweeps):
                if k:
                    await asyncio.to_thread(child.ask, "advance", HOURS_PER_SWEEP)
                    base: datetime = await pool.fetchval("SELECT now() - interval '1 hour'")
                    await pool.execute(_REQUEUE, base)
                    await pool.execute("VACUUM ANALYZE shipments")
                if not await sweep(daemon, others, child, postmaster, totals, deadline, profiler):
                    break
            db_bytes = await pool.fetchval("SELECT pg_database_size(current_database())")
            table_bytes = await pool.fetchval(
                "SELECT pg_total_relation_size('shipments')"
                " + pg_total_relation_size('tracking_events')"
            )
            events = await pool.fetchval("SELECT count(*) FROM tracking_events")
            config = daemon.config
    finally:
        other_rss = [await asyncio.to_thread(poller.stop) for poller in others]
    if profiler is not None:
        profiler.dump_stats(args.profile)

    n = args.shipments
    updates = totals.found
    per_1k = 1000 / updates if updates else None

    def ms_per_1k(seconds: float | None) -> float | None:
        return round(seconds * 1000 * per_1k, 1) if per_1k and seconds is not None else None

    return {
        "shipments": n,
        "latency_ms": args.latency_ms,
        "updates_per_s": round(updates / totals.wall, 1) if totals.wall else None,
        "cpu_ms_per_1k": ms_per_1k(totals.cpu),
        "peak_rss_mb": round(max([peak_rss_mib(), *(r for r in other_rss if r)]), 1),
        "db_mb_per_1k_shipments": round(db_bytes / MIB / n * 1000, 3),
        "sweeps": args.sweeps,
        "complete": totals.complete,
        "carriers": sorted(carriers),
        "polled": totals.polled,
        "found": totals.found,
        "failed": totals.failed,
        "new_events": totals.new_events,
        "events_in_db": events,
        "sweep_seconds": round(totals.wall, 2),
        "per_sweep_updates_per_s": totals.per_sweep,
        "sandbox_cpu_ms_per_1k": ms_per_1k(totals.sandbox_cpu),
        "postgres_cpu_ms_per_1k": ms_per_1k(totals.pg_cpu),
        "transactions_per_1k": round(totals.commits * per_1k, 1) if per_1k else None,
        "machine_busy_pct": busy_percent(MachineCpu(0.0, 0.0), totals.busy),
        "others_busy_pct": others_percent(totals),
        "load_before": load_before,
        "load_after": load_average(),
        "rss_before_mb": round(rss_before, 1),
        "db_mb": round(db_bytes / MIB, 1),
        "tables_mb_per_1k_shipments": round(table_bytes / MIB / n * 1000, 3),
        "batch_size": config.polling.batch_size,
        "concurrent_batches": config.polling.concurrent_batches,
        "requests_in_flight": config.polling.requests_in_flight,
        "pool_max_size": config.database.pool_max_size,
        "pollers": args.pollers,
        "pollers_peak_rss_mb": [round(peak_rss_mib(), 1), *other_rss],
    }


def others_percent(totals: Totals) -> float | None:
    """Share of all cores' time used by processes other than ours, the sandboxes and PostgreSQL:
    what the other engineers' work took from this run."""
    if totals.pg_cpu is None or totals.busy.total <= 0:
        return None
    ours = totals.cpu + totals.sandbox_cpu + totals.pg_cpu
    return round(100 * max(0.0, totals.busy.busy - ours) / totals.busy.total, 1)


async def sweep(
    daemon: Any,
    others: list[OtherPoller],
    child: Child,
    postmaster: int | None,
    totals: Totals,
    deadline: float,
    profiler: cProfile.Profile | None,
) -> bool:
    """One sweep over every due shipment by every poller; adds to ``totals``; False if the
    deadline passed first."""
    pool = daemon.pool
    since: datetime = await pool.fetchval("SELECT now()")
    commits_before = await committed(pool)
    sandbox_before = await asyncio.to_thread(child.ask, "cpu")
    pg_before = server_cpu_seconds(postmaster) if postmaster else None
    machine_before = MachineCpu.read()
    wall, cpu = time.perf_counter(), time.process_time()
    for poller in others:
        poller.sweep()
    if profiler is not None:
        profiler.enable()
    try:
        async with asyncio.timeout(max(1.0, deadline - time.monotonic())):
            await drain(daemon)
    except TimeoutError:
        totals.complete = False
    finally:
        if profiler is not None:
            profiler.disable()
    cpu = time.process_time() - cpu
    for poller in others:
        left = max(1.0, deadline - time.monotonic())
        if totals.complete and await asyncio.to_thread(poller.pipe.poll, left):
            cpu += poller.swept()
        else:
            totals.complete = False
    if totals.complete and await pool.fetchval(DUE):
        print("the sweep ended with shipments still due", file=sys.stderr)
        totals.complete = False
    wall = time.perf_counter() - wall
    machine_after = MachineCpu.read()
    pg_after = server_cpu_seconds(postmaster) if postmaster else None
    sandbox_after = await asyncio.to_thread(child.ask, "cpu")

    counts = await pool.fetchrow(_COUNTS, since)
    await asyncio.sleep(1.5)  # every backend reports its statistics within a second of idling
    totals.commits += await committed(pool) - commits_before
    totals.new_events += await pool.fetchval(
        "SELECT count(*) FROM tracking_events WHERE discovered_at >= $1", since
    )
    totals.polled += counts["polled"]
    totals.found += counts["found"]
    totals.failed += counts["failed"]
    totals.wall += wall
    totals.cpu += cpu
    totals.sandbox_cpu += sandbox_after - sandbox_before
    if totals.pg_cpu is not None and pg_before is not None and pg_after is not None:
        totals.pg_cpu += pg_after - pg_before
    else:
        totals.pg_cpu = None
    totals.busy = MachineCpu(
        totals.busy.busy + machine_after.busy - machine_before.busy,
        totals.busy.total + machine_after.total - machine_before.total,
    )
    totals.per_sweep.append(round(counts["found"] / wall, 1) if wall else 0.0)
    return totals.complete


async def committed(pool: Any) -> int:
    """Transactions committed in the benchmark's database so far (pg_stat_database)."""
    value: int = await pool.fetchval(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    )
    return value


def parse_args() -> argparse.Namespace:
    from carriers.registry import BUILTIN
    from tracker.config import PollingConfig

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shipments", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--carrier",
        action="append",
        choices=sorted(BUILTIN),
        help="only this carrier (repeat for several); default: the demo's mix of all six",
    )
    parser.add_argument("--sweeps", type=int, default=1)
    parser.add_argument("--database-url", default=os.environ.get("TRACKER_TEST_DATABASE_URL"))
    parser.add_argument("--max-seconds", type=float, default=1200.0)
    polling = PollingConfig()
    parser.add_argument(
        "--batch-size",
        type=int,
        default=polling.batch_size,
        help=f"polling.batch_size (the daemon's default, {polling.batch_size})",
    )
    parser.add_argument(
        "--concurrent-batches",
        type=int,
        default=polling.concurrent_batches,
        help=f"polling.concurrent_batches (the daemon's default, {polling.concurrent_batches})",
    )
    parser.add_argument(
        "--requests-in-flight",
        type=int,
        default=polling.requests_in_flight,
        help=f"polling.requests_in_flight (the daemon's default, {polling.requests_in_flight})",
    )
    parser.add_argument(
        "--pool-max-size", type=int, default=10, help="database.pool_max_size (default 10)"
    )
    parser.add_argument(
        "--pollers",
        type=int,
        default=1,
        help="polling processes side by side, as that many `tracker run` replicas (default 1)",
    )
    parser.add_argument("--profile", metavar="FILE", help="write cProfile stats of the sweeps")
    args = parser.parse_args()
    if args.shipments < 1 or args.sweeps < 1 or args.pollers < 1 or args.latency_ms < 0:
        parser.error(
            "--shipments, --sweeps and --pollers must be positive, --latency-ms not negative"
        )
    return args


def main() -> int:
    args = parse_args()
    deadline = time.monotonic() + args.max_seconds
    mix = default_mix()
    if args.carrier:
        weights = dict(mix)
        mix = tuple((code, weights.get(code, 1)) for code in dict.fromkeys(args.carrier))
    workdir: Path | None = None
    embedded = None
    server_url = args.database_url
    name = ""
    child: Child | None = None
    try:
        if not server_url:
            from tracker.db.embedded import EmbeddedPostgres

            workdir = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
            embedded = EmbeddedPostgres(workdir / "data")
            server_url = embedded.start()
        host_before = host_speed()
        database_url, name, version = asyncio.run(create_database(server_url))
        spec = WorldSpec(args.shipments, mix, args.sweeps, args.latency_ms, database_url)
        child, ready = start_child(spec, deadline)
        # On the event loop `tracker run` uses (tracker/loop.py: uvloop where installed).
        result = run_loop(sweeps(args, database_url, ready["carriers"], child, deadline))
        result["host_parse_us"] = [host_before, host_speed()]
        result["seed_seconds"] = ready["seed_seconds"]
        result["postgres"] = version
        result["event_loop"] = loop_name()
    finally:
        if child is not None:
            child.stop()
        if server_url and name:
            asyncio.run(drop_database(server_url, name))
        if embedded is not None:
            embedded.stop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return 0 if result["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
