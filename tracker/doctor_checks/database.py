"""The database: reachable, migrations current, its size, the backlog of due shipments, and the
carriers whose polls are paused (an open circuit).

With ``database.url`` the server is asked directly. Without it the daemon uses an embedded
PostgreSQL in ``database.data_dir``: the doctor joins it (or starts it, and stops it again when
no daemon is using it); a data directory that does not exist yet is reported, not created.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import asyncpg

from tracker.config import DatabaseConfig
from tracker.db.embedded import EmbeddedPostgres, EmbeddedPostgresError
from tracker.db.migrations import MigrationError, pending_migrations
from tracker.db.pool import SERVER_SETTINGS
from tracker.doctor_checks import Check, describe_error, fail, ok, warn
from tracker.doctor_checks.carriers import CarrierUse
from tracker.engine.circuit import paused_carriers

SUBJECT = "database"
OVERDUE_WARNING = timedelta(hours=1)
"""A shipment due this long ago means no daemon is polling (or it cannot keep up)."""
EMBEDDED_START_SECONDS = 120.0
"""Starting an embedded server the first time takes a while on a slow disk."""


@dataclass
class DatabaseReport:
    checks: list[Check] = field(default_factory=list)
    use: dict[str, CarrierUse] | None = None
    """Per carrier, when the database could be read: active shipments, requests used today."""


async def check_database(config: DatabaseConfig, timeout: float) -> DatabaseReport:
    report = DatabaseReport()
    if config.url is None and not config.data_dir.exists():
        report.checks.append(
            ok(
                SUBJECT,
                f"embedded PostgreSQL in {config.data_dir} does not exist yet: the daemon "
                "creates it and applies the migrations when it starts",
            )
        )
        return report
    try:
        async with _server_url(config, timeout) as (url, where):
            await _check_server(url, where, config, timeout, report)
    except (EmbeddedPostgresError, OSError, TimeoutError) as exc:
        report.checks.append(
            fail(
                SUBJECT,
                f"embedded PostgreSQL in {config.data_dir} unusable: "
                + describe_error(exc, timeout),
                "check database.data_dir (writable, not used by another PostgreSQL version)",
            )
        )
    return report


@asynccontextmanager
async def _server_url(config: DatabaseConfig, timeout: float) -> AsyncIterator[tuple[str, str]]:
    if config.url is not None:
        url = config.url.get_secret_value()
        yield url, f"at {_where(url)}"
        return
    embedded = EmbeddedPostgres(config.data_dir)
    async with asyncio.timeout(max(timeout, EMBEDDED_START_SECONDS)):
        url = await asyncio.to_thread(embedded.start)
    try:
        yield url, f"embedded in {config.data_dir}"
    finally:
        await asyncio.to_thread(embedded.stop)


def _where(url: str) -> str:
    """host:port/database of a URL, without user or password."""
    try:
        parts = urlsplit(url)
        socket_dir = parse_qs(parts.query).get("host", [""])[0]
        host = parts.hostname or socket_dir or "localhost"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the configured URL"
    return f"{host}{port}{parts.path or ''}"


async def _check_server(
    url: str, where: str, config: DatabaseConfig, timeout: float, report: DatabaseReport
) -> None:
    try:
        conn = await asyncpg.connect(url, timeout=timeout, server_settings=SERVER_SETTINGS)
    except (
        OSError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        TimeoutError,
        ValueError,
    ) as exc:
        report.checks.append(
            fail(
                SUBJECT,
                f"unreachable {where} ({describe_error(exc, timeout)})",
                "check database.url (TRACKER_DATABASE_URL) and that PostgreSQL runs there",
            )
        )
        return
    try:
        async with asyncio.timeout(timeout):
            version = await conn.fetchval("SHOW server_version")
            report.checks.append(ok(SUBJECT, f"reachable: PostgreSQL {version} {where}"))
            current = await _migrations(conn, config, report)
            if current:
                await _contents(conn, report)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        report.checks.append(fail(SUBJECT, f"cannot be read: {describe_error(exc, timeout)}"))
    finally:
        await conn.close()


async def _migrations(
    conn: asyncpg.Connection, config: DatabaseConfig, report: DatabaseReport
) -> bool:
    """Whether the schema is current enough to read (every migration applied)."""
    try:
        pending = await pending_migrations(conn)
    except MigrationError as exc:
        report.checks.append(
            fail(SUBJECT, f"migrations: {exc}", "the daemon refuses to start until this is fixed")
        )
        return False
    if not pending:
        applied = await conn.fetchval("SELECT max(version) FROM schema_migrations")
        report.checks.append(ok(SUBJECT, f"migrations current (latest {applied:04d})"))
        return True
    names = ", ".join(m.filename for m in pending)
    if config.migrate_on_start:
        report.checks.append(
            warn(
                SUBJECT,
                f"{len(pending)} migrations not applied yet ({names}): the daemon applies them "
                "when it starts (database.migrate_on_start)",
                "tracker migrate, to apply them now",
            )
        )
    else:
        report.checks.append(
            fail(
                SUBJECT,
                f"{len(pending)} migrations not applied ({names}) and "
                "database.migrate_on_start is false",
                "tracker migrate",
            )
        )
    return False


async def _contents(conn: asyncpg.Connection, report: DatabaseReport) -> None:
    size = await conn.fetchval("SELECT pg_database_size(current_database())")
    counts = await conn.fetchrow(
        "SELECT count(*) AS total, count(*) FILTER (WHERE active) AS active FROM shipments"
    )
    assert counts is not None
    report.checks.append(
        ok(
            SUBJECT,
            f"size {_size(int(size))}: {counts['total']} shipments, {counts['active']} active",
        )
    )
    # Held: due, but its carrier's daily budget is spent (tracker.engine.release.hold_until).
    due = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE NOT held) AS due,"
        " min(next_poll_at) FILTER (WHERE NOT held) AS oldest,"
        " count(*) FILTER (WHERE held) AS held, now() AS now"
        " FROM (SELECT next_poll_at,"
        "       lease_owner IS NULL AND COALESCE(lease_until > now(), false) AS held"
        "       FROM shipments WHERE active AND next_poll_at <= now()) AS d"
    )
    assert due is not None
    waiting = f"; {due['held']} more wait for their carrier's daily budget" if due["held"] else ""
    if not due["due"]:
        report.checks.append(ok(SUBJECT, f"backlog: no shipment is due{waiting}"))
    else:
        late = due["now"] - due["oldest"]
        text = f"backlog: {due['due']} shipments due, the oldest for {_age(late)}{waiting}"
        if late > OVERDUE_WARNING:
            report.checks.append(
                warn(
                    SUBJECT,
                    text,
                    "start the daemon (tracker run), or look at its log if it is running",
                )
            )
        else:
            report.checks.append(ok(SUBJECT, text))
    await _paused_carriers(conn, report)
    rows = await conn.fetch(
        """
        SELECT carrier, count(*) FILTER (WHERE active) AS active, 0 AS used
        FROM shipments WHERE carrier IS NOT NULL GROUP BY carrier
        UNION ALL
        SELECT carrier, 0, used FROM carrier_budgets WHERE day = (now() AT TIME ZONE 'UTC')::date
        """
    )
    use: dict[str, CarrierUse] = {}
    for row in rows:
        before = use.get(row["carrier"], CarrierUse())
        use[row["carrier"]] = CarrierUse(
            before.active + row["active"], before.used_today + row["used"]
        )
    report.use = use


async def _paused_carriers(conn: asyncpg.Connection, report: DatabaseReport) -> None:
    """A warning per carrier whose circuit is open: until when, why, and what to do."""
    for row in await paused_carriers(conn):
        carrier, until = row["carrier"], f"{row['opened_until']:%Y-%m-%d %H:%M} UTC"
        if row["reason"] == "credentials":
            detail = f"polls paused until {until}: it refuses our credentials ({row['last_error']})"
            fix = f"fix carriers.{carrier} and restart the daemon: it asks again at once"
        else:
            detail = f"polls paused until {until}: it keeps failing ({row['last_error']})"
            fix = f"it is asked again in {_age(row['time_left'])}; the daemon's log says more"
        report.checks.append(warn(f"carrier {carrier}", detail, fix))


def _size(size: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _age(delta: timedelta) -> str:
    seconds = max(0.0, delta.total_seconds())
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
