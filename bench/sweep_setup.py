"""What ``bench/sweep.py`` sets up around a sweep: a fresh database, the child process that
seeds it and serves the carrier sandboxes, and a reading of the host's speed.

The child (``bench.sweep_world.run_world``, started with ``spawn``) answers over a pipe:
``("ready", {...})`` once the shipments are seeded and the sandboxes listen, then one answer per
request (``cpu``, ``advance``) until ``stop``.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.sweep_world import WorldSpec, run_world


@dataclass
class Child:
    """The seeding-and-sandboxes process, spoken to over a pipe."""

    process: BaseProcess
    pipe: Connection

    def ask(self, *message: Any) -> Any:
        self.pipe.send(message)
        kind, value = self.pipe.recv()
        if kind == "error":
            raise RuntimeError(f"sandbox process: {value}")
        return value

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.pipe.send(("stop",))
        self.process.join(30)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)


async def create_database(server_url: str) -> tuple[str, str, str]:
    """A fresh database on the server, migrated; (its URL, its name, server version)."""
    import asyncpg

    from tracker.db.migrations import migrate

    name = f"bench_sweep_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        version = await admin.fetchval("SHOW server_version")
    finally:
        await admin.close()
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return url, name, version


async def drop_database(server_url: str, name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def start_child(spec: WorldSpec, deadline: float) -> tuple[Child, dict[str, Any]]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=run_world, args=(spec, theirs), daemon=True)
    process.start()
    child = Child(process, ours)
    while not ours.poll(1.0):
        if not process.is_alive() or time.monotonic() > deadline:
            child.stop()
            raise SystemExit("the sandbox process died or was not ready before --max-seconds")
    kind, value = ours.recv()
    if kind != "ready":
        child.stop()
        raise SystemExit(f"the sandbox process failed: {value}")
    return child, value


def host_speed() -> float:
    """``bench/parse_speed.py --repeat 5``'s mean microseconds per shipment: how fast this host
    runs Python just now (two or three seconds, in a process of its own so that it adds nothing
    to the sweep's peak memory)."""
    script = Path(__file__).with_name("parse_speed.py")
    done = subprocess.run(
        [sys.executable, str(script), "--repeat", "5"], capture_output=True, text=True, check=True
    )
    return float(json.loads(done.stdout.splitlines()[-1])["mean_us_per_shipment"])
