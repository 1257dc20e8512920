"""Bulk backfill throughput and memory: N orders from a Shopify sandbox in another process.

    python bench/backfill.py [--orders 100000] [--database-url postgresql://...]

The sandbox and its N orders live in a child process, so the peak RSS measured here is the
backfill's own: the JSONL result is streamed and applied 500 orders per transaction, so it should
stay flat whatever N is (compare ``--orders 20000`` with the default). Without a database URL
(or ``TRACKER_TEST_DATABASE_URL``) an embedded PostgreSQL is started in a temporary directory.
Prints one JSON line: orders, shipments, seconds (total, waiting for Shopify, reading and
applying), orders_per_s (total) and apply_orders_per_s, peak_rss_mib and rss_before_mib.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DOMAIN = "bench-store.myshopify.com"
TOKEN = "shpat_bench_token"


def serve_sandbox(orders: int, conn: Connection) -> None:
    """Child process: a sandbox store with ``orders`` fulfilled orders, until told to stop."""

    async def main() -> None:
        from tracker.sandbox.serve import serve
        from tracker.sandbox.shopify_app import build_app
        from tracker.sandbox.shopify_store import ShopifyStore

        store = ShopifyStore(DOMAIN, TOKEN, bucket_size=2000, restore_rate=1000)
        start = datetime.now(UTC) - timedelta(days=30)
        for n in range(orders):
            parcels = [("DHL Express", f"JJD{n:012d}")]
            if n % 4 == 0:
                parcels.append(("UPS", "1Z999AA10123456784"))
            store.add_order(
                f"#{100000 + n}", fulfillments=[parcels], created_at=start + timedelta(seconds=n)
            )
        runner, url = await serve(build_app(store), 0)
        conn.send(url)
        await asyncio.to_thread(conn.recv)
        await runner.cleanup()

    asyncio.run(main())


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@dataclass
class Phases:
    started: float
    finished_waiting: float | None = None


async def backfill(url: str, database_url: str) -> dict[str, object]:
    import aiohttp
    import asyncpg

    from tracker.config import ShopConfig
    from tracker.db.migrations import migrate
    from tracker.db.pool import create_pool
    from tracker.shopify.backfill import PollPolicy, Progress, backfill_shop
    from tracker.shopify.client import ShopifyClient
    from tracker.shopify.sync import ensure_shops

    name = f"bench_backfill_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    db_url = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    try:
        pool = await create_pool(db_url, min_size=2, max_size=4)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            shop_config = ShopConfig(
                domain=DOMAIN, access_token=TOKEN, api_url=url, api_version="2026-10"
            )
            shop = (await ensure_shops(pool, [shop_config]))[DOMAIN]
            before = peak_rss_mib()
            phases = Phases(time.perf_counter())

            def progress(update: Progress) -> None:
                if update.phase == "reading" and phases.finished_waiting is None:
                    phases.finished_waiting = time.perf_counter()

            async with aiohttp.ClientSession() as http:
                client = ShopifyClient(shop_config, http)
                report = await backfill_shop(
                    pool,
                    client,
                    shop,
                    ["dhl"],
                    progress=progress,
                    poll=PollPolicy(first=0.2, factor=1.5, longest=1.0),
                )
            ended = time.perf_counter()
            shipments = await pool.fetchval("SELECT count(*) FROM shipments")
        finally:
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    waited = (phases.finished_waiting or ended) - phases.started
    applying = ended - (phases.finished_waiting or ended)
    total = ended - phases.started
    return {
        "orders": report.orders,
        "outcome": report.outcome.value,
        "shipments": shipments,
        "seconds": round(total, 2),
        "wait_seconds": round(waited, 2),
        "apply_seconds": round(applying, 2),
        "orders_per_s": round(report.orders / total, 1),
        "apply_orders_per_s": round(report.orders / applying, 1) if applying else None,
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "rss_before_mib": round(before, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--database-url", default=os.environ.get("TRACKER_TEST_DATABASE_URL"))
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    child = context.Process(target=serve_sandbox, args=(args.orders, theirs), daemon=True)
    child.start()
    embedded = None
    try:
        database_url = args.database_url
        if not database_url:
            from tracker.db.embedded import EmbeddedPostgres

            embedded = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="bench-pg-")) / "data")
            database_url = embedded.start()
        if not ours.poll(600):
            raise SystemExit("the sandbox did not start")
        url = ours.recv()
        result = asyncio.run(backfill(url, database_url))
    finally:
        ours.send("stop")
        child.join(30)
        if embedded is not None:
            embedded.stop()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
