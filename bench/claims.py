"""How long one claim statement takes with many shipments due, in the shapes a daemon sends.

    python bench/claims.py [--shipments 1000000] [--repeat 8] [--database-url URL]

Seeds ``--shipments`` due shipments (UPS 40 %, DHL 30 %, PostNord 30 %, due up to 1,000 s ago)
and 1,000 USPS shipments due in two hours, then runs ``tracker.engine.claims.CLAIM_DUE`` (the
daemon's statement, on one prepared statement as asyncpg sends it, so PostgreSQL's generic plan
is in play after the fifth run) ``--repeat`` times in each shape, giving every claim back in
between:

* ``open``: every carrier uncapped (what a daemon sends when its carriers' rates are high);
* ``rare_open``: one uncapped carrier with nothing due (FedEx) beside four capped ones;
* ``capped_none_due``: the three busy carriers uncapped, USPS capped at 1 with nothing due.

A capped carrier is one whose rate cannot ask a batch's worth in 10 s
(``tracker.engine.poller.claim_caps``). Prints one JSON line: milliseconds per claim in each
shape (every run), the rows each claimed, and the PostgreSQL version.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sweep_setup import create_database, drop_database
from tracker.engine.claims import CLAIM_DUE

LEASE = timedelta(minutes=5)
BATCH = 400
SHAPES: dict[str, tuple[list[str], dict[str, int]]] = {
    "open": (["ups", "dhl", "postnord", "usps"], {}),
    "rare_open": (["fedex"], {"ups": 50, "dhl": 10, "postnord": 40, "usps": 1}),
    "capped_none_due": (["ups", "dhl", "postnord"], {"usps": 1}),
}


async def measure(database_url: str, shipments: int, repeat: int) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        shop = await conn.fetchval(
            "INSERT INTO shops (domain, api_version) VALUES ('bench.myshopify.com', '2026-10')"
            " RETURNING id"
        )
        started = time.perf_counter()
        await conn.execute(
            """
            INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id,
                                   tracking_number, carrier, next_poll_at)
            SELECT $1, 'o' || i, '#' || i, 'f' || i, 'T' || i,
                   CASE WHEN i % 10 < 4 THEN 'ups' WHEN i % 10 < 7 THEN 'dhl' ELSE 'postnord' END,
                   now() - (i % 1000) * interval '1 second'
            FROM generate_series(1, $2::int) AS i
            """,
            shop,
            shipments,
        )
        await conn.execute(
            """
            INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id,
                                   tracking_number, carrier, next_poll_at)
            SELECT $1, 'u' || i, '#u' || i, 'uf' || i, 'U' || i, 'usps',
                   now() + interval '2 hours'
            FROM generate_series(1, 1000) AS i
            """,
            shop,
        )
        await conn.execute("ANALYZE shipments")
        seed_seconds = time.perf_counter() - started
        ms: dict[str, list[float]] = {}
        rows: dict[str, int] = {}
        for shape, (open_carriers, caps) in SHAPES.items():
            ms[shape] = []
            for _ in range(repeat):
                began = time.perf_counter()
                claimed = await conn.fetch(
                    CLAIM_DUE, "bench", LEASE, BATCH, open_carriers, list(caps), list(caps.values())
                )
                ms[shape].append(round((time.perf_counter() - began) * 1000, 1))
                rows[shape] = len(claimed)
                await conn.execute(
                    "UPDATE shipments SET lease_owner = NULL, lease_until = NULL"
                    " WHERE lease_owner = 'bench'"
                )
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return {
        "shipments": shipments,
        "ms_per_claim": ms,
        "rows": rows,
        "seed_seconds": round(seed_seconds, 1),
        "postgres": version,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shipments", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=8, help="claims per shape")
    parser.add_argument("--database-url", help="a server to create a scratch database on")
    args = parser.parse_args()
    if args.shipments < 1 or args.repeat < 1:
        parser.error("--shipments and --repeat must be at least 1")
    workdir: Path | None = None
    embedded = None
    server_url = args.database_url
    name = ""
    try:
        if not server_url:
            from tracker.db.embedded import EmbeddedPostgres

            workdir = Path(tempfile.mkdtemp(prefix="bench-claims-"))
            embedded = EmbeddedPostgres(workdir / "data")
            server_url = embedded.start()
        database_url, name, _ = asyncio.run(create_database(server_url))
        result = asyncio.run(measure(database_url, args.shipments, args.repeat))
    finally:
        if server_url and name:
            asyncio.run(drop_database(server_url, name))
        if embedded is not None:
            embedded.stop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
