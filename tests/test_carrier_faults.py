"""Carrier faults (issue 7): every way a carrier can fail is classified, rested and outlived.

Part one polls each adapter once while its own sandbox suffers one carrier-wide fault
(:mod:`carriers.sandbox_faults`), for every carrier and every fault: the poll ends within its
timeouts in a classified error (or a result, where the fault is survivable), with a one-line
message that names no credential, after a bounded number of requests; and the same adapter reads
the parcel again once the sandbox heals. Part two is in ``tests/test_daemon_faults.py``.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib
import time
from datetime import UTC, datetime, timedelta
from enum import Enum
from types import ModuleType
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from carriers.base import (
    Adapter,
    CarrierAuthError,
    CarrierError,
    CarrierSettings,
    CarrierUnavailable,
    Outcome,
    TrackResult,
)
from carriers.http import MAX_RETRY_AFTER, MAX_RETRY_WAIT, RateLimiter, parse_retry_after
from carriers.registry import BUILTIN
from carriers.sandbox_base import (
    TOKEN_MODES,
    CarrierWorld,
    FaultMode,
    Kind,
    RequestRecord,
    Scan,
    Timeline,
)
from tracker.engine.circuit import open_circuits, record_failure, record_success
from tracker.sandbox.serve import serve

CODES = sorted(BUILTIN)
TIMEOUT_SECONDS = 1.0
MAX_ATTEMPTS = 2
POLL_BOUND = 30.0
"""No poll may take longer than this, whatever the fault (its own bound is about 3 s)."""


class Expect(Enum):
    UNAVAILABLE = "CarrierUnavailable"
    AUTH = "CarrierAuthError"
    ERROR_RESULT = "an ERROR result for the number"
    FOUND = "the parcel, read as usual"


EXPECTED: dict[FaultMode, tuple[Expect, str]] = {
    # fault: (what the poll gives, words its message must contain)
    FaultMode.SERVER_ERROR: (Expect.UNAVAILABLE, "HTTP 50"),
    FaultMode.RATE_LIMITED: (Expect.UNAVAILABLE, "HTTP 429"),
    FaultMode.RATE_LIMITED_BARE: (Expect.UNAVAILABLE, "HTTP 429"),
    FaultMode.RESET: (Expect.UNAVAILABLE, "connection"),
    FaultMode.TIMEOUT: (Expect.UNAVAILABLE, "timed out after 1 s"),
    FaultMode.TRICKLE: (Expect.UNAVAILABLE, "timed out after 1 s"),
    FaultMode.TRUNCATED: (Expect.UNAVAILABLE, "broke off before the whole answer"),
    FaultMode.MALFORMED: (Expect.ERROR_RESULT, "with no JSON"),
    FaultMode.HTML_200: (Expect.UNAVAILABLE, "text/html, not JSON: Scheduled maintenance"),
    FaultMode.HTML_502: (Expect.UNAVAILABLE, "HTTP 502: 502 Bad Gateway"),
    FaultMode.WRONG_TYPE_JSON: (Expect.FOUND, ""),
    FaultMode.WRONG_TYPE_TEXT: (Expect.UNAVAILABLE, "text/plain, not JSON: Service temporarily"),
    FaultMode.NOT_HTTP: (Expect.UNAVAILABLE, "unreadable answer"),
    FaultMode.EXPIRED_TOKEN: (Expect.FOUND, ""),
    FaultMode.REVOKED_TOKEN: (Expect.AUTH, "401"),
}


def sandbox_module(code: str) -> ModuleType:
    return importlib.import_module(f"carriers.{code}.sandbox")


OAUTH_CODES = [code for code in CODES if "client_id" in sandbox_module(code).SANDBOX_SETTINGS]


class Box:
    """One carrier's sandbox on 127.0.0.1, and what the fault tests ask of it."""

    def __init__(self, code: str, world: CarrierWorld) -> None:
        self.code = code
        self.module = sandbox_module(code)
        self.world = world
        self.app: web.Application = self.module.sandbox_app(world)
        self.url = ""
        self._runner: web.AppRunner | None = None

    @classmethod
    async def start(cls, code: str) -> Box:
        box = cls(code, CarrierWorld(rate_limit_per_second=1000))
        box._runner, box.url = await serve(box.app, 0)
        return box

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {
            **self.module.SANDBOX_SETTINGS,
            "base_url": self.url,
            "requests_per_second": 500,
            "requests_per_day": 1_000_000,
            "timeout_seconds": TIMEOUT_SECONDS,
            "max_attempts": MAX_ATTEMPTS,
            **overrides,
        }

    def adapter(self, http: aiohttp.ClientSession, **overrides: Any) -> Adapter:
        return BUILTIN[self.code](CarrierSettings.model_validate(self.settings(**overrides)), http)

    def number(self, index: int) -> str:
        return str(self.module.sample_number(index))

    def register(self, number: str, *, start: datetime | None = None) -> None:
        begin = start or datetime.now(UTC) - timedelta(days=2)
        kinds = [Kind.LABEL, Kind.PICKUP, Kind.TRANSIT]
        scans = [
            Scan(kind=k, after_hours=5 * i, city="Springfield", postal_code="12345", country="US")
            for i, k in enumerate(kinds)
        ]
        self.world.register(
            [Timeline(tracking_number=number, start=begin, scans=scans, eta_hours=40)]
        )

    def reads(self, records: list[RequestRecord], number: str | None = None) -> list[RequestRecord]:
        """Requests that read tracking (not token fetches, not AfterShip registrations)."""
        is_read = getattr(self.module, "is_tracking_request", lambda record: True)
        return [
            r
            for r in records
            if r.numbers and is_read(r) and (number is None or number in r.numbers)
        ]

    @staticmethod
    def token_requests(records: list[RequestRecord]) -> list[RequestRecord]:
        return [r for r in records if "token" in r.path]

    def secrets(self) -> list[str]:
        """What must never show in a message: the sandbox's credentials, any token it issued."""
        values = [v for k, v in self.module.SANDBOX_SETTINGS.items() if k != "client_id"]
        return [*values, "sbx_"]


async def poll(carrier: Adapter, number: str) -> TrackResult | CarrierError:
    """One poll, bounded; a carrier error is returned, anything else fails the test."""
    try:
        return (await asyncio.wait_for(carrier.track([number]), POLL_BOUND))[number]
    except CarrierError as exc:
        return exc


def assert_readable(message: str, secrets: list[str], words: str) -> None:
    assert message, "empty message"
    assert "\n" not in message, message
    assert "<" not in message, message  # no HTML
    assert len(message) <= 400, message
    assert words in message, f"{words!r} not in {message!r}"
    for secret in secrets:
        assert secret not in message, f"{secret!r} leaked into {message!r}"


CASES = [
    pytest.param(code, mode, id=f"{code}-{mode.value}")
    for mode in FaultMode
    for code in CODES
    if mode not in TOKEN_MODES or code in OAUTH_CODES
]


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize(("code", "mode"), CASES)
async def test_one_poll_of_a_broken_carrier_is_classified_and_heals(code, mode, http):
    box = await Box.start(code)
    try:
        number = box.number(41)
        box.register(number)
        carrier = box.adapter(http)
        warm = await poll(carrier, number)  # token fetched, connection pooled: as in a daemon
        assert isinstance(warm, TrackResult), warm
        assert warm.outcome is Outcome.FOUND, warm
        box.world.set_fault(mode)
        got = await poll(carrier, number)
        met = box.world.fault_requests(mode)
        reads = box.reads(met, number)
        expect, words = EXPECTED[mode]

        if expect is Expect.UNAVAILABLE:
            assert isinstance(got, CarrierUnavailable), got
            assert_readable(str(got), box.secrets(), words)
            # Tries are bounded by max_attempts; aiohttp itself resends an idempotent request
            # once when the connection breaks before any answer.
            resent = 2 if mode is FaultMode.RESET and reads and reads[0].method == "GET" else 1
            assert 1 <= len(reads) <= MAX_ATTEMPTS * resent, reads
            if mode in (FaultMode.SERVER_ERROR, FaultMode.RATE_LIMITED, FaultMode.HTML_502):
                assert len(reads) == MAX_ATTEMPTS
            if mode is FaultMode.RATE_LIMITED:
                assert got.retry_after == 1.0
                assert reads[1].at - reads[0].at >= 0.9  # it waited as asked
            if mode is FaultMode.RATE_LIMITED_BARE:
                assert got.retry_after is None
            assert not box.token_requests(met)  # the token was not what failed
        elif expect is Expect.ERROR_RESULT:
            assert isinstance(got, TrackResult), got
            assert got.outcome is Outcome.ERROR, got
            assert_readable(got.message, box.secrets(), words)
            assert 1 <= len(reads) <= MAX_ATTEMPTS, reads
        elif expect is Expect.AUTH:
            # The refused token is thrown away and the call tried once more with a fresh one;
            # when that is refused too, the call fails: no loop.
            assert isinstance(got, CarrierAuthError), got
            assert_readable(str(got), box.secrets(), words)
            assert len(reads) == 2, reads
            assert len(box.token_requests(met)) == 1
        else:
            assert isinstance(got, TrackResult), got
            assert got.outcome is Outcome.FOUND, got
            assert got.events == warm.events
            if mode is FaultMode.EXPIRED_TOKEN:
                assert [r.status for r in reads] == [401, 200]
                assert len(box.token_requests(met)) == 1
            else:  # labelled text/html, then text/plain
                again = await poll(carrier, number)
                assert isinstance(again, TrackResult), again
                assert again.events == warm.events
                assert len(box.reads(box.world.fault_requests(mode), number)) == 2

        box.world.heal()
        healed = await poll(carrier, number)  # the same adapter, nothing reset by hand
        assert isinstance(healed, TrackResult), healed
        assert healed.outcome is Outcome.FOUND, healed
        assert healed.events == warm.events
    finally:
        await box.close()


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("retry_after", ["3600", "http-date"])
async def test_a_long_retry_after_is_honoured_by_sending_nothing_until_then(
    code, retry_after, http
):
    box = await Box.start(code)
    try:
        number = box.number(42)
        box.register(number)
        carrier = box.adapter(http, max_attempts=3)
        assert isinstance(await poll(carrier, number), TrackResult)
        in_an_hour = datetime.now(UTC) + timedelta(hours=1)
        box.world.retry_after = (
            email.utils.format_datetime(in_an_hour, usegmt=True)
            if retry_after == "http-date"
            else retry_after
        )
        box.world.set_fault(FaultMode.RATE_LIMITED)
        first = await poll(carrier, number)
        assert isinstance(first, CarrierUnavailable), first
        assert first.retry_after is not None
        assert 3500 <= first.retry_after <= 3600
        assert len(box.reads(box.world.fault_requests(), number)) == 1  # not retried early

        box.world.heal()
        sent = len(box.world.requests)
        second = await poll(carrier, number)  # fails at once, before sending anything
        assert isinstance(second, CarrierUnavailable), second
        assert "Retry-After" in str(second)
        assert second.retry_after is not None
        assert second.retry_after > MAX_RETRY_WAIT
        assert len(box.world.requests) == sent
    finally:
        await box.close()


async def test_requests_already_waiting_their_turn_honour_a_retry_after():
    limiter = RateLimiter(5)  # turns 0.2 s apart
    start = time.monotonic()
    sent: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        sent.append(time.monotonic() - start)

    waiting = [asyncio.create_task(one()) for _ in range(3)]
    await asyncio.sleep(0)  # all three have taken their turns: now, +0.2 s, +0.4 s
    limiter.defer(1.0)  # the first request's answer: 429, Retry-After: 1
    await asyncio.wait_for(asyncio.gather(*waiting), 10)
    assert sorted(sent)[0] < 1.0
    assert sorted(sent)[1] >= 1.0
    assert sorted(sent)[2] >= 1.0 + 0.2 - 0.01


async def test_a_pause_longer_than_we_wait_fails_at_once_instead_of_blocking():
    limiter = RateLimiter(5)
    limiter.defer(3600)
    with pytest.raises(CarrierUnavailable) as failed:
        await asyncio.wait_for(limiter.acquire(), 5)
    assert failed.value.retry_after is not None
    assert failed.value.retry_after > 3500


def test_retry_after_values():
    now = time.time()
    date = email.utils.formatdate(now + 120, usegmt=True)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(date, now=now) == pytest.approx(120, abs=1)
    assert parse_retry_after("inf") == MAX_RETRY_AFTER
    assert parse_retry_after("1e400") == MAX_RETRY_AFTER
    for unusable in (None, "", "nan", "soon", "Mon, 99 Foo"):
        assert parse_retry_after(unusable) is None


async def test_a_circuit_with_a_threshold_of_one_opens_on_the_first_failure(pool):
    opened = await record_failure(pool, "ups", "HTTP 503", threshold=1, open_for=timedelta(1))
    assert opened
    assert set(await open_circuits(pool)) == {"ups"}


async def test_only_the_failure_that_opens_a_circuit_says_so(pool):
    def fail() -> Any:
        return record_failure(pool, "dhl", "HTTP 503", threshold=2, open_for=timedelta(hours=1))

    assert [await fail() for _ in range(5)] == [False, True, False, False, False]
    until = (await open_circuits(pool))["dhl"]
    await fail()
    assert (await open_circuits(pool))["dhl"] == until  # late failures do not extend it
    await record_success(pool, "dhl")
    assert await open_circuits(pool) == {}
    assert [await fail() for _ in range(2)] == [False, True]
