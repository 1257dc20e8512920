"""The connection pool, on the configured server or an embedded one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from tracker.config import DatabaseConfig
from tracker.db.embedded import EmbeddedPostgres
from tracker.db.migrations import migrate

log = logging.getLogger(__name__)

SERVER_SETTINGS = {"timezone": "UTC", "application_name": "tracker"}


class DatabaseUnavailable(Exception):
    """The database could not be reached."""


@asynccontextmanager
async def database_url(config: DatabaseConfig) -> AsyncIterator[str]:
    """The configured URL, or that of an embedded server started for the duration."""
    if config.url is not None:
        yield config.url.get_secret_value()
        return
    embedded = EmbeddedPostgres(config.data_dir)
    url = await asyncio.to_thread(embedded.start)
    try:
        yield url
    finally:
        await asyncio.to_thread(embedded.stop)


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            server_settings=SERVER_SETTINGS,
            command_timeout=60,
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from None
    assert pool is not None
    return pool


@asynccontextmanager
async def open_database(
    config: DatabaseConfig, *, run_migrations: bool
) -> AsyncIterator[asyncpg.Pool]:
    """A ready pool: server started if embedded, migrations applied if asked."""
    async with database_url(config) as url:
        pool = await create_pool(url, min_size=config.pool_min_size, max_size=config.pool_max_size)
        try:
            if run_migrations:
                async with pool.acquire() as conn:
                    await migrate(conn)
            yield pool
        finally:
            await pool.close()
