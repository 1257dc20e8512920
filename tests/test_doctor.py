"""``tracker doctor`` against the real sandboxes and a real database: what a user would read.

The Shopify sandbox serves the store (scopes, plan, the API versions it supports and the
fall-forward of a retired one), the DHL (API key) and UPS (OAuth) sandboxes the carriers. The
command runs as a real process where its exit code and output are the point, in process where
one verdict is.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import yaml
from aiohttp import web

from carriers.base import CarrierSettings
from carriers.dhl import DhlAdapter
from carriers.sandbox_base import CarrierWorld
from carriers.ups.sandbox import SANDBOX_SETTINGS as UPS_SETTINGS
from carriers.ups.sandbox import sandbox_app as ups_sandbox_app
from tests.conftest import with_database
from tests.harness import DHL_KEY, SHOP, TOKEN, Stack, start_stack
from tracker.config import Config, PollingConfig
from tracker.db.migrations import load_migrations, migrate
from tracker.doctor import diagnose
from tracker.doctor_checks import Check, Verdict
from tracker.doctor_checks.carriers import CarrierUse, check_budget
from tracker.engine.circuit import record_failure
from tracker.sandbox.serve import serve
from tracker.sandbox.shopify_profile import stable_version_at
from tracker.shopify.subscriptions import REGISTERED_TOPICS
from tracker.webhooks_cli import register_all

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Sandboxes:
    stack: Stack
    ups_url: str
    ups_runner: web.AppRunner

    @property
    def store(self) -> Any:
        return self.stack.store

    def config(self, database_url: str, **sections: dict[str, Any]) -> dict[str, Any]:
        """A configuration (as the YAML file holds it) on these sandboxes; ``sections`` merge."""
        data: dict[str, Any] = {
            "database": {"url": database_url, "migrate_on_start": False},
            "shops": [
                {
                    "domain": SHOP,
                    "access_token": TOKEN,
                    "api_url": self.stack.shopify_url,
                    "api_version": stable_version_at(datetime.now(UTC)),
                }
            ],
            "carriers": {
                "dhl": {"api_key": DHL_KEY, "base_url": self.stack.dhl_url, "max_attempts": 1},
                "ups": {**UPS_SETTINGS, "base_url": self.ups_url, "max_attempts": 1},
            },
            "web": {"host": "127.0.0.1", "port": 0},
        }
        for key, value in sections.items():
            if isinstance(data.get(key), dict) and isinstance(value, dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return data


@pytest.fixture
async def sandboxes() -> AsyncIterator[Sandboxes]:
    stack = await start_stack()
    runner, url = await serve(ups_sandbox_app(CarrierWorld()), 0)
    try:
        yield Sandboxes(stack, url, runner)
    finally:
        await runner.cleanup()
        await stack.close()


async def doctor(tmp_path: Path, data: dict[str, Any], *args: str) -> tuple[int, str, str]:
    """``python -m tracker doctor --config <data as YAML>``: exit code, stdout, stderr."""
    path = tmp_path / f"doctor-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tracker",
        "doctor",
        "--config",
        str(path),
        *args,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def checks_of(data: dict[str, Any], timeout: float = 10.0) -> list[Check]:
    return await diagnose(Config.model_validate(data), timeout=timeout)


def lines_about(checks: list[Check], subject: str) -> list[str]:
    return [check.line() for check in checks if check.subject == subject]


def failed(checks: list[Check]) -> list[str]:
    return [check.line() for check in checks if check.verdict is Verdict.FAIL]


# -- the whole command ---------------------------------------------------------------------------


async def test_a_good_configuration_passes_every_check_and_exits_0(
    sandboxes: Sandboxes, database_url: str, tmp_path: Path
) -> None:
    public_url = "http://127.0.0.1:9"
    data = sandboxes.config(database_url, web={"public_url": public_url})
    results = await register_all(Config.model_validate(data), public_url + "/webhooks/shopify")
    assert all(r.outcome == "created" for r in results[SHOP])

    code, out, err = await doctor(tmp_path, data)

    assert code == 0, out + err
    lines = out.splitlines()
    assert all(line.startswith("ok    ") for line in lines[:-1]), out
    assert lines[-1].endswith("0 warn, 0 FAIL: the daemon has everything it needs")
    for expected in (
        "ok    database: reachable: PostgreSQL",
        f"ok    database: migrations current (latest {load_migrations()[-1].version:04d})",
        "ok    database: backlog: no shipment is due",
        f"ok    store {SHOP}: token valid (Test Store, {SHOP})",
        f"ok    store {SHOP}: API version {stable_version_at(datetime.now(UTC))} supported",
        f"ok    store {SHOP}: scopes: read_all_orders, read_fulfillments, read_orders, "
        "write_fulfillments",
        f"ok    store {SHOP}: plan Basic; cost bucket 1000 points, restores 50/s",
        f"ok    store {SHOP}: webhooks: all {len(REGISTERED_TOPICS)} topics subscribed",
        "ok    carrier dhl: credentials accepted (API key)",
        "ok    carrier dhl: test number 7777777770 answered: not found",
        "ok    carrier ups: credentials accepted (OAuth token obtained)",
        "ok    carrier ups: test number 1Z023E2X0214323462 answered: not found",
        "ok    web: the status table can listen on any free port",
    ):
        assert any(line.startswith(expected) for line in lines), (expected, out)
    for secret in (TOKEN, DHL_KEY, UPS_SETTINGS["client_secret"]):
        assert secret not in out + err


async def test_rejected_carrier_credentials_fail_naming_the_carrier(
    sandboxes: Sandboxes, database_url: str, tmp_path: Path
) -> None:
    data = sandboxes.config(database_url)
    data["carriers"]["ups"]["client_secret"] = "not-the-ups-secret"
    data["carriers"]["dhl"]["api_key"] = "not-the-dhl-key"

    code, out, err = await doctor(tmp_path, data, "--json")

    assert code == 1, out + err
    report = json.loads(out)
    assert report["ok"] is False
    by_line = {(c["subject"], c["verdict"]): c for c in report["checks"]}
    ups = by_line[("carrier ups", "FAIL")]
    assert ups["detail"].startswith(
        "credentials rejected (UPS refused the client credentials (HTTP 401)"
    )
    assert ups["fix"].startswith("check carriers.ups.client_id/client_secret")
    dhl = by_line[("carrier dhl", "FAIL")]
    assert dhl["detail"].startswith("credentials rejected (DHL rejected the API key (HTTP 401)")
    assert dhl["fix"].startswith("check carriers.dhl.api_key")
    assert report["counts"]["fail"] == 2
    assert ("store " + SHOP, "FAIL") not in by_line  # the store is fine
    assert "not-the-ups-secret" not in out + err
    assert "not-the-dhl-key" not in out + err


async def test_an_unreachable_database_is_a_fail_line_not_a_traceback(
    sandboxes: Sandboxes, tmp_path: Path
) -> None:
    code, out, err = await doctor(tmp_path, sandboxes.config("postgresql://u:pw@127.0.0.1:1/db"))

    assert code == 1
    assert "Traceback" not in out + err
    assert out.startswith("FAIL  database: unreachable at 127.0.0.1:1/db (")
    assert "-> check database.url (TRACKER_DATABASE_URL)" in out.splitlines()[0]
    assert f"ok    store {SHOP}: token valid" in out  # the other checks still ran
    assert ":pw@" not in out


async def test_web_off_loopback_without_auth_is_refused_as_tracker_run_refuses_it(
    sandboxes: Sandboxes, database_url: str, tmp_path: Path
) -> None:
    data = sandboxes.config(database_url, web={"host": "0.0.0.0", "port": 8080})

    code, out, err = await doctor(tmp_path, data)

    assert code == 2, out + err
    assert out.startswith("FAIL  config: ")
    assert "web: host '0.0.0.0' is reachable from other machines, so web.auth is required" in out
    assert "Traceback" not in out + err
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    run = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tracker", "run", "--config", str(path), cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, run_err = await asyncio.wait_for(run.communicate(), 120)
    assert run.returncode == 2
    assert b"web.auth is required" in run_err


# -- stores --------------------------------------------------------------------------------------


async def test_a_missing_write_scope_fails_unless_write_back_is_off(
    sandboxes: Sandboxes, database_url: str
) -> None:
    sandboxes.store.access_scopes.discard("write_fulfillments")

    checks = await checks_of(sandboxes.config(database_url))

    assert failed(checks) == [
        f"FAIL  store {SHOP}: scopes missing: write_fulfillments (events cannot be written "
        "back); granted: read_all_orders, read_fulfillments, read_orders -> add them to the "
        "app's Admin API access scopes in the Shopify admin, reinstall the app and use its new "
        "token (shops[0])"
    ]
    tracking_only = await checks_of(sandboxes.config(database_url, writeback={"enabled": False}))
    assert failed(tracking_only) == []


async def test_read_all_orders_is_needed_when_the_lookback_passes_60_days(
    sandboxes: Sandboxes, database_url: str
) -> None:
    sandboxes.store.access_scopes.discard("read_all_orders")

    recent = await checks_of(sandboxes.config(database_url))
    scopes = [c for c in recent if c.subject == f"store {SHOP}" and "scopes" in c.detail]
    assert [c.verdict for c in scopes] == [Verdict.WARN]
    assert "orders older than 60 days stay invisible" in scopes[0].detail

    old = await checks_of(sandboxes.config(database_url, sync={"lookback": "90d"}))
    assert [line for line in failed(old) if "scopes missing: read_all_orders" in line]


async def test_a_retired_api_version_fails_with_the_version_shopify_answered(
    sandboxes: Sandboxes, database_url: str
) -> None:
    newest = stable_version_at(datetime.now(UTC))
    year, month = (int(part) for part in newest.split("-"))
    oldest = f"{year - 1}-{month:02d}"  # a year back: still served
    retired = f"{year - 2}-{month:02d}"
    sandboxes.store.profile.oldest_supported_version = oldest
    data = sandboxes.config(database_url)
    data["shops"][0]["api_version"] = retired

    checks = await checks_of(data)

    assert failed(checks) == [
        f"FAIL  store {SHOP}: API version {retired} is no longer supported: Shopify answered "
        f"with {oldest} -> set shops[0].api_version to {newest}"
    ]
    data["shops"][0]["api_version"] = oldest
    at_the_edge = await checks_of(data)
    assert [
        line for line in lines_about(at_the_edge, f"store {SHOP}") if "API version" in line
    ] == [
        f"warn  store {SHOP}: API version {oldest} is the oldest supported one: Shopify retires "
        f"it next and would then answer with {_next_quarter(oldest)} -> set shops[0].api_version "
        f"to {newest}"
    ]


async def test_a_version_shopify_does_not_list_fails(
    sandboxes: Sandboxes, database_url: str
) -> None:
    data = sandboxes.config(database_url)
    data["shops"][0]["api_version"] = "2099-01"

    checks = await checks_of(data)

    lines = failed(checks)
    assert len(lines) == 1
    assert lines[0].startswith(
        f"FAIL  store {SHOP}: API version 2099-01 is not one Shopify serves (supported: "
    )


async def test_the_sandbox_answers_a_retired_version_with_the_oldest_supported_one(
    sandboxes: Sandboxes,
) -> None:
    sandboxes.store.profile.oldest_supported_version = "2025-10"
    async with aiohttp.ClientSession() as http:
        for asked, served in (
            ("2025-04", "2025-10"),
            ("2025-10", "2025-10"),
            ("2026-01", "2026-01"),
        ):
            async with http.post(
                f"{sandboxes.stack.shopify_url}/admin/api/{asked}/graphql.json",
                json={"query": "{ shop { plan { displayName } } }"},
                headers={"X-Shopify-Access-Token": TOKEN},
            ) as response:
                assert response.status == 200
                assert response.headers["X-Shopify-API-Version"] == served
                body = await response.json()
                assert body["data"]["shop"]["plan"]["displayName"] == "Basic"


async def test_a_refused_token_fails_and_says_which_key_to_fix(
    sandboxes: Sandboxes, database_url: str
) -> None:
    data = sandboxes.config(database_url)
    data["shops"][0]["access_token"] = "shpat_wrong_token"

    checks = await checks_of(data)

    (line,) = lines_about(checks, f"store {SHOP}")
    assert line.startswith(f"FAIL  store {SHOP}: token refused (HTTP 401: ")
    assert line.endswith(
        "-> check shops[0].access_token (TRACKER_SHOPS__0__ACCESS_TOKEN): the Admin API token of "
        "an installed app with the scopes in README"
    )
    assert "shpat_wrong_token" not in line


async def test_a_frozen_shop_fails_as_closed_not_as_a_refused_token(
    sandboxes: Sandboxes, database_url: str
) -> None:
    sandboxes.store.close_shop("frozen")
    try:
        checks = await checks_of(sandboxes.config(database_url))
    finally:
        sandboxes.store.reopen_shop()
    (line,) = lines_about(checks, f"store {SHOP}")
    assert line.startswith(f"FAIL  store {SHOP}: shop closed (HTTP 402: the shop is frozen")
    assert line.endswith("-> nothing to change here: calls resume once the shop is open again")


async def test_a_store_on_the_client_credentials_grant_is_checked_through_the_grant(
    sandboxes: Sandboxes, database_url: str
) -> None:
    data = sandboxes.config(database_url)
    shop = data["shops"][0]
    del shop["access_token"]
    shop["client_id"] = sandboxes.store.client_id
    shop["client_secret"] = sandboxes.store.client_secret

    granted = await checks_of(data)
    assert lines_about(granted, f"store {SHOP}")[0] == (
        f"ok    store {SHOP}: token granted (client credentials) (Test Store, {SHOP})"
    )

    shop["client_secret"] = "not-the-app-secret"
    refused = await checks_of(data)
    (line,) = lines_about(refused, f"store {SHOP}")
    assert line.startswith(f"FAIL  store {SHOP}: token refused (")
    assert line.endswith("-> check shops[0].client_id and client_secret (the app's credentials)")


async def test_webhooks_not_yet_registered_are_a_warning_until_they_are(
    sandboxes: Sandboxes, database_url: str
) -> None:
    public_url = "https://tracker.example.com"
    data = sandboxes.config(database_url, web={"public_url": public_url})

    before = await checks_of(data)
    webhooks = [c for c in before if "webhook" in c.detail]
    assert [c.verdict for c in webhooks] == [Verdict.WARN]
    assert webhooks[0].detail.startswith(
        f"{len(REGISTERED_TOPICS)} of {len(REGISTERED_TOPICS)} webhook topics not subscribed"
    )
    assert webhooks[0].fix.startswith("tracker webhooks register")

    await register_all(Config.model_validate(data), public_url + "/webhooks/shopify")
    after = await checks_of(data)
    assert [c.verdict for c in after if "webhook" in c.detail] == [Verdict.OK]


# -- database ------------------------------------------------------------------------------------


@pytest.fixture
async def partly_migrated_url(pg_server_url: str) -> AsyncIterator[str]:
    """A database with only the first three migrations applied."""
    name = f"tracker_doctor_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = with_database(pg_server_url, name)
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn, load_migrations()[:3])
        finally:
            await conn.close()
        yield url
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_pending_migrations_fail_when_the_daemon_would_not_apply_them(
    sandboxes: Sandboxes, partly_migrated_url: str
) -> None:
    pending = load_migrations()[3:]
    names = ", ".join(m.filename for m in pending)

    checks = await checks_of(sandboxes.config(partly_migrated_url))

    assert failed(checks) == [
        f"FAIL  database: {len(pending)} migrations not applied ({names}) and "
        "database.migrate_on_start is false -> tracker migrate"
    ]
    on_start = await checks_of(
        sandboxes.config(partly_migrated_url, database={"migrate_on_start": True})
    )
    assert failed(on_start) == []
    assert any(
        line.startswith(f"warn  database: {len(pending)} migrations not applied yet")
        for line in lines_about(on_start, "database")
    )


async def test_an_overdue_backlog_is_reported_with_its_age(
    sandboxes: Sandboxes, database_url: str, pool: asyncpg.Pool
) -> None:
    shop_id = await pool.fetchval(
        "INSERT INTO shops (domain, api_version) VALUES ($1, '2026-10') RETURNING id", SHOP
    )
    for n, due in enumerate((timedelta(hours=3), timedelta(minutes=1))):
        await pool.execute(
            """
            INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id,
                                   tracking_number, carrier, next_poll_at)
            VALUES ($1, $2, '#1001', $3, $4, 'dhl', now() - $5::interval)
            """,
            shop_id,
            f"gid://shopify/Order/{n + 1}",
            f"gid://shopify/Fulfillment/{n + 1}",
            f"JJD000{n}",
            due,
        )

    checks = await checks_of(sandboxes.config(database_url))

    database = lines_about(checks, "database")
    assert any(line.startswith("ok    database: size ") and "2 shipments, 2 active" in line
               for line in database), database  # fmt: skip
    assert (
        "warn  database: backlog: 2 shipments due, the oldest for 3 h -> start the daemon "
        "(tracker run), or look at its log if it is running"
    ) in database
    assert failed(checks) == []

    # Held until tomorrow for its carrier's spent daily budget: still due, but no sign that the
    # daemon is down.
    await pool.execute(
        "UPDATE shipments SET lease_until = now() + interval '5 hours'"
        " WHERE next_poll_at < now() - interval '2 hours'"
    )
    database = lines_about(await checks_of(sandboxes.config(database_url)), "database")
    backlog = [line for line in database if "backlog" in line]
    assert len(backlog) == 1, database
    assert backlog[0].startswith("ok    database: backlog: 1 shipments due, the oldest for ")
    assert backlog[0].endswith("; 1 more wait for their carrier's daily budget")


async def test_paused_carriers_are_warnings_saying_why_and_what_to_do(
    sandboxes: Sandboxes, database_url: str, pool: asyncpg.Pool
) -> None:
    hour = timedelta(hours=1)
    await record_failure(
        pool, "dhl", "DHL rejected the API key (HTTP 401)", threshold=1, open_for=hour,
        reason="credentials",
    )  # fmt: skip
    await record_failure(pool, "ups", "timed out", threshold=1, open_for=hour)
    await record_failure(pool, "usps", "timed out", threshold=5, open_for=hour)  # not open

    checks = await checks_of(sandboxes.config(database_url))

    [dhl] = [line for line in lines_about(checks, "carrier dhl") if "paused" in line]
    assert dhl.startswith("warn  carrier dhl: polls paused until ")
    assert "it refuses our credentials (DHL rejected the API key (HTTP 401))" in dhl
    assert dhl.endswith("-> fix carriers.dhl and restart the daemon: it asks again at once")
    [ups] = [line for line in lines_about(checks, "carrier ups") if "paused" in line]
    assert "it keeps failing (timed out)" in ups
    assert re.search(r"-> it is asked again in (59|60) min; the daemon's log says more$", ups)
    assert not [line for line in lines_about(checks, "carrier usps") if "paused" in line]


# -- carriers ------------------------------------------------------------------------------------


async def test_a_carrier_that_does_not_answer_is_bounded_by_the_timeout(
    sandboxes: Sandboxes, database_url: str
) -> None:
    sandboxes.stack.dhl.slow_seconds = 20
    data = sandboxes.config(database_url)
    data["carriers"]["dhl"]["test_number"] = "SBSLOW0001"

    checks = await checks_of(data, timeout=1.0)

    dhl = [c for c in checks if c.subject == "carrier dhl" and c.verdict is Verdict.FAIL]
    assert len(dhl) == 1
    assert "timed out after 1 s" in dhl[0].detail or "no answer within 1 s" in dhl[0].detail
    assert [c.verdict for c in checks if c.subject == "carrier ups"] == [Verdict.OK] * 4


async def test_an_unreachable_carrier_host_fails_before_trying_credentials(
    sandboxes: Sandboxes, database_url: str
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    data = sandboxes.config(database_url)
    data["carriers"]["dhl"]["base_url"] = f"http://127.0.0.1:{port}"

    checks = await checks_of(data)

    dhl = [c.line() for c in checks if c.subject == "carrier dhl"]
    assert len(dhl) == 2  # reachability, then the budget: no credential check
    assert dhl[0].startswith(f"FAIL  carrier dhl: cannot reach http://127.0.0.1:{port} (")
    assert dhl[0].endswith("-> check carriers.dhl.base_url and the network")


def test_budgets_are_compared_with_the_published_quota() -> None:
    polling = PollingConfig()
    generous = CarrierSettings(api_key="k", requests_per_second=5, requests_per_day=1000)
    check = check_budget("dhl", generous, DhlAdapter, polling, None)
    assert check.verdict is Verdict.WARN
    assert check.detail == (
        "budget 5/s, 1000 per day: above the published quota (DHL's starter plan: 1 per second, "
        "250 per day): 5/s > 1/s; 1000 per day > 250"
    )
    defaults = check_budget("dhl", CarrierSettings(api_key="k"), DhlAdapter, polling, None)
    assert defaults.line() == (
        "ok    carrier dhl: budget 1/s, 250 per day (within DHL's starter plan: 1 per second, "
        "250 per day)"
    )
    spent = check_budget(
        "dhl", CarrierSettings(api_key="k"), DhlAdapter, polling, {"dhl": CarrierUse(0, 250)}
    )
    assert spent.verdict is Verdict.WARN
    assert spent.detail.endswith("250 used today: spent, polling waits for 00:00 UTC")
    busy = check_budget(
        "dhl", CarrierSettings(api_key="k"), DhlAdapter, polling, {"dhl": CarrierUse(100, 3)}
    )
    assert busy.verdict is Verdict.WARN  # 100 parcels every 4 h: 600 requests a day
    assert "100 active shipments need about 600 requests a day" in busy.detail


# -- web -----------------------------------------------------------------------------------------


async def test_a_port_held_by_something_else_fails(sandboxes: Sandboxes, database_url: str) -> None:
    async def not_a_tracker(_request: web.Request) -> web.Response:
        return web.Response(text="not a tracker")

    other = web.Application()
    other.router.add_get("/healthz", not_a_tracker)
    runner, url = await serve(other, 0)
    port = int(url.rsplit(":", 1)[1])
    try:
        checks = await checks_of(sandboxes.config(database_url, web={"port": port}))
    finally:
        await runner.cleanup()
    assert failed(checks) == [
        f"FAIL  web: 127.0.0.1:{port} is taken by something else (/healthz answered HTTP 200) "
        "-> stop it, or set web.port to a free port"
    ]
    free = await checks_of(sandboxes.config(database_url, web={"port": port}))
    assert f"ok    web: the status table can listen on 127.0.0.1:{port}" in lines_about(free, "web")


def _next_quarter(version: str) -> str:
    year, month = (int(part) for part in version.split("-"))
    month += 3
    if month > 12:
        year, month = year + 1, month - 12
    return f"{year}-{month:02d}"
