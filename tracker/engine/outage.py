"""PostgreSQL away and back, as the daemon's jobs meet it: said once, not once per job run."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

log = logging.getLogger(__name__)

DATABASE_DOWN = (
    OSError,  # refused, reset, timed out
    asyncpg.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,  # starting up or shutting down
    asyncpg.exceptions.AdminShutdownError,  # a fast shutdown ends our sessions
    asyncpg.exceptions.CrashShutdownError,
)
"""What a job meets when PostgreSQL is away: it stops, and its next run tries again."""
REMINDER_SECONDS = 60.0
"""While the database stays away, how often to say so again."""


class DatabaseWatch:
    """Whether the jobs last found the database away, and since when (loop time)."""

    def __init__(self) -> None:
        self._down_since: float | None = None
        self._told_at = 0.0

    def lost(self, job: str, exc: BaseException) -> None:
        """A job met a database that is not there: say so once, not once per job run."""
        what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        now = asyncio.get_running_loop().time()
        if self._down_since is None:
            self._down_since = self._told_at = now
            log.error(
                "database unavailable (%s job: %s); jobs pause and retry on their next run "
                "until it is back, nothing is lost",
                job,
                what,
            )
        elif now - self._told_at >= REMINDER_SECONDS:
            self._told_at = now
            log.error(
                "database still unavailable after %.0f s (%s job: %s)",
                now - self._down_since,
                job,
                what,
            )
        else:
            log.debug("%s job: database still unavailable: %s", job, what)

    def back(self, job_started: float) -> None:
        """A job begun since the database was found away has run through: it is back."""
        if self._down_since is not None and job_started > self._down_since:
            down = asyncio.get_running_loop().time() - self._down_since
            self._down_since = None
            log.warning("database reachable again after %.0f s; carrying on", down)
