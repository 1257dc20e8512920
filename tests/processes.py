"""Real ``tracker`` processes for tests that run several of them at once.

Unlike ``test_cli.Process`` nothing here blocks the event loop (tests that serve sandboxes in
process need it free), and output goes to files, so a chatty daemon never fills a pipe and a
failing test can show what each process said.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


class TrackerProcess:
    """``python -m tracker ARGS`` in its own session, stdout and stderr in ``logs``."""

    def __init__(self, name: str, *args: str, cwd: Path, logs: Path) -> None:
        self.name = name
        logs.mkdir(parents=True, exist_ok=True)
        self.stdout_path = logs / f"{name}.out"
        self.stderr_path = logs / f"{name}.err"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tracker", *args],
                cwd=cwd,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.stderr().splitlines()[-lines:])

    async def wait_for_line(self, prefix: str, timeout: float = 60) -> str:
        """The first stdout line starting with ``prefix``; fails if the process exits first."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.stdout().splitlines():
                if line.startswith(prefix):
                    return line.strip()
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited ({self.proc.returncode}) before printing {prefix!r}:\n"
                    + self.tail()
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no line {prefix!r} within {timeout} s")
            await asyncio.sleep(0.05)

    async def status_table(self, timeout: float = 60) -> str:
        """The daemon's web address, once it has started."""
        return (await self.wait_for_line("Status table: ", timeout)).split()[-1]

    def send(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float) -> int:
        """The exit code; fails (and kills the process) when it does not exit in time."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"{self.name} did not exit within {timeout} s")
            await asyncio.sleep(0.02)
        return self.proc.returncode

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.send(sig)
        return await self.wait_exit(timeout)

    def kill(self) -> None:
        """SIGKILL, to the process group: nothing it started survives it."""
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Processes:
    """Every process a test started; all killed at teardown, whatever happened."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[TrackerProcess] = []

    def start(self, name: str, *args: str) -> TrackerProcess:
        process = TrackerProcess(name, *args, cwd=self.tmp_path, logs=self.tmp_path / "logs")
        self.started.append(process)
        return process

    def run(self, name: str, config: Path) -> TrackerProcess:
        return self.start(name, "run", "--config", str(config))

    def kill_all(self) -> None:
        for process in self.started:
            process.kill()

    def report(self) -> str:
        return "\n".join(f"--- {p.name} (pid {p.pid}) ---\n{p.tail()}" for p in self.started)


@contextmanager
def running_processes(tmp_path: Path) -> Iterator[Processes]:
    """For a fixture: the processes a test starts, every one killed when it ends."""
    group = Processes(tmp_path)
    try:
        yield group
    finally:
        group.kill_all()
        print(group.report())  # pytest shows it only when the test failed


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def worker_pid(worker: str) -> int:
    """The process id inside a worker id (``host:pid:random``)."""
    return int(worker.split(":")[-2])
