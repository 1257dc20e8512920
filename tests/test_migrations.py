"""The migration runner: applies in order once, records checksums, refuses edited files."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.conftest import with_database
from tracker.db.migrations import Migration, MigrationError, load_migrations, migrate


@pytest.fixture
async def empty_db(pg_server_url):
    name = f"mig_{id(object())}"
    admin = await asyncpg.connect(pg_server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(with_database(pg_server_url, name))
    yield conn
    await conn.close()
    await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.close()


def test_migration_files_are_numbered_from_one_without_gaps():
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))


async def test_applies_every_migration_once_in_order(empty_db):
    applied = await migrate(empty_db)
    assert applied == [m.filename for m in load_migrations()]
    assert await migrate(empty_db) == []
    rows = await empty_db.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["checksum"]) for r in rows] == [
        (m.version, m.checksum) for m in load_migrations()
    ]
    assert await empty_db.fetchval("SELECT to_regclass('tracking_events') IS NOT NULL")


async def test_an_edited_applied_migration_stops_start_up(empty_db):
    first = load_migrations()[0]
    await migrate(empty_db, [first])
    edited = Migration(first.version, first.name, first.sql + "\n-- edited\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(empty_db, [edited])


async def test_a_database_newer_than_the_code_is_refused(empty_db):
    first = load_migrations()[0]
    extra = Migration(99, "future", "SELECT 1;")
    await migrate(empty_db, [first, extra])
    with pytest.raises(MigrationError, match="this code is older than the database"):
        await migrate(empty_db, [first])


async def test_a_failing_migration_leaves_nothing_half_done(empty_db):
    bad = Migration(1, "broken", "CREATE TABLE half (id int); SELECT no_such_function();")
    with pytest.raises(asyncpg.PostgresError):
        await migrate(empty_db, [bad])
    assert not await empty_db.fetchval("SELECT to_regclass('half') IS NOT NULL")
    assert await empty_db.fetchval("SELECT count(*) FROM schema_migrations") == 0


async def test_concurrent_runners_apply_each_migration_once(pg_server_url, empty_db):
    url = with_database(pg_server_url, await empty_db.fetchval("SELECT current_database()"))
    conns = [await asyncpg.connect(url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
    finally:
        for c in conns:
            await c.close()
    assert sorted(len(r) for r in results) == [0, 0, len(load_migrations())]


async def test_0012_leaves_two_poll_priorities(empty_db):
    """Rows written under the four old priorities (0 urgent, 50 in transit, 100 routine, 200
    confirming) keep urgent and routine; in transit and confirming become routine."""
    migrations = load_migrations()
    before = [m for m in migrations if m.version < 12]
    await migrate(empty_db, before)
    shop = await empty_db.fetchval(
        "INSERT INTO shops (domain, api_version) VALUES ('m.myshopify.com', '2026-10') RETURNING id"
    )
    for n, priority in enumerate((0, 50, 100, 200)):
        await empty_db.execute(
            """
            INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id,
                                   tracking_number, carrier, poll_priority)
            VALUES ($1, $2, $3, $4, $5, 'dhl', $6)
            """,
            shop,
            f"gid://shopify/Order/{n}",
            f"#{n}",
            f"gid://shopify/Fulfillment/{n}",
            f"JJD0000000000000005{n}",
            priority,
        )
    assert await migrate(empty_db, migrations) == [m.filename for m in migrations[11:]]
    rows = await empty_db.fetch("SELECT order_name, poll_priority FROM shipments ORDER BY 1")
    assert [(r["order_name"], r["poll_priority"]) for r in rows] == [
        ("#0", 0),
        ("#1", 100),
        ("#2", 100),
        ("#3", 100),
    ]
