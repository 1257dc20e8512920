"""carriers.concurrent: how one ``track`` call asks about many numbers, and fails as one.

No server here: the "requests" are coroutines that wait on events or raise, so each test pins
one promise of the module (and of every adapter built on it) without timing anything.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from carriers.base import (
    CarrierAuthError,
    CarrierError,
    CarrierResponseError,
    CarrierUnavailable,
    Outcome,
    TrackResult,
)
from carriers.concurrent import gather_all, most_telling, read_isolated, track_each

WAIT = 10  # seconds: only a bound for a test that would otherwise hang when the promise breaks


async def test_each_distinct_number_is_asked_once_and_keyed_as_given() -> None:
    asked: list[str] = []

    async def track_one(number: str) -> TrackResult:
        asked.append(number)
        return TrackResult.not_found(number, f"asked {number!r}")

    results = await track_each(["B7", "A1", "B7", " A1"], track_one)

    assert asked == ["B7", "A1", " A1"]
    assert list(results) == ["B7", "A1", " A1"]
    assert all(result.tracking_number == number for number, result in results.items())


async def test_no_numbers_ask_nothing() -> None:
    async def track_one(number: str) -> TrackResult:
        raise AssertionError(f"asked {number}")

    assert await track_each([], track_one) == {}


async def test_every_number_is_in_flight_at_once_in_the_order_given() -> None:
    numbers = [f"N{i}" for i in range(12)]
    started: list[str] = []
    everyone_started = asyncio.Event()

    async def track_one(number: str) -> TrackResult:
        started.append(number)
        if len(started) == len(numbers):
            everyone_started.set()
        await everyone_started.wait()  # a bound below 12 would never get here
        return TrackResult.not_found(number)

    async with asyncio.timeout(WAIT):
        results = await track_each(numbers, track_one)
    assert started == numbers
    assert list(results) == numbers


async def test_results_come_in_the_order_given_whatever_order_they_finish_in() -> None:
    gates = [asyncio.Event() for _ in range(4)]

    async def call(index: int) -> int:
        await gates[index].wait()
        if index > 0:
            gates[index - 1].set()  # the last one finishes first, the first one last
        return index * 10

    gates[-1].set()
    async with asyncio.timeout(WAIT):
        assert await gather_all(call(i) for i in range(4)) == [0, 10, 20, 30]


async def _fail_together(*errors: BaseException) -> BaseException:
    """What ``track_each`` raises when each number's request fails with one of ``errors``.

    Every request raises on its first step, so all of them fail before any can be cancelled,
    and the task group records the failures in this order.
    """
    by_number = {f"N{i}": error for i, error in enumerate(errors)}

    async def track_one(number: str) -> TrackResult:
        raise by_number[number]

    with pytest.raises((CarrierError, KeyError, ValueError)) as caught:
        await track_each(list(by_number), track_one)
    return caught.value


async def test_rejected_credentials_win_over_an_earlier_unavailability() -> None:
    auth = CarrierAuthError("key refused")
    raised = await _fail_together(CarrierUnavailable("HTTP 503"), auth)
    assert raised is auth
    assert raised.__cause__ is None
    assert raised.__suppress_context__


async def test_unavailability_wins_over_an_unreadable_answer() -> None:
    down = CarrierUnavailable("timed out", retry_after=30)
    assert await _fail_together(CarrierResponseError("not JSON"), down) is down


async def test_a_carrier_error_wins_over_a_bug() -> None:
    unreadable = CarrierResponseError("not JSON")
    assert await _fail_together(KeyError("bug"), unreadable) is unreadable


async def test_among_equals_the_first_failure_wins() -> None:
    first, second = CarrierUnavailable("first"), CarrierUnavailable("second")
    assert await _fail_together(first, second) is first
    bug, other_bug = ValueError("bug"), KeyError("other bug")
    assert await _fail_together(bug, other_bug) is bug


def test_nested_groups_are_searched_depth_first() -> None:
    deep_auth = CarrierAuthError("deep")
    failures = ExceptionGroup(
        "call",
        [
            CarrierUnavailable("outer"),
            ExceptionGroup("batch", [ValueError("bug"), ExceptionGroup("single", [deep_auth])]),
            CarrierAuthError("later"),
        ],
    )
    assert most_telling(failures) is deep_auth


async def test_one_failure_cancels_the_other_requests_before_the_call_fails() -> None:
    waiting_started = asyncio.Event()
    log: list[str] = []

    async def track_one(number: str) -> TrackResult:
        if number == "SLOW":
            waiting_started.set()
            try:
                await asyncio.Event().wait()  # an answer that never comes
            except asyncio.CancelledError:
                log.append("SLOW cancelled")
                raise
        await waiting_started.wait()
        raise CarrierUnavailable("HTTP 502")

    async with asyncio.timeout(WAIT):
        with pytest.raises(CarrierUnavailable):
            await track_each(["SLOW", "DOWN"], track_one)
        log.append("call failed")
    assert log == ["SLOW cancelled", "call failed"]


async def test_cancelling_the_caller_cancels_every_request() -> None:
    started: list[str] = []
    cancelled: list[str] = []
    all_started = asyncio.Event()

    async def track_one(number: str) -> TrackResult:
        started.append(number)
        if len(started) == 3:
            all_started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(number)
            raise
        raise AssertionError("unreachable")

    async with asyncio.timeout(WAIT):
        call = asyncio.create_task(track_each(["A", "B", "C"], track_one))
        await all_started.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    assert sorted(cancelled) == ["A", "B", "C"]


def test_a_parser_bug_is_an_error_for_that_number_only(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("carriers.acme")

    def read() -> TrackResult:
        raise KeyError("shipments")

    with caplog.at_level(logging.ERROR, logger="carriers.acme"):
        result = read_isolated("ACME 1", read, carrier="Acme", asked="ACME1", logger=logger)

    assert result == TrackResult.error(
        "ACME 1", "could not read Acme's answer (see the daemon log)"
    )
    assert result.outcome is Outcome.ERROR
    [record] = [r for r in caplog.records if r.name == "carriers.acme"]
    assert record.getMessage() == "could not read Acme's answer for ACME1"
    assert record.exc_info is not None
    assert record.exc_info[0] is KeyError


def test_a_carrier_error_while_reading_fails_the_call() -> None:
    def read() -> TrackResult:
        raise CarrierAuthError("HTTP 403")

    with pytest.raises(CarrierError, match="HTTP 403"):
        read_isolated("N1", read, carrier="Acme", asked="N1")


def test_a_readable_answer_is_returned_as_read() -> None:
    found = TrackResult("N1", Outcome.FOUND, message="in transit")
    assert read_isolated("N1", lambda: found, carrier="Acme", asked="N1") is found
