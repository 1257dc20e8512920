"""Connections given back to our pools: reset only when a job changed the session."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tracker.db.connection import PooledConnection, reset_on_release
from tracker.db.pool import create_pool

LOCK = (424242, 7)


@pytest.fixture
async def single(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """One of our pools with one connection: every acquire gets the same session back."""
    pool = await create_pool(database_url, min_size=1, max_size=1)
    yield pool
    await pool.close()


async def lock_is_free(conn: asyncpg.Connection) -> bool:
    """Whether another session could take LOCK now (taken and given back at once if so)."""
    free: bool = await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *LOCK)
    if free:
        await conn.execute("SELECT pg_advisory_unlock($1, $2)", *LOCK)
    return free


async def test_a_marked_connection_gives_its_session_lock_back(
    single: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    async with single.acquire() as pooled:
        assert isinstance(pooled._con, PooledConnection)
        reset_on_release(pooled)
        await pooled.execute("SELECT pg_advisory_lock($1, $2)", *LOCK)
        assert not await lock_is_free(conn)
        # The job is cancelled before its unlock: nothing unlocks explicitly.
    assert await lock_is_free(conn)


async def test_an_unmarked_connection_is_given_back_without_a_round_trip(
    single: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    async with single.acquire() as pooled:
        backend = await pooled.fetchval("SELECT pg_backend_pid()")
        # A session lock taken without the mark stays with the connection: this is what
        # the mark is for, and what shows that no reset ran.
        await pooled.execute("SELECT pg_advisory_lock($1, $2)", *LOCK)
    assert not await lock_is_free(conn)
    async with single.acquire() as pooled:
        assert await pooled.fetchval("SELECT pg_backend_pid()") == backend
        reset_on_release(pooled)
    assert await lock_is_free(conn)
    # The mark holds for one release only.
    async with single.acquire() as pooled:
        await pooled.execute("SELECT pg_advisory_lock($1, $2)", *LOCK)
    assert not await lock_is_free(conn)


async def test_an_open_transaction_is_rolled_back_either_way(single: asyncpg.Pool) -> None:
    pooled = await single.acquire()
    transaction = pooled.transaction()
    await transaction.start()
    await pooled.execute("CREATE TABLE left_open (x int)")
    await single.release(pooled)
    async with single.acquire() as again:
        assert await again.fetchval("SELECT to_regclass('left_open')") is None
        assert not again.is_in_transaction()


def test_every_session_lock_is_taken_on_a_marked_connection() -> None:
    """Each session-level advisory lock in the daemon's code is preceded, within a few lines,
    by ``reset_on_release`` on its connection: otherwise a job cancelled before its unlock
    would leave the lock on a pooled connection for good."""
    root = Path(__file__).resolve().parents[1] / "tracker"
    sites = 0
    for path in sorted(root.rglob("*.py")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if re.search(r"pg_(try_)?advisory_lock\(", line):
                sites += 1
                before = "\n".join(lines[max(0, i - 4) : i + 1])
                assert "reset_on_release(" in before, f"{path.name}:{i + 1}: {line.strip()}"
    assert sites >= 5  # sync, webhooks, backfill, write-back, migrations
