"""``tracker run``: database up, daemon started, until asked to stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from tracker.config import Config
from tracker.db.pool import open_database
from tracker.engine.daemon import Daemon

log = logging.getLogger(__name__)


async def run_daemon(
    config: Config,
    stop: asyncio.Event,
    *,
    announce: Callable[[str], None] | None = None,
) -> None:
    async with open_database(
        config.database, run_migrations=config.database.migrate_on_start
    ) as pool:
        daemon = Daemon(config, pool)
        try:
            await daemon.start()
            if announce is not None:
                announce(daemon.url)
            await stop.wait()
        finally:
            await daemon.stop()
