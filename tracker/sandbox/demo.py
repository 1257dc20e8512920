"""``tracker demo``: sandboxes in a child process, the daemon and status table in this one.

Everything runs on 127.0.0.1 in a fresh temporary directory (embedded PostgreSQL included),
with ports chosen free, so two demos never collide; Ctrl-C stops and removes it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from tracker.config import load_config
from tracker.engine.run import run_daemon

READY_LINE = "Config written:"
STARTUP_TIMEOUT_SECONDS = 120


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


async def _forward(stream: asyncio.StreamReader) -> None:
    while line := await stream.readline():
        sys.stdout.write(line.decode(errors="replace"))
        sys.stdout.flush()


async def run_demo(stop: asyncio.Event, *, port: int, orders: int, speed: float) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="tracker-demo-"))
    config_path = workdir / "config.yaml"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tracker",
        "sandbox",
        "--write-config",
        str(config_path),
        "--orders",
        str(orders),
        "--speed",
        str(speed),
        stdout=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    assert child.stdout is not None
    forwarding: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT_SECONDS):
            while True:
                raw = await child.stdout.readline()
                if not raw:
                    print("the sandboxes did not start", file=sys.stderr)
                    return 1
                line = raw.decode(errors="replace")
                if line.startswith(READY_LINE):
                    break
                sys.stdout.write(line)
        forwarding = asyncio.create_task(_forward(child.stdout))
        config = load_config(config_path)
        if not port_is_free(port):
            print(f"port {port} is taken; using a free one", flush=True)
            port = 0
        config.web.port = port
        config.database.data_dir = workdir / "postgres"
        print(
            "Starting the daemon (embedded PostgreSQL on first start takes a few seconds)...",
            flush=True,
        )
        await run_daemon(
            config,
            stop,
            announce=lambda url: print(f"Status table: {url}\nPress Ctrl-C to stop.", flush=True),
        )
        return 0
    finally:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.terminate()
            try:
                await asyncio.wait_for(child.wait(), 10)
            except TimeoutError:
                child.kill()
                await child.wait()
        if forwarding is not None:
            forwarding.cancel()
        shutil.rmtree(workdir, ignore_errors=True)
