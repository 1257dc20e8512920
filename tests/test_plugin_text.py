"""A third-party adapter's text is cleaned where it is stored, as the built-in parsers' is.

The built-in parsers clean every text (``tracker.text.clean_text``); a plugin's answer goes
straight to the poller. PostgreSQL refuses a NUL, and one such scan used to fail the insert of
its whole batch, on every sweep.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from carriers.base import Outcome, TrackResult
from tests.harness import SHOP, start_stack
from tracker.config import PollingConfig, WritebackConfig
from tracker.domain import Status, TrackingEvent
from tracker.engine.poller import poll_due
from tracker.shopify.sync import ensure_shops

HOSTILE = "Out\x00 for\tdelivery \u202e<b>now</b>" + "!" * 5000


class CarelessAdapter:
    """What a plugin might return: NUL, controls, a bidi override, 5 kB of text."""

    code: ClassVar[str] = "careless"
    display_name: ClassVar[str] = "Careless Parcels"
    max_batch: ClassVar[int] = 10
    default_requests_per_second: ClassVar[float] = 100.0
    default_requests_per_day: ClassVar[int | None] = None

    async def track(self, numbers: Sequence[str]) -> dict[str, TrackResult]:
        now = datetime.now(UTC)
        return {
            number: TrackResult(
                number,
                Outcome.FOUND,
                events=[
                    TrackingEvent(
                        now - timedelta(hours=1),
                        Status.OUT_FOR_DELIVERY,
                        carrier_code="OFD\x00",
                        message=HOSTILE,
                        city="Malm\x00ö",
                        country="\x00",
                    )
                ],
                message="fine\x00",
            )
            for number in numbers
        }

    def public_url(self, number: str) -> str:
        return f"https://careless.example/{number}"


async def test_a_plugins_nul_and_control_characters_do_not_block_its_batch(pool):
    stack = await start_stack()
    try:
        shop = (await ensure_shops(pool, stack.config("postgresql://unused").shops))[SHOP]
        for n in range(3):
            await pool.execute(
                """
                INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id,
                                       tracking_number, carrier)
                VALUES ($1, $2, $3, $4, $5, 'careless')
                """,
                shop.id,
                f"gid://shopify/Order/9{n}",
                f"#9{n}",
                f"gid://shopify/Fulfillment/9{n}",
                f"CARELESS{n}",
            )
        report = await poll_due(
            pool, {"careless": CarelessAdapter()}, PollingConfig(), WritebackConfig(), "w"
        )
    finally:
        await stack.close()
    assert (report.polled, report.new_events, report.failed_batches) == (3, 3, 0)
    rows = await pool.fetch(
        "SELECT e.carrier_code, e.message, e.city, e.country, s.carrier_message, s.status"
        " FROM tracking_events e JOIN shipments s ON s.id = e.shipment_id"
    )
    assert len(rows) == 3
    for row in rows:
        assert row["carrier_code"] == "OFD"
        assert row["message"].startswith("Out for delivery <b>now</b>!!!")
        assert len(row["message"]) <= 2000
        assert "\x00" not in row["message"]
        assert "\u202e" not in row["message"]
        assert (row["city"], row["country"]) == ("Malmö", None)
        assert row["carrier_message"] == "fine"
        assert row["status"] == "out_for_delivery"
