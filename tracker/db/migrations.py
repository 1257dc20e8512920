"""Numbered SQL files applied in order, once, under an advisory lock.

``migrations/NNNN_name.sql`` files are applied in a transaction each and recorded with a
SHA-256 of their text in ``schema_migrations``. A file that changed after it was applied stops
start-up: migrations are never edited once landed.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from tracker.db import Connection
from tracker.db.connection import reset_on_release

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
_LOCK_KEY = 0x7472_6163_6B65_72  # "tracker": one lock for all migration runners
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """The migrations on disk and in the database disagree."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} not found")
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations share version {version:04d}")
        found[version] = Migration(version, match.group(2), path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def pending_migrations(
    conn: Connection, migrations: list[Migration] | None = None
) -> list[Migration]:
    """Migrations not yet applied; raises :class:`MigrationError` if applied ones changed."""
    migrations = load_migrations() if migrations is None else migrations
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    applied: dict[int, tuple[str, str]] = {}
    if exists:
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        applied = {r["version"]: (r["name"], r["checksum"]) for r in rows}
    by_version = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version:04d}_{name} but migrations/ does not: "
                "this code is older than the database"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migrations/{migration.filename} changed after it was applied "
                f"(checksum {migration.checksum[:12]} on disk, {checksum[:12]} applied); "
                "restore it and put the change in a new migration"
            )
    return [m for m in migrations if m.version not in applied]


async def migrate(conn: Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply pending migrations; return the file names applied. Safe to run concurrently."""
    migrations = load_migrations() if migrations is None else migrations
    reset_on_release(conn)
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        applied = []
        for migration in await pending_migrations(conn, migrations):
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            log.info("applied migration %s", migration.filename)
            applied.append(migration.filename)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
