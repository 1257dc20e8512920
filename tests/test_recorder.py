"""The Recorder: results of concurrent callers stored together, each still its own.

Answers arrive one request at a time from every carrier and claim loop; the recorder stores
what was handed over meanwhile in one transaction. These tests hold it to what that must not
cost: a shipment gets its own carrier's answer even when another carrier uses the same number,
a caller cancelled mid-flush does not lose the others' results (or its own), a failed flush
reaches every caller it held, and many handovers share a transaction.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest

from carriers.base import Outcome, TrackResult
from tests.harness import SHOP, start_stack
from tracker.config import PollingConfig, WritebackConfig
from tracker.domain import Status, TrackingEvent
from tracker.engine import recorder as recorder_module
from tracker.engine.claims import ClaimedShipment, claim_due
from tracker.engine.recorder import Recorder
from tracker.shopify.sync import ensure_shops

WORKER = "recorder-test"


async def seed(pool: asyncpg.Pool, rows: list[tuple[str, str]]) -> list[ClaimedShipment]:
    """Shipments (carrier, number), one fulfillment each, claimed by WORKER."""
    stack = await start_stack()
    try:
        shop = (await ensure_shops(pool, stack.config("postgresql://unused").shops))[SHOP]
    finally:
        await stack.close()
    for n, (carrier, number) in enumerate(rows):
        await pool.execute(
            """
            INSERT INTO shipments (shop_id, order_id, order_name, fulfillment_id,
                                   tracking_number, carrier)
            VALUES ($1, $2, $3, $4, $5, $6)
            """,
            shop.id,
            f"gid://shopify/Order/7{n}",
            f"#7{n}",
            f"gid://shopify/Fulfillment/7{n}",
            number,
            carrier,
        )
    carriers = sorted({carrier for carrier, _ in rows})
    claimed = await claim_due(pool, WORKER, timedelta(minutes=5), len(rows), carriers)
    assert len(claimed) == len(rows)
    return sorted(claimed, key=lambda s: s.id)


def found(number: str, status: Status, hours_ago: float = 1.0) -> TrackResult:
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    event = TrackingEvent(at, status, carrier_code=status.name, message=status.value)
    return TrackResult(number, Outcome.FOUND, events=(event,))


def recorder_for(pool: asyncpg.Pool) -> Recorder:
    return Recorder(pool, PollingConfig(), WritebackConfig())


async def stored(pool: asyncpg.Pool) -> dict[int, Any]:
    rows = await pool.fetch(
        "SELECT id, carrier, status, lease_owner, carrier_state FROM shipments ORDER BY id"
    )
    return {r["id"]: r for r in rows}


async def test_two_carriers_with_the_same_number_each_get_their_own_answer(pool):
    dhl, ups = await seed(pool, [("dhl", "SAME0001"), ("ups", "SAME0001")])
    recorder = recorder_for(pool)
    counts = await asyncio.gather(
        recorder.record(WORKER, [dhl], {"SAME0001": found("SAME0001", Status.DELIVERED)}),
        recorder.record(WORKER, [ups], {"SAME0001": found("SAME0001", Status.IN_TRANSIT)}),
    )
    assert counts == [1, 1]
    rows = await stored(pool)
    assert rows[dhl.id]["status"] == "delivered"
    assert rows[ups.id]["status"] == "in_transit"
    events = await pool.fetch("SELECT shipment_id, status FROM tracking_events ORDER BY id")
    assert {(e["shipment_id"], e["status"]) for e in events} == {
        (dhl.id, "delivered"),
        (ups.id, "in_transit"),
    }


async def test_handovers_made_meanwhile_share_a_transaction(pool, monkeypatch):
    shipments = await seed(pool, [("dhl", f"JD{n:08d}") for n in range(20)])
    flushes: list[int] = []
    original = recorder_module.record_results

    async def counted(*args: Any, **kwargs: Any) -> Any:
        flushes.append(len(args[2]))
        return await original(*args, **kwargs)

    monkeypatch.setattr(recorder_module, "record_results", counted)
    recorder = recorder_for(pool)
    counts = await asyncio.gather(
        *(
            recorder.record(
                WORKER, [s], {s.tracking_number: found(s.tracking_number, Status.IN_TRANSIT)}
            )
            for s in shipments
        )
    )
    assert counts == [1] * 20
    assert sum(flushes) == 20
    assert len(flushes) <= 2, f"20 handovers took {len(flushes)} transactions"
    rows = await stored(pool)
    assert all(r["status"] == "in_transit" and r["lease_owner"] is None for r in rows.values())


async def test_a_caller_cancelled_mid_flush_loses_nothing(pool):
    first, second = await seed(pool, [("dhl", "JD00000001"), ("dhl", "JD00000002")])
    recorder = recorder_for(pool)
    one = asyncio.ensure_future(
        recorder.record(WORKER, [first], {"JD00000001": found("JD00000001", Status.DELIVERED)})
    )
    two = asyncio.ensure_future(
        recorder.record(WORKER, [second], {"JD00000002": found("JD00000002", Status.DELIVERED)})
    )
    await asyncio.sleep(0)  # both handed over, the flush under way
    one.cancel()
    assert await two == 1
    with pytest.raises(asyncio.CancelledError):
        await one
    await recorder.close()
    rows = await stored(pool)
    assert rows[first.id]["status"] == "delivered", "the cancelled caller's result was stored"
    assert rows[second.id]["status"] == "delivered"


async def test_a_failed_flush_reaches_every_caller_it_held(pool, database_url):
    first, second = await seed(pool, [("dhl", "JD00000003"), ("dhl", "JD00000004")])
    closed = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    await closed.close()
    recorder = Recorder(closed, PollingConfig(), WritebackConfig())
    outcomes = await asyncio.gather(
        recorder.record(WORKER, [first], {"JD00000003": found("JD00000003", Status.DELIVERED)}),
        recorder.record(WORKER, [second], {"JD00000004": found("JD00000004", Status.DELIVERED)}),
        return_exceptions=True,
    )
    assert all(isinstance(o, asyncpg.InterfaceError) for o in outcomes), outcomes
    rows = await stored(pool)
    assert rows[first.id]["lease_owner"] == WORKER, "nothing was stored; the claim stands"
    # The same recorder works again once the database does.
    recorder._pool = pool
    assert (
        await recorder.record(
            WORKER, [first], {"JD00000003": found("JD00000003", Status.DELIVERED)}
        )
        == 1
    )


async def test_results_of_a_claim_taken_over_are_not_stored(pool):
    (shipment,) = await seed(pool, [("dhl", "JD00000005")])
    await pool.execute(
        "UPDATE shipments SET lease_owner = 'someone-else' WHERE id = $1", shipment.id
    )
    recorder = recorder_for(pool)
    await recorder.record(WORKER, [shipment], {"JD00000005": found("JD00000005", Status.DELIVERED)})
    rows = await stored(pool)
    assert rows[shipment.id]["status"] is None
    assert rows[shipment.id]["lease_owner"] == "someone-else"


async def test_times_and_text_are_stored_exactly(pool):
    (shipment,) = await seed(pool, [("dhl", "JD00000006")])
    india = timezone(timedelta(hours=5, minutes=30))
    at = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=123456)
    # Days ahead, whenever the test runs: an ETA within the day would make the next poll hourly.
    eta = (datetime.now(UTC) + timedelta(days=3)).astimezone(india).replace(microsecond=5)
    event = TrackingEvent(
        at,
        Status.IN_TRANSIT,
        carrier_code="AR",
        message='Arrived "at" hub \\ Malmö — 北京 \U0001f69a',
        city="Zürich",
        zip="8001",
        time_source="local:zone assumed",
    )
    result = TrackResult("JD00000006", Outcome.FOUND, events=(event,), estimated_delivery_at=eta)
    await recorder_for(pool).record(WORKER, [shipment], {"JD00000006": result})
    row = await pool.fetchrow("SELECT * FROM tracking_events")
    assert row["happened_at"] == at
    assert row["estimated_delivery_at"] == eta
    assert row["message"] == 'Arrived "at" hub \\ Malmö — 北京 \U0001f69a'
    assert (row["city"], row["zip"], row["carrier_code"]) == ("Zürich", "8001", "AR")
    assert row["time_source"] == "local:zone assumed"
    assert row["dedupe_key"] == event.dedupe_key
    assert (row["writeback_state"], row["writeback_error"]) == ("pending", None)
    ship = await pool.fetchrow("SELECT *, next_poll_at - last_polled_at AS wait FROM shipments")
    assert (ship["status"], ship["status_at"], ship["last_scan_at"]) == ("in_transit", at, at)
    assert ship["last_event_id"] == row["id"]
    assert (ship["estimated_delivery_at"], ship["first_eta"]) == (eta, eta)
    assert (ship["carrier_state"], ship["poll_failures"], ship["active"]) == ("found", 0, True)
    polling = PollingConfig()
    assert polling.in_transit_every / 2 < ship["wait"] < polling.in_transit_every * 2
    assert ship["lease_owner"] is None


async def test_a_carrier_error_between_two_not_found_answers_keeps_the_run_of_not_found(pool):
    """Issue 5: a number not found for 3 days is given up and flagged. A timeout in between says
    nothing of the number: the run goes on from its first day, and only an answer that finds
    the parcel ends it."""
    await seed(pool, [("dhl", "NEVER0001")])
    began = datetime.now(UTC) - timedelta(days=2, hours=20)
    await pool.execute("UPDATE shipments SET not_found_since = $1", began)
    answers = [
        TrackResult.error("NEVER0001", "timed out"),
        TrackResult.not_found("NEVER0001"),
        found("NEVER0001", Status.IN_TRANSIT),
    ]
    seen = []
    for answer in answers:
        # Claimed again whether due or not (the next poll may be hours away), as it now stands.
        await pool.execute("UPDATE shipments SET next_poll_at = now(), lease_until = NULL")
        (shipment,) = await claim_due(pool, WORKER, timedelta(minutes=5), 1, ["dhl"])
        await recorder_for(pool).record(WORKER, [shipment], {"NEVER0001": answer})
        seen.append(await pool.fetchval("SELECT not_found_since FROM shipments"))
    assert seen == [began, began, None]


async def test_a_parcel_found_with_no_scan_long_after_fulfilment_stops_as_expired(pool):
    """Issue 5: no new scan for 30 days stops polling. A parcel the carrier lists with no scan
    at all (AfterShip does, for a label it was never told about) counts from its fulfilment."""
    old, young = await seed(pool, [("aftership", "QUIET0001"), ("aftership", "QUIET0002")])
    await pool.execute(
        "UPDATE shipments SET lease_owner = NULL, lease_until = NULL, fulfilled_at = now()"
        " - CASE WHEN id = $1 THEN interval '45 days' ELSE interval '2 days' END",
        old.id,
    )
    claimed = await claim_due(pool, WORKER, timedelta(minutes=5), 2, ["aftership"])
    old, young = sorted(claimed, key=lambda s: s.id)
    empty = {n: TrackResult(n, Outcome.FOUND) for n in ("QUIET0001", "QUIET0002")}
    await recorder_for(pool).record(WORKER, [old, young], empty)
    rows = await pool.fetch("SELECT active, stopped_reason FROM shipments ORDER BY id")
    assert [tuple(r) for r in rows] == [(False, "expired"), (True, None)]
