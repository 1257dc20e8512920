"""The status table in a real browser: Debian's Chromium driven by Playwright, against a real
daemon polling the DHL sandbox.

Needs ``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run`` installs it) and the
``playwright`` package (the ``test`` extra; it downloads no browser:
``PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1``). Without them these tests skip and say why. Every
run saves screenshots of the table, a shipment and the analytics page to ``tests/artifacts/``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from carriers.sandbox_base import Kind, Scan, Timeline
from tests.harness import Stack, eventually, start_stack, timeline
from tests.webdata import add_shipment
from tracker.engine.daemon import Daemon

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ATTACK = "<script>alert(1)</script>"
XSS_NUMBER = "JJD000000000000000666"
PARCELS = 11  # plus the one whose scan message is a script: two pages of five and one more


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is absent: install Debian's chromium (sudo apt-get install chromium) "
            "to run the browser tests"
        )
    playwright = pytest.importorskip(
        "playwright.async_api", reason="playwright is not installed (pip install -e '.[test]')"
    )
    async with playwright.async_playwright() as driver:
        chromium = await driver.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    stack = await start_stack()
    yield stack
    await stack.close()


def register_parcels(stack: Stack) -> list[str]:
    """Parcels in several states, and one whose carrier message is a script."""
    kinds = [
        [Kind.LABEL, Kind.PICKUP, Kind.TRANSIT, Kind.OUT_FOR_DELIVERY, Kind.DELIVERED],
        [Kind.LABEL, Kind.PICKUP, Kind.TRANSIT],
        [Kind.LABEL, Kind.PICKUP, Kind.TRANSIT, Kind.OUT_FOR_DELIVERY, Kind.ATTEMPT],
        [Kind.LABEL, Kind.TRANSIT, Kind.EXCEPTION, Kind.RETURNED],
    ]
    numbers = [f"JJD0000000000000001{n:02d}" for n in range(PARCELS)]
    stack.dhl.register(timeline(number, kinds[n % len(kinds)]) for n, number in enumerate(numbers))
    start = datetime.now(UTC) - timedelta(days=1)
    scans = [
        Scan(kind=Kind.PICKUP, after_hours=0, city="Leipzig", country="DE"),
        Scan(kind=Kind.TRANSIT, after_hours=3, city="Berlin", country="DE", message=ATTACK),
    ]
    stack.dhl.register([Timeline(tracking_number=XSS_NUMBER, start=start, scans=scans)])
    for number in [*numbers, XSS_NUMBER]:
        stack.store.add_order(fulfillments=[[("DHL", number, None)]])
    return numbers


async def all_polled(pool: asyncpg.Pool) -> bool:
    row = await pool.fetchrow(
        "SELECT count(*) AS shipments,"
        " count(*) FILTER (WHERE carrier_state = 'pending') AS waiting FROM shipments"
    )
    return bool(row["shipments"] == PARCELS + 1 and row["waiting"] == 0)


async def row_ids(page: Any) -> list[str]:
    """The table's rows, read at once (the live refresh may replace them between reads)."""
    ids: list[str] = await page.eval_on_selector_all(
        "tr[data-id]", "rows => rows.map(row => row.dataset.id)"
    )
    return ids


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_a_merchant_works_through_the_table(
    browser: Any, stack: Stack, pool: asyncpg.Pool, database_url: str
) -> None:
    register_parcels(stack)
    daemon = Daemon(stack.config(database_url), pool)
    await daemon.start()
    try:
        await eventually(lambda: all_polled(pool), what="every parcel polled once")
        # A carrier code nobody configured, shown on the table and the analytics page.
        shop = await pool.fetchval("SELECT id FROM shops")
        await add_shipment(pool, shop, "#EVIL", carrier=ATTACK, status="in_transit")
        page = await browser.new_page()
        dialogs: list[str] = []

        async def dismiss(dialog: Any) -> None:
            dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", dismiss)
        base = daemon.url.rstrip("/")

        # The table, five to a page.
        await page.goto(f"{base}/?limit=5")
        first_page = await row_ids(page)
        assert len(first_page) == 5
        await shot(page, "table")

        # The next page: five others.
        await page.get_by_role("link", name="Next page").click()
        await page.wait_for_url("**cursor=**")
        second_page = await row_ids(page)
        assert len(second_page) == 5
        assert not set(second_page) & set(first_page)

        # A tab: its count is its rows.
        await page.goto(f"{base}/")
        problems = page.locator("nav.tabs a[data-tab=problems]")
        count = int(await problems.locator(".count").inner_text())
        await problems.click()
        await page.wait_for_url("**tab=problems**")
        assert len(await row_ids(page)) == count > 0

        # Filter by status, then download exactly that view as CSV.
        await page.goto(f"{base}/")
        await page.select_option("select[name=status]", "delivered")
        await page.get_by_role("button", name="Filter").click()
        await page.wait_for_url("**status=delivered**")
        delivered = await row_ids(page)
        assert delivered
        assert await page.locator("tr[data-id] .badge.delivered").count() == len(delivered)
        async with page.expect_download() as download_info:
            await page.get_by_role("link", name="Download CSV").click()
        download = await download_info.value
        text = Path(await download.path()).read_text(encoding="utf-8-sig")
        exported = list(csv.DictReader(io.StringIO(text)))
        assert sorted(row["shipment_id"] for row in exported) == sorted(delivered)
        assert {row["status"] for row in exported} == {"delivered"}

        # Search by tracking number.
        await page.goto(f"{base}/")
        await page.fill("input[name=q]", XSS_NUMBER)
        await page.get_by_role("button", name="Filter").click()
        await page.wait_for_url("**q=**")
        assert len(await row_ids(page)) == 1

        # Open the shipment: the carrier's message is text, not a script.
        await page.locator("tr[data-id] a[href^='/shipments/']").first.click()
        await page.wait_for_url("**/shipments/*")
        await page.get_by_text(ATTACK).first.wait_for()
        assert await page.get_by_text(ATTACK).count() >= 1
        assert not await page.evaluate(
            "() => [...document.scripts].some(s => s.textContent.includes('alert(1)'))"
        )
        await shot(page, "shipment")

        # Poll now: the button queues a poll, and the daemon asks DHL again.
        state = page.locator(".poll-state")
        polled_before = await state.get_attribute("data-last-polled")
        asked = sum(XSS_NUMBER in r.numbers for r in stack.dhl.requests)
        await page.get_by_role("button", name="Poll now").click()
        await page.wait_for_url("**flash=queued**")
        await page.get_by_text("Poll queued").wait_for()

        async def polled_again() -> bool:
            await page.reload()
            return await state.get_attribute("data-last-polled") != polled_before

        await eventually(polled_again, what="the poll the button queued")
        assert sum(XSS_NUMBER in r.numbers for r in stack.dhl.requests) > asked
        await shot(page, "shipment")

        # Analytics, from the header; then the last 7 days.
        await page.get_by_role("link", name="Analytics").click()
        await page.wait_for_url("**/analytics")
        assert await page.locator("svg.chart").count() == 5
        await page.get_by_role("link", name="Last 7 days").click()
        await page.wait_for_url("**days=7")
        for summary in await page.locator("summary").all():
            await summary.click()
        assert await page.get_by_text(ATTACK).count() >= 1  # the odd carrier, as text
        transit = page.locator("figure[data-chart=transit-days] table")
        assert "dhl" in (await transit.text_content() or "")
        await shot(page, "analytics")

        assert dialogs == []
    finally:
        await daemon.stop()


async def test_sign_in_with_a_strict_http_only_cookie(
    browser: Any, stack: Stack, pool: asyncpg.Pool, database_url: str
) -> None:
    from tracker.web.auth import hash_password

    auth = {
        "api_token": "browser-test-token-0123456789",
        "username": "merchant",
        "password_hash": hash_password("correct horse", n=2**10),
        "session_secret": "browser-test-session-secret-0123456789",
    }
    daemon = Daemon(stack.config(database_url, web={"auth": auth}), pool)
    await daemon.start()
    try:
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(f"{daemon.url}analytics")
        await page.wait_for_url("**/login?next=**")
        await page.fill("input[name=username]", "merchant")
        await page.fill("input[name=password]", "wrong")
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_text("Wrong username or password.").wait_for()
        await page.fill("input[name=password]", "correct horse")
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url("**/analytics")
        [cookie] = await context.cookies()
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert await page.evaluate("() => document.cookie") == ""
        await page.get_by_role("link", name="Sign out").click()
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url("**/login")
        await page.goto(daemon.url)
        await page.wait_for_url("**/login?next=**")
    finally:
        await daemon.stop()
