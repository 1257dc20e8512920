"""Claims: leases on due shipments, taken by one statement and given back by the worker that
holds them; and what a claim costs the table (it must not write an index entry)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from tracker.config import PollingConfig
from tracker.engine.claims import CLAIM_DUE, claim_due
from tracker.engine.release import postpone, release_failed

LEASE = timedelta(minutes=5)


async def add_shipments(pool: asyncpg.Pool, carriers: list[str]) -> list[int]:
    """One due shipment per entry of ``carriers``, in that order, with what a sync stores of
    it; their ids."""
    shop = await pool.fetchval(
        "INSERT INTO shops (domain, api_version) VALUES ('claims.myshopify.com', '2026-10')"
        " ON CONFLICT (domain) DO UPDATE SET api_version = EXCLUDED.api_version RETURNING id"
    )
    first = await pool.fetchval("SELECT count(*) FROM shipments")
    ids: list[int] = await pool.fetchval(
        """
        WITH added AS (
            INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id,
                                   tracking_number, tracking_company, tracking_url, carrier,
                                   fulfilled_at, customer_name, customer_email, next_poll_at)
            SELECT $1, 'gid://shopify/Order/' || (5500000000 + n), '#' || (1000 + n),
                   'gid://shopify/Fulfillment/' || (4400000000 + n), 'NUMBER' || (1000000 + n),
                   upper(c), 'https://track.example.com/?n=NUMBER' || (1000000 + n), c,
                   now() - interval '1 day', 'Customer ' || n, 'customer' || n || '@example.com',
                   now() - interval '1 hour' + n * interval '1 microsecond'
            FROM unnest($2::text[]) WITH ORDINALITY AS u(c, n)
            RETURNING id
        )
        SELECT array_agg(id ORDER BY id) FROM added
        """,
        shop,
        carriers,
    )
    assert await pool.fetchval("SELECT count(*) FROM shipments") == first + len(carriers)
    return ids


async def test_concurrent_workers_never_claim_the_same_shipment(pool):
    ids = await add_shipments(pool, ["dhl"] * 300)
    claims = await asyncio.gather(
        *(claim_due(pool, f"worker-{w}", LEASE, 40, ["dhl"]) for w in range(10))
    )
    taken = [s.id for claim in claims for s in claim]
    assert len(taken) == len(set(taken)) == 300  # all of them, each once
    assert set(taken) == set(ids)
    owners = await pool.fetch("SELECT id, lease_owner FROM shipments")
    by_owner = {r["id"]: r["lease_owner"] for r in owners}
    for w, claim in enumerate(claims):
        assert all(by_owner[s.id] == f"worker-{w}" for s in claim)


async def test_a_claim_takes_due_unleased_shipments_of_its_carriers_most_urgent_first(pool):
    ids = await add_shipments(pool, ["dhl", "dhl", "dhl", "ups", "dhl", "dhl"])
    held, expired, later, other_carrier, urgent, plain = ids
    await pool.execute(
        "UPDATE shipments SET lease_owner = 'other', lease_until = now() + interval '1 minute'"
        " WHERE id = $1",
        held,
    )
    await pool.execute(
        "UPDATE shipments SET lease_owner = 'dead', lease_until = now() - interval '1 second'"
        " WHERE id = $1",
        expired,
    )
    await pool.execute(
        "UPDATE shipments SET next_poll_at = now() + interval '1 hour' WHERE id = $1", later
    )
    await pool.execute("UPDATE shipments SET poll_priority = 0 WHERE id = $1", urgent)
    claimed = await claim_due(pool, "me", LEASE, 2, ["dhl"])
    assert [s.id for s in claimed] == [urgent, expired]  # in the claim's order, not the table's
    rest = await claim_due(pool, "me", LEASE, 10, ["dhl"])
    assert [s.id for s in rest] == [plain]  # held, not yet due and other carriers stay
    leases = {
        r["id"]: (r["lease_owner"], r["lease_until"] > datetime.now(UTC))
        for r in await pool.fetch("SELECT id, lease_owner, lease_until FROM shipments")
        if r["lease_owner"]
    }
    assert leases == {
        held: ("other", True),
        expired: ("me", True),
        urgent: ("me", True),
        plain: ("me", True),
    }
    assert other_carrier not in leases


async def test_claims_write_next_to_the_rows_not_to_the_indexes(pool):
    """Every shipment of a page claimed at once, as a sweep claims freshly synced ones: the page
    has room for the claimed versions (migrations/0010), and a claim changes no indexed column,
    so PostgreSQL updates in place (HOT) and adds no index entry. The lease makes a row a little
    longer than it was, so the last row or so of a page may not fit: nearly all, not all."""
    await add_shipments(pool, ["fedex"] * 400)
    worker = "ip-10-0-3-17:48213:9f2c1a"  # as tracker.engine.daemon names a worker
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(CLAIM_DUE, worker, LEASE, 400, ["fedex"], [], [])
        counts = await conn.fetchrow(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables"
            " WHERE relname = 'shipments'"
        )
    assert len(rows) == counts["n_tup_upd"] == 400
    assert counts["n_tup_hot_upd"] >= 360, f"only {counts['n_tup_hot_upd']} of 400 in place"


async def test_only_the_holder_gives_a_claim_back(pool):
    ids = await add_shipments(pool, ["usps"] * 4)
    mine = await claim_due(pool, "me", LEASE, 2, ["usps"])
    theirs = await claim_due(pool, "them", LEASE, 2, ["usps"])
    assert len(mine) == len(theirs) == 2
    # A claim taken over since (the lease ran out and another worker claimed the shipment).
    await pool.execute("UPDATE shipments SET lease_owner = 'them' WHERE id = $1", mine[1].id)
    await release_failed(pool, "me", mine + theirs, "unavailable", "503", PollingConfig())
    rows = {
        r["id"]: r
        for r in await pool.fetch(
            "SELECT id, lease_owner, carrier_state, poll_failures, next_poll_at > now() AS later"
            " FROM shipments"
        )
    }
    released = rows[mine[0].id]
    assert (released["lease_owner"], released["carrier_state"]) == (None, "unavailable")
    assert (released["poll_failures"], released["later"]) == (1, True)
    for shipment in [mine[1], *theirs]:
        row = rows[shipment.id]
        assert (row["lease_owner"], row["carrier_state"], row["poll_failures"]) == (
            "them",
            "pending",
            0,
        )
    until = datetime.now(UTC) + timedelta(hours=3)
    await postpone(pool, "them", theirs, until)
    postponed = await pool.fetch(
        "SELECT lease_owner, next_poll_at FROM shipments WHERE id = ANY($1::bigint[])",
        [s.id for s in theirs],
    )
    assert [(r["lease_owner"], r["next_poll_at"]) for r in postponed] == [(None, until)] * 2
    assert sorted(ids) == sorted(rows)
