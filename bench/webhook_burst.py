"""A burst of signed Shopify webhooks at a real daemon: all stored, none lost, none handled twice.

    python bench/webhook_burst.py --webhooks 1000 --concurrency 100 [--orders 300]
        [--database-url postgresql://...] [--max-seconds 600]

A Shopify sandbox store (in this process; cost bucket ``--bucket`` points refilled at
``--restore-rate`` a second) and a real ``tracker run`` process (its own config file: the
store with its client secret, no carrier, sync once an hour) on a fresh database: an embedded
PostgreSQL in a temporary directory, or a database created on ``--database-url``'s server and
dropped afterwards. Once the daemon's first sync of the empty store is done, ``--orders``
orders are created in the store (one fulfillment each, every fifth with two parcels) and
``--webhooks`` deliveries are posted to ``POST /webhooks/shopify``, ``--concurrency`` at a time,
signed with the store's client secret as Shopify signs them: ``orders/fulfilled``,
``orders/updated``, ``fulfillments/create``, ``fulfillments/update`` and
``fulfillment_events/create`` payloads of those orders. On purpose, about 10 % are sent twice
with the same ``X-Shopify-Webhook-Id`` (Shopify's retry) and about 5 % again under a new webhook
id with the same ``X-Shopify-Event-Id`` (Shopify's duplicate event), shuffled among the rest.
The orders and deliveries are made and sent by ``bench/webhook_burst_deliveries.py``.

Then, once every stored delivery is processed (or ``--max-seconds`` passed), the database is
checked: one row per distinct event, none for a duplicate, each answer "stored" or "duplicate"
as it should be, every delivery processed exactly once (claimed once: ``attempts`` 1; the
daemon's log lines add up to the same count) and none failed, and every order named by an
order or fulfillment topic in ``shipments`` with all its parcels. Prints one JSON line with the
counts, ``ok``, the answer latencies and how long storing and processing took.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.procstat import MachineCpu, busy_percent
from bench.sweep import load_average
from bench.webhook_burst_deliveries import SHOP, make_deliveries, make_orders, post_all

TOKEN = "shpat_bench_burst"
TICKS = os.sysconf("SC_CLK_TCK")
_PROCESSED = re.compile(r"webhooks: (\d+) processed")


class Daemon:
    """``python -m tracker run`` with its output in files."""

    def __init__(self, config: Path, workdir: Path) -> None:
        self.out = workdir / "daemon.out"
        self.err = workdir / "daemon.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tracker", "run", "--config", str(config)],
                cwd=workdir,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    async def url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.out.read_text(errors="replace").splitlines():
                if line.startswith("Status table: "):
                    return line.split()[-1].rstrip("/")
            if self.proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        raise RuntimeError(f"the daemon did not start:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.err.read_text(errors="replace").splitlines()[-lines:])

    def processed_in_log(self) -> int:
        return sum(int(m) for m in _PROCESSED.findall(self.err.read_text(errors="replace")))

    def cpu_seconds(self) -> float:
        text = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = text[text.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def write_config(path: Path, database_url: str, shopify_url: str, secret: str) -> None:
    import yaml

    config = {
        "database": {"url": database_url},
        "shops": [
            {
                "domain": SHOP,
                "access_token": TOKEN,
                "api_url": shopify_url,
                "api_version": "2026-10",
                "client_secret": secret,
            }
        ],
        "web": {"host": "127.0.0.1", "port": 0},
        "sync": {"interval": "1h"},
        "log": {"level": "INFO"},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


async def _wait(pool: Any, sql: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if await pool.fetchval(sql):
            return True
        await asyncio.sleep(0.1)
    return False


def latency(values: list[float]) -> dict[str, float]:
    ordered = sorted(values) or [0.0]

    def at(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1)

    return {"p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1], 1)}


async def burst(
    database_url: str,
    workdir: Path,
    *,
    webhooks: int = 1000,
    concurrency: int = 100,
    orders: int = 300,
    bucket: float = 20_000,
    restore_rate: float = 1_000,
    max_seconds: float = 600,
    seed: int = 11,
) -> dict[str, Any]:
    """The whole burst against a fresh, empty database; the figures and the checks."""
    from tracker.db.pool import create_pool
    from tracker.sandbox.serve import serve
    from tracker.sandbox.shopify_app import build_app
    from tracker.sandbox.shopify_store import ShopifyStore
    from tracker.shopify.webhook_topics import ORDER_TOPICS

    deadline = time.monotonic() + max_seconds
    store = ShopifyStore(SHOP, TOKEN, bucket_size=bucket, restore_rate=restore_rate)
    runner, shopify_url = await serve(build_app(store), 0)
    config = workdir / "burst.yaml"
    write_config(config, database_url, shopify_url, store.client_secret)
    daemon = Daemon(config, workdir)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        url = await daemon.url(min(120.0, max_seconds))
        if not await _wait(pool, "SELECT bool_and(last_sync_at IS NOT NULL) FROM shops", deadline):
            raise RuntimeError(f"the daemon's first sync did not finish:\n{daemon.log_tail()}")
        made = make_orders(store, orders)
        deliveries = make_deliveries(store, made, webhooks, seed)
        load_before, machine = load_average(), MachineCpu.read()
        cpu_before = daemon.cpu_seconds()
        answers, send_seconds = await post_all(
            url + "/webhooks/shopify", deliveries, store.client_secret, concurrency
        )
        stored_by = time.monotonic()
        done = await _wait(
            pool,
            "SELECT NOT EXISTS (SELECT 1 FROM webhook_deliveries"
            " WHERE processed_at IS NULL AND failed_at IS NULL)",
            deadline,
        )
        processed_after = time.monotonic() - stored_by
        await asyncio.sleep(1.5)  # one more round of the processor, should anything be left
        cpu = daemon.cpu_seconds() - cpu_before
        machine_busy = busy_percent(machine, MachineCpu.read())
        peak_rss = daemon.peak_rss_mib()
        rows = [dict(r) for r in await pool.fetch("SELECT * FROM webhook_deliveries")]
        span = await pool.fetchrow(
            "SELECT min(received_at) AS first, max(received_at) AS stored,"
            " max(processed_at) AS processed FROM webhook_deliveries"
        )
        shipments = await pool.fetch("SELECT order_id, count(*) AS n FROM shipments GROUP BY 1")
    finally:
        await pool.close()
        code = daemon.stop()
        await runner.cleanup()

    kinds = Counter(d.kind for d in deliveries)
    answered = Counter(
        answer if status == 200 else f"HTTP {status}" for _, status, answer, _ in answers
    )
    events_sent = {d.event_id for d in deliveries}
    ids_sent = {d.webhook_id for d in deliveries}
    per_event = Counter(r["event_id"] for r in rows)
    handled = Counter(r["attempts"] for r in rows if r["processed_at"] is not None)
    touched = {d.order for d in deliveries if d.topic in ORDER_TOPICS}
    parcels = {f"gid://shopify/Order/{o.id}": len(o.fulfillments[0].tracking) for o in made}
    expected = {gid: n for gid, n in parcels.items() if int(gid.rsplit("/", 1)[1]) in touched}
    found = {r["order_id"]: r["n"] for r in shipments}
    distinct = len(events_sent)
    checks = {
        "one_row_per_distinct_event": len(rows) == distinct
        and set(per_event) == events_sent
        and max(per_event.values(), default=0) == 1,
        "only_sent_webhook_ids_stored": {r["webhook_id"] for r in rows} <= ids_sent,
        "answers_stored_or_duplicate": answered["stored"] == distinct
        and answered["duplicate"] == len(deliveries) - distinct
        and sum(answered.values()) == len(deliveries),
        "all_processed_once": done and handled == Counter({1: len(rows)}),
        "none_failed": not any(r["failed_at"] or r["error"] for r in rows),
        "daemon_log_counts_each_once": daemon.processed_in_log() == len(rows),
        "orders_applied_with_all_parcels": found == expected,
        "daemon_exited_cleanly": code == 0,
    }
    assert span is not None
    first, stored, processed = span["first"], span["stored"], span["processed"]
    return {
        "webhooks": len(deliveries),
        "concurrency": concurrency,
        "ok": all(checks.values()),
        "checks": checks,
        "distinct_events": distinct,
        "sent": dict(kinds),
        "answers": dict(answered),
        "rows": len(rows),
        "lost": distinct - len(set(per_event) & events_sent),
        "processed_once": handled.get(1, 0),
        "processed_more_than_once": sum(n for attempts, n in handled.items() if attempts > 1),
        "unprocessed": sum(1 for r in rows if r["processed_at"] is None),
        "failed": sum(1 for r in rows if r["failed_at"] is not None),
        "shopify_order_reads": store.stats.by_operation.get("OrderForSync", 0),
        "orders_applied": len(found),
        "send_seconds": round(send_seconds, 2),
        "answers_per_s": round(len(deliveries) / send_seconds, 1),
        "answer_ms": latency([ms for *_, ms in answers]),
        "stored_span_seconds": round((stored - first).total_seconds(), 2) if rows else None,
        "processed_span_seconds": round((processed - first).total_seconds(), 2)
        if processed
        else None,
        "processing_left_after_send_seconds": round(processed_after, 2),
        "daemon_cpu_s": round(cpu, 1),
        "daemon_peak_rss_mb": round(peak_rss, 1),
        "machine_busy_pct": machine_busy,
        "load_before": load_before,
        "load_after": load_average(),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--webhooks", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--bucket", type=float, default=20_000, help="Shopify cost bucket")
    parser.add_argument("--restore-rate", type=float, default=1_000, help="points per second")
    parser.add_argument("--database-url", default=os.environ.get("TRACKER_TEST_DATABASE_URL"))
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    if args.webhooks < 20 or args.concurrency < 1 or args.orders < 1:
        parser.error("--webhooks 20 or more, --concurrency and --orders positive")
    return args


def main() -> int:
    from bench.sweep_setup import create_database, drop_database

    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-burst-"))
    embedded = None
    server_url = args.database_url
    name = ""
    try:
        if not server_url:
            from tracker.db.embedded import EmbeddedPostgres

            embedded = EmbeddedPostgres(workdir / "data")
            server_url = embedded.start()
        database_url, name, _ = asyncio.run(create_database(server_url))
        result = asyncio.run(
            burst(
                database_url,
                workdir,
                webhooks=args.webhooks,
                concurrency=args.concurrency,
                orders=args.orders,
                bucket=args.bucket,
                restore_rate=args.restore_rate,
                max_seconds=args.max_seconds,
                seed=args.seed,
            )
        )
    finally:
        if server_url and name:
            asyncio.run(drop_database(server_url, name))
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
