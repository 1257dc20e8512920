"""Third-party carriers: an adapter from another distribution, found by its entry point."""

from __future__ import annotations

import textwrap

import aiohttp
import pytest

from carriers.registry import available_factories, build_adapters
from carriers.sandbox_base import Kind
from tests.harness import DHL_KEY, SHOP, start_stack, timeline
from tracker.config import Config, PollingConfig, WritebackConfig
from tracker.engine.poller import poll_due
from tracker.shopify.sync import ensure_shops


@pytest.fixture
def acme_distribution(tmp_path, monkeypatch):
    """An installed distribution ``acme-tracking`` declaring the carrier ``acme``."""
    (tmp_path / "acme_tracking.py").write_text(
        textwrap.dedent('''
        from carriers.dhl import DhlAdapter

        class AcmeAdapter(DhlAdapter):
            """Acme happens to speak DHL's API (in this test)."""
            code = "acme"
            display_name = "Acme Couriers"
    ''')
    )
    dist = tmp_path / "acme_tracking-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-tracking\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[tracker.carriers]\nacme = acme_tracking:AcmeAdapter\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "acme"


def test_plugin_is_found_next_to_the_built_in_carriers(acme_distribution):
    factories = available_factories()
    assert "acme" in factories
    assert "dhl" in factories
    assert factories["acme"].code == "acme"


def test_configuration_accepts_the_plugin_carrier(acme_distribution):
    config = Config.model_validate({"carriers": {"acme": {"api_key": "k"}}})
    assert "acme" in config.carriers


async def test_plugin_carrier_is_polled(acme_distribution, pool):
    stack = await start_stack()
    try:
        number = "ACME0001"
        stack.dhl.register([timeline(number, [Kind.LABEL, Kind.TRANSIT])])
        config = stack.config("postgresql://unused")
        shop = (await ensure_shops(pool, config.shops))[SHOP]
        await pool.execute(
            """
            INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id,
                                   tracking_number, carrier)
            VALUES ($1, 'gid://shopify/Order/1', '#1', 'gid://shopify/Fulfillment/1', $2, 'acme')
            """,
            shop.id,
            number,
        )
        settings = Config.model_validate(
            {"carriers": {"acme": {"api_key": DHL_KEY, "base_url": stack.dhl_url}}}
        ).carriers
        async with aiohttp.ClientSession() as http:
            adapters = build_adapters(settings, http)
            report = await poll_due(pool, adapters, PollingConfig(), WritebackConfig(), "w")
        assert report.polled == 1
        assert report.new_events == 2
        row = await pool.fetchrow("SELECT status, carrier_state FROM shipments")
        assert tuple(row) == ("in_transit", "found")
    finally:
        await stack.close()


def test_a_broken_plugin_is_logged_and_skipped(tmp_path, monkeypatch, caplog):
    dist = tmp_path / "broken_tracking-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-tracking\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[tracker.carriers]\nbroken = no_such_module:Adapter\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    factories = available_factories()
    assert "broken" not in factories
    assert "dhl" in factories
    assert "carrier plugin broken (no_such_module:Adapter) failed to load" in caplog.text
