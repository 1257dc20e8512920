"""The connection pool, on the configured server or an embedded one."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlsplit

import asyncpg

from tracker.config import DatabaseConfig
from tracker.db.connection import PooledConnection
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


class _OneLineReconnects(logging.Filter):
    """asyncpg's pool retries its lost connections while the server is away, logging a traceback
    each time; one line with the reason says the same."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def _quiet_pool_reconnects() -> None:
    pool_log = logging.getLogger("asyncpg.pool")
    if not any(isinstance(f, _OneLineReconnects) for f in pool_log.filters):
        pool_log.addFilter(_OneLineReconnects())


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A pool on ``url``; it outlives a server restart (lost connections are made again)."""
    _quiet_pool_reconnects()
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            server_settings=SERVER_SETTINGS,
            command_timeout=60,
            connection_class=PooledConnection,
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {server_label(url)}: {_masked(_reason(exc), url)}"
        ) from None
    except ValueError as exc:  # a malformed URL (asyncpg.ClientConfigurationError too)
        raise DatabaseUnavailable(
            "the database URL is not a usable PostgreSQL URL "
            f"(postgresql://user:password@host:port/database): {_masked(str(exc), url)}"
        ) from None
    assert pool is not None
    return pool


def server_label(url: str) -> str:
    """``user@host:port/database`` of a PostgreSQL URL, for messages: never the password."""
    try:
        parts = urlsplit(url)
        port = parts.port
        query = parse_qs(parts.query)
    except ValueError:
        return "an unreadable URL"
    host = parts.hostname or query.get("host", ["localhost"])[0]
    user = parts.username or query.get("user", [""])[0]
    database = parts.path.lstrip("/") or query.get("dbname", [""])[0]
    where = f"{host}:{port}" if port else host
    return f"{user + '@' if user else ''}{where}{'/' + database if database else ''}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError) or "Connect call failed" in str(exc):
        return "connection refused (is PostgreSQL running there, on that port?)"
    if isinstance(exc, socket.gaierror):
        return "host name not found"
    if isinstance(exc, TimeoutError):
        return "no answer in time (a firewall, or the wrong host?)"
    return str(exc) or type(exc).__name__


def _masked(text: str, url: str) -> str:
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return text.replace(password, "***") if password else text


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
