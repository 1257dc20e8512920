"""``tracker sync [--full]`` as a process, against a sandbox the test serves.

Exit codes and output as a user sees them, progress rewritten in place only on a terminal, and
a backfill whose process was killed picked up by the next run without a second bulk query.
"""

from __future__ import annotations

import asyncio
import os
import pty
import signal
import sys
import termios
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import yaml

from tests.harness import DHL_KEY, SHOP, TOKEN, Stack, eventually, start_stack
from tests.test_backfill import populate

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    stack = await start_stack(bucket_size=2000, restore_rate=1000)
    yield stack
    await stack.close()


@pytest.fixture
def config_file(tmp_path: Path, stack: Stack, database_url: str) -> Path:
    path = tmp_path / "config.yaml"
    config = {
        "database": {"url": database_url, "pool_min_size": 1, "pool_max_size": 4},
        "shops": [
            {
                "domain": SHOP,
                "access_token": TOKEN,
                "api_url": stack.shopify_url,
                "api_version": "2026-10",
            }
        ],
        "carriers": {"dhl": {"api_key": DHL_KEY, "base_url": stack.dhl_url}},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def tracker_args(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tracker", "sync", "--config", str(config), *args]


async def run(config: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *tracker_args(config, *args),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def shipment_count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM shipments WHERE retired_reason IS NULL"))


async def test_sync_commands_exit_codes_and_output(
    stack: Stack, config_file: Path, pool: asyncpg.Pool
) -> None:
    expected = populate(stack.store, 200)
    parcels = sum(len(p) for p in expected.values())

    code, out, err = await run(config_file, "--full")

    assert code == 0, err
    assert f"{SHOP}: backfill complete: 200 orders, {parcels} parcels" in out
    assert f"{SHOP}: read 200 / 200 objects" in out
    assert "\r" not in out  # not a terminal: plain lines
    assert "NOTE" not in out
    assert await shipment_count(pool) == parcels

    code, out, err = await run(config_file, "--shop", "elsewhere.myshopify.com")
    assert code == 2
    assert "no shop 'elsewhere.myshopify.com' in the configuration" in err
    assert SHOP in err

    stack.store.add_order("#LATE", fulfillments=[[("DHL", "JJDLATE")]])
    code, out, err = await run(config_file, "--shop", SHOP)
    assert code == 0, err
    assert f"{SHOP}: synced 1 orders, 1 parcels, 0 retired" in out

    stack.store.set_faults(bulk_fail_next=1)
    code, out, err = await run(config_file, "--full")
    assert code == 1
    assert "backfill FAILED" in out
    assert "INTERNAL_SERVER_ERROR" in out

    stack.store.set_faults(bulk_expire_next=1)
    code, out, _ = await run(config_file, "--full")
    assert code == 1
    assert "expired before it was read" in out

    stack.store.access_scopes.discard("read_all_orders")
    code, out, err = await run(config_file, "--full")
    assert code == 0, err
    assert f"{SHOP}: NOTE: the app lacks the read_all_orders scope" in out
    assert "older orders are not visible and were not backfilled" in out
    assert "read_all_orders" in err  # and in the log


async def test_another_bulk_query_in_progress_exits_1_naming_it(
    stack: Stack, config_file: Path
) -> None:
    stack.store.set_faults(bulk_slow_seconds=60)
    theirs = stack.store.bulk.run_query("{ orders { nodes { id } } }", "2026-10")
    code, _, err = await run(config_file, "--full")
    assert code == 1
    assert f"{SHOP}: sync failed: Shopify is already running bulk operation {theirs.gid}" in err
    assert "Traceback" not in err
    stack.store.bulk.release_slow()


async def test_progress_is_rewritten_in_place_on_a_terminal(
    stack: Stack, config_file: Path
) -> None:
    populate(stack.store, 1200)
    leader, follower = pty.openpty()
    attributes = termios.tcgetattr(follower)
    attributes[1] &= ~termios.ONLCR  # keep "\n" as it is: every "\r" is the program's
    termios.tcsetattr(follower, termios.TCSANOW, attributes)
    proc = await asyncio.create_subprocess_exec(
        *tracker_args(config_file, "--full"), cwd=REPO, stdout=follower, stderr=follower
    )
    os.close(follower)
    output = bytearray()
    while True:
        try:
            chunk = await asyncio.to_thread(os.read, leader, 4096)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert await asyncio.wait_for(proc.wait(), 60) == 0, output.decode()
    text = output.decode()
    assert f"\r{SHOP}: read 1,200 / 1,200 objects" in text
    assert f"\r{SHOP}: read 500 / 1,200 objects" in text
    assert f"\n{SHOP}: backfill complete: 1200 orders" in text


async def test_a_killed_backfill_is_resumed_without_a_second_bulk_query(
    stack: Stack, config_file: Path, pool: asyncpg.Pool
) -> None:
    expected = populate(stack.store, 300)
    stack.store.set_faults(bulk_slow_seconds=600)
    first = await asyncio.create_subprocess_exec(
        *tracker_args(config_file, "--full"),
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )

    async def recorded() -> bool:
        return bool(await pool.fetchval("SELECT count(*) FROM bulk_operations"))

    await eventually(recorded, timeout=60, what="the operation to be recorded")
    first.send_signal(signal.SIGKILL)
    await first.wait()
    [(operation, state)] = await pool.fetch("SELECT operation_id, state FROM bulk_operations")
    assert state == "running"
    polls = stack.store.stats.by_operation["BulkOperation"]

    second = asyncio.create_task(run(config_file, "--full"))

    async def polled() -> bool:
        return stack.store.stats.by_operation["BulkOperation"] > polls

    await eventually(polled, timeout=60, what="the second run to wait on the operation")
    stack.store.bulk.release_slow()
    code, out, err = await second

    assert code == 0, err
    assert f"{SHOP}: resumed bulk operation {operation}" in out
    assert "backfill complete: 300 orders" in out
    assert stack.store.stats.by_operation["BulkOperationRunQuery"] == 1
    assert len(stack.store.bulk.operations) == 1
    assert await shipment_count(pool) == sum(len(p) for p in expected.values())
