"""Carrier faults, part two (issue 7): the daemon rides them out and recovers by itself.

One in-process daemon polls all six carriers against their sandboxes. DHL stays healthy; the
five others each suffer a different carrier-wide fault at once (three rounds cover every
:class:`~carriers.sandbox_base.FaultMode`). While they fail:

* DHL's new shipments are polled and their events written to Shopify;
* a carrier that cannot be asked, or refuses our credentials, is rested: its circuit opens, and
  opens again when the probe after it fails; for a while of the open circuit it gets no request
  at all; over the whole fault it gets at most one round of requests per opening; the status
  table names it and says which of the two it is;
* a carrier whose answers are unreadable is backed off per shipment;
* either way the shipment says why (JSON API);
* a survivable fault (expired tokens, JSON labelled text/plain) costs no poll;
* no message, page or log line shows a credential.

Once healed, every carrier's shipments get their events without a restart and its circuit
closes. Each round prints one line per fault (requests it got, circuit openings, time to
recover) for docs/RELIABILITY.md: run with ``-s`` to see them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from enum import Enum
from typing import Any

import aiohttp
import asyncpg
import pytest

from carriers.sandbox_base import FaultMode
from tests.harness import DHL_KEY, TOKEN, Stack, eventually, start_stack
from tests.test_carrier_faults import EXPECTED, MAX_ATTEMPTS, Box, Expect
from tracker.engine.daemon import Daemon
from tracker.sandbox.shopify_models import Order

ROUNDS: dict[str, dict[str, FaultMode]] = {
    "a": {
        "ups": FaultMode.SERVER_ERROR,
        "fedex": FaultMode.TIMEOUT,
        "usps": FaultMode.EXPIRED_TOKEN,
        "postnord": FaultMode.RATE_LIMITED,
        "aftership": FaultMode.HTML_200,
    },
    "b": {
        "ups": FaultMode.TRICKLE,
        "fedex": FaultMode.RESET,
        "usps": FaultMode.REVOKED_TOKEN,
        "postnord": FaultMode.RATE_LIMITED_BARE,
        "aftership": FaultMode.TRUNCATED,
    },
    "c": {
        "ups": FaultMode.HTML_502,
        "fedex": FaultMode.MALFORMED,
        "usps": FaultMode.WRONG_TYPE_TEXT,
        "postnord": FaultMode.WRONG_TYPE_JSON,
        "aftership": FaultMode.NOT_HTTP,
    },
}

COMPANY = {
    "dhl": "DHL Express",
    "ups": "UPS",
    "fedex": "FedEx",
    "usps": "USPS",
    "postnord": "PostNord",
    "aftership": "Royal Mail",
}

CIRCUIT_FAILURES = 2
OPEN_SECONDS = 3.0
"""Longer than a failed shipment's backoff, so shipments come due while the circuit rests."""
POLLING = {
    "sweep_interval": "0.2s",
    "pre_transit_every": "8s",
    "in_transit_every": "8s",  # so a failed poll is retried after about 1 s, then 1.5 s
    "out_for_delivery_every": "8s",
    "not_found_every": "8s",
    "error_backoff_max": "1.5s",
    "circuit_failures": CIRCUIT_FAILURES,
    "circuit_open_for": f"{OPEN_SECONDS}s",
}


class Reaction(Enum):
    REST = "circuit opens"
    REFUSED = "circuit opens (refused)"
    BACK_OFF = "per-shipment backoff"
    ABSORB = "no failed poll"


def reaction(mode: FaultMode) -> Reaction:
    expect, _ = EXPECTED[mode]
    if expect is Expect.UNAVAILABLE:
        return Reaction.REST
    if expect is Expect.AUTH:
        return Reaction.REFUSED
    if expect is Expect.ERROR_RESULT:
        return Reaction.BACK_OFF
    return Reaction.ABSORB


RESTED = (Reaction.REST, Reaction.REFUSED)
"""The reactions that open the carrier's circuit."""


def test_the_rounds_cover_every_fault():
    modes = [mode for faults in ROUNDS.values() for mode in faults.values()]
    assert sorted(modes) == sorted(FaultMode)


async def states(pool: asyncpg.Pool, numbers: list[str]) -> dict[str, asyncpg.Record]:
    rows = await pool.fetch(
        """
        SELECT s.id, s.tracking_number, s.carrier, s.carrier_state, s.carrier_message,
               s.poll_failures, s.lease_owner,
               (SELECT count(*) FROM tracking_events e WHERE e.shipment_id = s.id) AS events
        FROM shipments s WHERE s.tracking_number = ANY($1::text[])
        """,
        numbers,
    )
    return {r["tracking_number"]: r for r in rows}


async def all_have_events(pool: asyncpg.Pool, numbers: list[str]) -> bool:
    rows = await states(pool, numbers)
    return len(rows) == len(numbers) and all(r["events"] > 0 for r in rows.values())


async def circuit(pool: asyncpg.Pool, code: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        """
        SELECT failures, opened_until, opened_until > now() AS open,
               extract(epoch FROM opened_until - now())::float8 AS seconds_left
        FROM carrier_circuits WHERE carrier = $1
        """,
        code,
    )


def openings(caplog: pytest.LogCaptureFixture, code: str) -> int:
    return sum(
        1
        for r in caplog.records
        if r.name == "tracker.engine.circuit" and r.getMessage().startswith(f"{code} circuit open")
    )


async def held_back_while_open(pool: asyncpg.Pool, box: Box) -> bool:
    """While its circuit is open, a due shipment of the carrier stays unclaimed for half a
    second (sweeps run every 0.2 s) and the carrier hears nothing new: every request it gets
    meanwhile is a retry for a shipment already in flight."""

    async def snapshot() -> tuple[Any, set[str], set[str]]:
        row = await circuit(pool, box.code)
        rows = await pool.fetch(
            """
            SELECT tracking_number, lease_owner IS NOT NULL AS leased,
                   next_poll_at <= now() AS due
            FROM shipments WHERE carrier = $1
            """,
            box.code,
        )
        leased = {r["tracking_number"] for r in rows if r["leased"]}
        due = {r["tracking_number"] for r in rows if r["due"] and not r["leased"]}
        # Open for a moment already (a sweep that saw it closed has claimed by then), and
        # for a while yet.
        opened = row is not None and row["open"] and 0.8 < row["seconds_left"] < OPEN_SECONDS - 0.3
        return (row["opened_until"] if opened else None), leased, due

    until, in_flight, due = await snapshot()
    if until is None or not due:
        return False
    sent = len(box.world.requests)
    await asyncio.sleep(0.5)
    still = await pool.fetchrow(
        """
        SELECT opened_until = $2 AND opened_until > now() AS same,
               (SELECT count(*) FROM shipments
                WHERE carrier = $1 AND tracking_number = ANY($3::text[])
                  AND lease_owner IS NULL) AS unclaimed
        FROM carrier_circuits WHERE carrier = $1
        """,
        box.code,
        until,
        sorted(due),
    )
    new = [r for r in box.world.requests[sent:] if r.numbers and not in_flight >= set(r.numbers)]
    return bool(still["same"]) and still["unclaimed"] == len(due) and not new


def add_orders(stack: Stack, code: str, numbers: list[str]) -> list[Order]:
    return [stack.store.add_order(fulfillments=[[(COMPANY[code], n, None)]]) for n in numbers]


@pytest.mark.parametrize("round_name", sorted(ROUNDS))
async def test_the_daemon_rides_out_broken_carriers_and_recovers_by_itself(
    round_name, pool, database_url, caplog
):
    caplog.set_level(logging.INFO)
    faults = ROUNDS[round_name]
    stack = await start_stack()
    boxes = {code: await Box.start(code) for code in faults}
    dhl = Box("dhl", stack.dhl)  # the harness serves DHL's sandbox
    every = {"dhl": dhl, **boxes}
    before = {code: [box.number(i) for i in (1, 2)] for code, box in every.items()}
    during = {code: [box.number(i) for i in (3, 4)] for code, box in every.items()}
    secrets = [DHL_KEY, TOKEN, *(s for box in boxes.values() for s in box.secrets())]
    daemon: Daemon | None = None
    try:
        for code, box in every.items():
            for number in before[code] + during[code]:
                box.register(number)
            add_orders(stack, code, before[code])
        carriers = {code: box.settings(requests_per_second=50) for code, box in boxes.items()}
        config = stack.config(database_url, carriers=carriers, polling=POLLING)
        daemon = Daemon(config, pool)
        await daemon.start()
        everything = [n for numbers in before.values() for n in numbers]
        await eventually(lambda: all_have_events(pool, everything), timeout=90, what="warm-up")
        assert {code: sorted(r["carrier"] for r in (await states(pool, before[code])).values())
                for code in every} == {code: [code, code] for code in every}  # fmt: skip

        # Break five carriers; every carrier gets two new shipments.
        started = time.monotonic()
        for code, mode in faults.items():
            boxes[code].world.set_fault(mode)
        dhl_orders = add_orders(stack, "dhl", during["dhl"])
        for code in faults:
            add_orders(stack, code, during[code])

        async def written_to_shopify() -> bool:
            return all(stack.store.events(o.fulfillments[0].id) for o in dhl_orders)

        await eventually(lambda: all_have_events(pool, during["dhl"]), what="DHL polled")
        await eventually(written_to_shopify, what="DHL's events written to Shopify")

        async with aiohttp.ClientSession() as http:
            for code, mode in faults.items():
                box = boxes[code]
                kind = reaction(mode)
                if kind is Reaction.ABSORB:

                    async def polled(c: str = code) -> bool:
                        return await all_have_events(pool, during[c])

                    await eventually(polled, what=f"{code} polled through {mode.value}")
                    continue
                state = "unavailable" if kind is Reaction.REST else "carrier_error"

                async def failing(c: str = code, s: str = state) -> bool:
                    rows = (await states(pool, during[c])).values()
                    return any(r["carrier_state"] == s and r["poll_failures"] >= 2 for r in rows)

                await eventually(failing, timeout=60, what=f"{code} failing on {mode.value}")
                shown = next(
                    r for r in (await states(pool, during[code])).values()
                    if r["carrier_state"] == state
                )  # fmt: skip
                async with http.get(f"{daemon.url}api/shipments/{shown['id']}") as response:
                    body = await response.json()
                assert body["carrier_state"] == state
                message = body["carrier_message"]
                assert message, body
                assert "\n" not in message, message
                assert not [s for s in secrets if s in message], message
                assert body["events"] == []  # none invented

                if kind in RESTED:

                    async def reopened(c: str = code) -> bool:
                        return openings(caplog, c) >= 2

                    await eventually(reopened, timeout=60, what=f"{code} circuit opened twice")

                    async def held_back(b: Box = box) -> bool:
                        return await held_back_while_open(pool, b)

                    await eventually(held_back, timeout=60, what=f"{code} held back while open")

                    words = "keeps failing" if kind is Reaction.REST else "refuses our credentials"

                    async def on_the_table(c: str = code, w: str = words) -> bool:
                        async with http.get(daemon.url) as page:
                            html = await page.text()
                        assert not [s for s in secrets if s in html]
                        return f"<strong>{c}</strong> {w}" in html

                    await eventually(on_the_table, timeout=60, what=f"{code} on the status table")

        # Heal them all; each must come back by itself.
        met = {code: len(box.world.fault_requests()) for code, box in boxes.items()}
        reads = {code: len(box.reads(box.world.fault_requests())) for code, box in boxes.items()}
        healed = time.monotonic()
        for box in boxes.values():
            box.world.heal()

        async def recovery(code: str) -> float:
            async def back() -> bool:
                rows = await states(pool, before[code] + during[code])
                row = await circuit(pool, code)
                return (
                    await all_have_events(pool, during[code])
                    and all(r["carrier_state"] == "found" for r in rows.values())
                    and (row is None or (row["failures"] == 0 and row["opened_until"] is None))
                )

            await eventually(back, timeout=90, what=f"{code} recovered")
            return time.monotonic() - healed

        recovered = dict(
            zip(faults, await asyncio.gather(*(recovery(c) for c in faults)), strict=True)
        )
    finally:
        if daemon is not None:
            await daemon.stop()
        for box in boxes.values():
            await box.close()
        await stack.close()

    fault_seconds = healed - started
    assert openings(caplog, "dhl") == 0
    for code, mode in faults.items():
        opened = openings(caplog, code)
        kind = reaction(mode)
        if kind in RESTED:
            # A round asks about each shipment at most once, each try sent once (twice for a
            # reset: aiohttp resends an idempotent request once itself); there are rounds
            # before the circuit first opens, then one per opening (and one for a race).
            shipments = len(before[code]) + len(during[code])
            rounds = CIRCUIT_FAILURES + opened + 1
            resent = 2 if mode is FaultMode.RESET else 1
            assert met[code] <= rounds * shipments * MAX_ATTEMPTS * resent, (code, met, opened)
        else:
            assert opened == 0, (code, mode)
        print(
            f"{code:<9} {mode.value:<17} {kind.value:<20}: {met[code]:>3} requests "
            f"({reads[code]} tracking reads) in {fault_seconds:.1f} s of fault "
            f"({met[code] / fault_seconds:.1f}/s), circuit opened {opened}x; all its shipments "
            f"current {recovered[code]:.1f} s after healing"
        )
    leaked = [r.getMessage() for r in caplog.records if any(s in r.getMessage() for s in secrets)]
    assert not leaked
