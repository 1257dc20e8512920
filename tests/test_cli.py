"""The command line as a user runs it: real processes, real ports, real signals."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.harness import eventually

ROOT = Path(__file__).resolve().parents[1]


def tracker(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracker", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=kwargs.pop("cwd", ROOT),
        **kwargs,
    )


@pytest.mark.parametrize("command", ["run", "demo", "sandbox", "migrate", "check-config"])
def test_every_command_has_help(command):
    result = tracker(command, "--help")
    assert result.returncode == 0
    assert f"usage: tracker {command}" in result.stdout


def test_version_and_no_command():
    assert tracker("--version").stdout.startswith("tracker ")
    assert tracker().returncode == 2


def test_check_config_exit_codes(tmp_path):
    assert tracker("check-config", "--config", str(ROOT / "config.example.yaml")).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("web:\n  port: 99999\n")
    result = tracker("check-config", "--config", str(bad))
    assert result.returncode == 2
    assert f"{bad}: web.port: Input should be less than or equal to 65535" in result.stderr
    assert "Traceback" not in result.stderr
    missing = tracker("check-config", "--config", str(tmp_path / "none.yaml"))
    assert missing.returncode == 2
    assert "no such file" in missing.stderr


def test_migrate_reports_what_it_applied(tmp_path, pg_server_url):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"database": {"data_dir": str(tmp_path / "pg")}}))
    first = tracker("migrate", "--config", str(config))
    assert first.returncode == 0, first.stderr
    from tracker.db.migrations import load_migrations

    names = ", ".join(m.filename for m in load_migrations())
    assert f"applied {len(load_migrations())} migrations: {names}" in first.stdout
    second = tracker("migrate", "--config", str(config))
    assert second.stdout.strip() == "database is up to date"


def test_unreachable_database_is_a_clean_error(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("database:\n  url: postgresql://nobody@127.0.0.1:1/none\n")
    result = tracker("migrate", "--config", str(config))
    assert result.returncode == 3
    assert result.stderr.startswith("database error: cannot connect to PostgreSQL")
    assert "Traceback" not in result.stderr


class Process:
    """A tracker command in the background, its stdout lines collected as they come."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tracker", *args],
            cwd=cwd,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.lines: list[str] = []

    def wait_for_line(self, prefix: str, timeout: float = 90) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"exited before printing {prefix!r}: {self.stderr()}")
            self.lines.append(line)
            if line.startswith(prefix):
                return line.strip()
        raise AssertionError(f"no line {prefix!r} within {timeout} s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        finally:
            self.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.close()

    def close(self) -> None:
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stderr is not None
        return self.proc.stderr.read()[-3000:]


async def get_json(http: aiohttp.ClientSession, url: str):
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_daemon_against_a_separate_sandbox_survives_a_kill(tmp_path):
    """`tracker sandbox --write-config` + `tracker run --config`, as the README tells a user."""
    config = tmp_path / "sandbox.yaml"
    sandbox = Process(
        "sandbox", "--write-config", str(config), "--orders", "40", "--speed", "20", cwd=tmp_path
    )
    daemon: Process | None = None
    try:
        shopify_line = sandbox.wait_for_line("Shopify sandbox: ")
        sandbox.wait_for_line("Config written: ")
        base = shopify_line.split()[2].split("/admin/")[0]
        data = yaml.safe_load(config.read_text())
        # Parcels live 20 hours a second; so does polling, down to a poll every 3 s: a
        # delivered parcel's confirming poll comes then too, 30 days without a scan are 36 s,
        # and a number not found for 3 days (3.6 s) is given up and flagged.
        assert data["polling"]["in_transit_every"] == "3.0s"
        assert data["polling"]["final_confirm_after"] == "3.0s"
        assert data["polling"]["expire_after"] == "36.0s"
        assert data["polling"]["not_found_give_up_after"] == "3.6s"
        assert data["attention"]["not_found_days"] * 86_400 == pytest.approx(3.6)
        data["web"] = {"port": 0}
        data["writeback"]["lease"] = "3s"  # a killed writer's unconfirmed write is checked soon
        config.write_text(yaml.safe_dump(data))

        daemon = Process("run", "--config", str(config), cwd=tmp_path)
        table = daemon.wait_for_line("Status table: ").split()[-1]
        async with aiohttp.ClientSession() as http:

            async def some_written() -> bool:
                events = (await get_json(http, f"{base}/_sandbox/events"))["events"]
                return len(events) > 20

            await eventually(some_written, timeout=90, what="events written to the store")
            # Killed without warning: nothing is lost, nothing is written twice.
            daemon.kill()
            daemon = Process("run", "--config", str(config), cwd=tmp_path)
            table = daemon.wait_for_line("Status table: ").split()[-1]

            async def quiet() -> bool:
                shipments = (await get_json(http, table + "api/shipments?limit=500"))["shipments"]
                pending = sum(s["writeback"]["pending"] for s in shipments)
                return bool(shipments) and pending == 0

            await eventually(quiet, timeout=120, what="write-back backlog drained")
            await asyncio.sleep(3)  # let the sandbox's "send" and our record settle
            shipments = (await get_json(http, table + "api/shipments?limit=500"))["shipments"]
            events = (await get_json(http, f"{base}/_sandbox/events"))["events"]
        # Same status in the same second happens at 20x speed; the place tells scans apart.
        keys = [
            (e["fulfillment_id"], e["status"], e["happened_at"], e["city"], e["message"])
            for e in events
        ]
        assert len(keys) == len(set(keys)), "an event was written twice"
        written = sum(s["writeback"]["written"] for s in shipments)
        assert written == len(events)
        assert daemon.stop() == 0  # SIGTERM: clean stop
    finally:
        if daemon is not None:
            daemon.kill()
        sandbox.stop(signal.SIGINT)


async def test_demo_moves_parcels_and_writes_them_back(tmp_path):
    demo = Process("demo", "--port", "0", "--orders", "200", "--speed", "3", cwd=tmp_path)
    try:
        shopify_line = demo.wait_for_line("Shopify sandbox: ")
        assert " token=shpat_" in shopify_line
        base = shopify_line.split()[2].split("/admin/")[0]
        table = demo.wait_for_line("Status table: ").split()[-1]
        async with aiohttp.ClientSession() as http:

            async def lively() -> bool:
                shipments = (await get_json(http, table + "api/shipments?limit=500"))["shipments"]
                statuses = {s["status"] for s in shipments}
                events = (await get_json(http, f"{base}/_sandbox/events"))["events"]
                written = {e["status"] for e in events}
                return (
                    "delivered" in statuses
                    and len(statuses - {None}) >= 4
                    and {"LABEL_PURCHASED", "IN_TRANSIT", "DELIVERED"} <= written
                )

            await eventually(lively, timeout=120, what="delivered, several statuses, written")
            async with http.get(table) as page:
                assert page.status == 200
                assert "Shipments" in await page.text()
        assert demo.stop(signal.SIGINT) == 0
    finally:
        demo.kill()


def test_detect_prints_candidates_best_first():
    result = tracker("detect", "--json", "1Z999AA10123456784")
    assert result.returncode == 0
    assert result.stdout.strip() == (
        '{"number": "1Z999AA10123456784", "candidates": '
        '[{"carrier": "ups", "checksum_valid": true, "product": "UPS"}]}'
    )
    assert tracker("detect", "NOTHING-LIKE-IT").returncode == 5


async def run_tracker(*args: str, cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tracker",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_track_looks_one_number_up_live(tmp_path):
    from carriers.sandbox_base import Kind
    from tests.harness import DHL_KEY, start_stack, timeline

    stack = await start_stack()
    try:
        number = "JJD000000000000000077"
        stack.dhl.register([timeline(number, [Kind.LABEL, Kind.INFO, Kind.DELIVERED])])
        config = tmp_path / "config.yaml"
        config.write_text(
            yaml.safe_dump({"carriers": {"dhl": {"api_key": DHL_KEY, "base_url": stack.dhl_url}}})
        )
        code, out, err = await run_tracker(
            "track", number, "--json", "--config", str(config), cwd=tmp_path
        )
        assert code == 0, err
        document = yaml.safe_load(out)  # JSON is YAML
        assert document["carrier"] == "dhl"  # detected from the JJD prefix
        assert document["status"] == "delivered"
        assert document["error"] is None
        assert [e["status"] for e in document["events"]] == ["label_purchased", None, "delivered"]
        assert all(e["happened_at"].endswith("Z") for e in document["events"])

        code, out, _ = await run_tracker(
            "track",
            "JJD000000000000000078",
            "--carrier",
            "dhl",
            "--config",
            str(config),
            cwd=tmp_path,
        )
        assert code == 5
        assert "not_found" in out

        config.write_text(
            yaml.safe_dump({"carriers": {"dhl": {"api_key": "wrong", "base_url": stack.dhl_url}}})
        )
        code, _, err = await run_tracker("track", number, "--config", str(config), cwd=tmp_path)
        assert code == 6
        assert "refused the credentials" in err

        code, _, err = await run_tracker(
            "track", "1Z999AA10123456784", "--config", str(config), cwd=tmp_path
        )
        assert code == 2
        assert "looks like ups, which is not configured" in err
    finally:
        await stack.close()
