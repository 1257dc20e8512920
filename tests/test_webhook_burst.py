"""A burst of signed webhooks at a real ``tracker run``: every one stored once, handled once.

``bench/webhook_burst.py`` at a tenth of its size: 200 deliveries, 50 at a time, a real daemon
process on a fresh database and a real Shopify sandbox. Counts are asserted, never timings.
"""

from __future__ import annotations

from pathlib import Path

from bench.webhook_burst import burst


async def test_burst_of_webhooks_is_stored_once_and_processed_once_with_duplicates_recognised(
    database_url: str, tmp_path: Path
) -> None:
    result = await burst(
        database_url, tmp_path, webhooks=200, concurrency=50, orders=60, max_seconds=240
    )

    # Duplicates were really sent, both kinds, mixed in with the rest.
    assert result["sent"] == {"original": 170, "same_webhook_id": 20, "same_event_id": 10}
    # One row per distinct event; each duplicate answered as one, nothing refused.
    assert result["answers"] == {"stored": 170, "duplicate": 30}
    assert (result["rows"], result["distinct_events"], result["lost"]) == (170, 170, 0)
    # Each stored delivery claimed and processed exactly once, none failed or left over.
    assert (result["processed_once"], result["processed_more_than_once"]) == (170, 0)
    assert (result["unprocessed"], result["failed"]) == (0, 0)
    # The orders were read from Shopify and applied: all 60 with every parcel.
    assert result["orders_applied"] == 60
    assert result["checks"] == dict.fromkeys(result["checks"], True)
