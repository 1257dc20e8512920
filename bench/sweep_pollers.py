"""The pollers of ``bench/sweep.py``: the daemon's poll path, in this process and in others.

``--pollers N`` runs N polling processes side by side against one database, as N ``tracker
run`` replicas on this machine would: each its own :class:`~tracker.engine.daemon.Daemon`,
connection pool and HTTP session, with the work shared only through PostgreSQL (claims are
leases taken ``FOR UPDATE SKIP LOCKED``). The first poller is the benchmark's own process; each
other one is a spawned process, told over a pipe when to sweep and answering with the CPU it
used.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

FAST_RATE = 1_000_000.0
"""requests_per_second given to every adapter: the sandboxes have no rate limit."""
LARGE_QUOTA = 1_000_000_000
"""requests_per_day given to every carrier: reserved per request as in production, never hit."""

DUE = "SELECT count(*) FROM shipments WHERE active AND next_poll_at <= now()"
_CLAIMABLE = """
SELECT count(*) FROM shipments
WHERE active AND next_poll_at <= now() AND (lease_until IS NULL OR lease_until < now())
"""


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@asynccontextmanager
async def open_daemon(
    args: argparse.Namespace, database_url: str, carriers: dict[str, dict[str, Any]]
) -> AsyncIterator[Any]:
    """A daemon on its own pool and HTTP session, with the benchmark's settings; not started
    (no scheduler, no web server): the sweeps call its ``poll_sweep``."""
    import aiohttp

    from carriers.registry import build_adapters
    from tracker.config import Config
    from tracker.db.pool import create_pool
    from tracker.engine.daemon import Daemon

    config = Config.model_validate(
        {
            "carriers": {
                code: {
                    **settings,
                    "requests_per_second": FAST_RATE,
                    "requests_per_day": LARGE_QUOTA,
                }
                for code, settings in carriers.items()
            },
            "polling": {
                "batch_size": args.batch_size,
                "concurrent_batches": args.concurrent_batches,
                "requests_in_flight": args.requests_in_flight,
            },
            "database": {"pool_max_size": args.pool_max_size},
        }
    )
    pool = await create_pool(
        database_url,
        min_size=config.database.pool_min_size,
        max_size=config.database.pool_max_size,
    )
    # The connection limits of the session ``Daemon.start`` opens (tracker/engine/daemon.py).
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=config.polling.requests_in_flight)
    session = aiohttp.ClientSession(connector=connector)
    try:
        yield Daemon(
            config=config,
            pool=pool,
            _session=session,
            _adapters=build_adapters(config.carriers, session),
        )
    finally:
        await session.close()
        await pool.close()


async def drain(daemon: Any) -> None:
    """Sweep until nothing due is left to claim (what other pollers hold is theirs)."""
    left = -1
    while True:
        await daemon.poll_sweep()
        now_left = await daemon.pool.fetchval(_CLAIMABLE)
        if not now_left:
            return
        if now_left == left:  # nothing claimed since the last look: stop rather than spin
            print(f"poll_sweep makes no progress: {now_left} due", file=sys.stderr)
            return
        left = now_left


@dataclass
class OtherPoller:
    """A polling process besides this one, spoken to over a pipe."""

    process: BaseProcess
    pipe: Connection

    def sweep(self) -> None:
        self.pipe.send(("sweep",))

    def swept(self) -> float:
        """Wait for the sweep to end; the CPU seconds it took that process."""
        kind, value = self.pipe.recv()
        if kind == "error":
            raise RuntimeError(f"poller process: {value}")
        cpu: float = value
        return cpu

    def stop(self) -> float | None:
        """End the process; its peak RSS in MiB, if it said."""
        rss = None
        with suppress(OSError, ValueError, EOFError):
            self.pipe.send(("stop",))
            if self.pipe.poll(30):
                kind, value = self.pipe.recv()
                rss = value if kind == "stopped" else None
        self.process.join(30)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)
        return rss


def start_pollers(
    count: int, args: argparse.Namespace, database_url: str, carriers: dict[str, dict[str, Any]]
) -> list[OtherPoller]:
    """``count`` polling processes, each ready (pool and session open) when this returns."""
    context = multiprocessing.get_context("spawn")
    pollers = []
    try:
        for _ in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=run_poller, args=(args, database_url, carriers, theirs), daemon=True
            )
            process.start()
            pollers.append(OtherPoller(process, ours))
        for poller in pollers:
            if not poller.pipe.poll(120):
                raise SystemExit("a poller process was not ready within 120 s")
            kind, value = poller.pipe.recv()
            if kind != "ready":
                raise SystemExit(f"a poller process failed: {value}")
    except BaseException:
        for poller in pollers:
            poller.stop()
        raise
    return pollers


def run_poller(
    args: argparse.Namespace,
    database_url: str,
    carriers: dict[str, dict[str, Any]],
    pipe: Connection,
) -> None:
    """Poller process: open a daemon, then sweep each time asked, until told to stop."""
    from tracker.loop import run

    try:
        run(_serve(args, database_url, carriers, pipe))
    except Exception as exc:
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
        raise


async def _serve(
    args: argparse.Namespace,
    database_url: str,
    carriers: dict[str, dict[str, Any]],
    pipe: Connection,
) -> None:
    from tracker.loop import settle_gc

    async with open_daemon(args, database_url, carriers) as daemon:
        settle_gc()  # as `tracker run` does
        pipe.send(("ready", None))
        while True:
            message = await asyncio.to_thread(pipe.recv)
            if message[0] != "sweep":
                break
            cpu = time.process_time()
            await drain(daemon)
            pipe.send(("swept", time.process_time() - cpu))
    pipe.send(("stopped", round(peak_rss_mib(), 1)))
