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

from tracker.config_load import load_config
from tracker.engine.run import run_daemon
from tracker.sandbox.serve import daemon_public_url, webhooks_line

READY_LINE = "Config written:"
WEBHOOKS_LINE = "Webhooks:"
STARTUP_TIMEOUT_SECONDS = 120


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the daemon binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port


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
                if not line.startswith(WEBHOOKS_LINE):  # ours comes once the daemon listens
                    sys.stdout.write(line)
        forwarding = asyncio.create_task(_forward(child.stdout))
        config = load_config(config_path)
        if port and not port_is_free(port):
            print(f"port {port} is taken; using a free one", flush=True)
            port = 0
        # The store must know where to send webhooks before the daemon registers them.
        port = port or free_port()
        config.web.port = port
        config.web.public_url = daemon_public_url(port)
        secret = config.shops[0].client_secret
        secret_text = secret.get_secret_value() if secret else "(none)"
        config.database.data_dir = workdir / "postgres"
        print(
            "Starting the daemon (embedded PostgreSQL on first start takes a few seconds)...",
            flush=True,
        )
        await run_daemon(
            config,
            stop,
            announce=lambda url: print(
                f"Status table: {url}\n{webhooks_line(url, secret_text)}\nPress Ctrl-C to stop.",
                flush=True,
            ),
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
