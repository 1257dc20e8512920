"""PostNord adapter against the PostNord sandbox, served over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from carriers.base import CarrierAuthError, CarrierSettings, CarrierUnavailable, Outcome
from carriers.postnord import DEFAULT_BASE_URL, TEST_BASE_URL, PostnordAdapter
from carriers.postnord.sandbox import (
    SANDBOX_SETTINGS,
    TimeStyle,
    build_app,
    sample_number,
    sandbox_app,
    time_style,
)
from carriers.postnord.sandbox_render import s10_check_digit
from carriers.sandbox_base import EXPECTED_STATUS, CarrierWorld, Kind, Scan, Timeline
from tracker.domain import Status

API_KEY = "sandbox-postnord-key-0123456789ab"
SPEC = (
    Path(__file__).resolve().parents[1].parent
    / "shared" / "specs" / "carriers" / "postnord-trackandtrace-v7.json"
)  # fmt: skip
START = datetime(2025, 6, 2, 6, 0, tzinfo=UTC)
API = "/rest/shipment/v7/trackandtrace/id/{}/public"

# Every scan kind once, in a plausible order, with the status the parser must read back.
EVERY_KIND: list[tuple[Kind, Status | None, str, str]] = [
    (Kind.LABEL, Status.LABEL_PURCHASED, "", ""),
    (Kind.PICKUP, Status.CARRIER_PICKED_UP, "Shenzhen", "CN"),
    (Kind.TRANSIT, Status.IN_TRANSIT, "Chicago", "US"),
    (Kind.INFO, None, "Chicago", "US"),
    (Kind.CUSTOMS, Status.IN_TRANSIT, "Malmö", "SE"),
    (Kind.DELAY, Status.DELAYED, "Hallsberg", "SE"),
    (Kind.EXCEPTION, Status.FAILURE, "Hallsberg", "SE"),
    (Kind.OUT_FOR_DELIVERY, Status.OUT_FOR_DELIVERY, "Helsinki", "FI"),
    (Kind.ATTEMPT, Status.ATTEMPTED_DELIVERY, "Helsinki", "FI"),
    (Kind.PICKUP_POINT, Status.READY_FOR_PICKUP, "Helsinki", "FI"),
    (Kind.DELIVERED, Status.DELIVERED, "Helsinki", "FI"),
    (Kind.RETURNED, Status.FAILURE, "Oslo", "NO"),
]


def every_kind_timeline(number: str, start: datetime = START) -> Timeline:
    scans = [
        Scan(kind=kind, after_hours=3.5 * i, city=city, country=country, postal_code="00100",
             message="scripted" if kind is Kind.DELAY else "")
        for i, (kind, _, city, country) in enumerate(EVERY_KIND)
    ]  # fmt: skip
    return Timeline(tracking_number=number, start=start, scans=scans, eta_hours=40)


def simple_timeline(number: str, start: datetime = START) -> Timeline:
    kinds = [Kind.LABEL, Kind.PICKUP, Kind.TRANSIT, Kind.OUT_FOR_DELIVERY, Kind.DELIVERED]
    scans = [Scan(kind=k, after_hours=1 + 6 * i, city="Uppsala", country="SE")
             for i, k in enumerate(kinds)]  # fmt: skip
    return Timeline(tracking_number=number, start=start, scans=scans, eta_hours=28)


def number_with_style(style: TimeStyle) -> str:
    return next(n for n in map(sample_number, range(100)) if time_style(n) is style)


@dataclass
class Sandbox:
    world: CarrierWorld
    url: str
    session: aiohttp.ClientSession

    def adapter(self, **overrides: Any) -> PostnordAdapter:
        options: dict[str, Any] = {"api_key": API_KEY, "base_url": self.url,
                                   "requests_per_second": 200.0, "timeout_seconds": 10.0,
                                   "max_attempts": 3}  # fmt: skip
        options.update(overrides)
        return PostnordAdapter(CarrierSettings(**options), self.session)

    def statuses_of(self, number: str) -> list[int]:
        return [r.status for r in self.world.requests if r.numbers == (number,)]

    async def get(self, identifier: str, **query: str) -> tuple[int, str, Any, str]:
        url = self.url + API.format(identifier)
        async with self.session.get(url, params=query) as resp:
            text = await resp.text()
            body = json.loads(text) if resp.content_type == "application/json" else None
            return resp.status, resp.content_type, body, text


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    world = CarrierWorld()
    runner = web.AppRunner(build_app(world, api_key=API_KEY), handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    async with aiohttp.ClientSession() as session:
        yield Sandbox(world, f"http://{host}:{port}", session)
    await runner.cleanup()


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("style", list(TimeStyle))
async def test_every_kind_round_trips_to_its_status_and_time(
    sandbox: Sandbox, style: TimeStyle
) -> None:
    assert {kind for kind, *_ in EVERY_KIND} == set(Kind)
    assert all(EXPECTED_STATUS[kind] is status for kind, status, *_ in EVERY_KIND)
    number = number_with_style(style)
    timeline = every_kind_timeline(number)
    sandbox.world.register([timeline])

    result = (await sandbox.adapter().track([number]))[number]

    assert result.outcome is Outcome.FOUND
    assert [e.status for e in result.events] == [status for _, status, *_ in EVERY_KIND]
    assert [e.happened_at for e in result.events] == [timeline.at(s) for s in timeline.scans]
    assert [e.city for e in result.events] == [city or None for *_, city, _ in EVERY_KIND]
    assert [e.country for e in result.events] == [c or None for *_, c in EVERY_KIND]
    assert result.events[5].message.endswith(" - scripted")
    assert result.events[7].carrier_code == "LOADED_FOR_DELIVERY"
    assert result.estimated_delivery_at is None  # delivered: no ETA any more
    assert result.extra["delivered_at"] == timeline.at(timeline.scans[10]).isoformat()
    assert result.raw_status == "RETURNED"
    sources = {e.country: e.time_source for e in result.events if e.country}
    if style is TimeStyle.LOCAL:
        assert sources == {"CN": "local:Asia/Shanghai", "US": "utc",
                           "SE": "local:Europe/Stockholm", "FI": "local:Europe/Helsinki",
                           "NO": "local:Europe/Oslo"}  # fmt: skip
    else:
        assert set(sources.values()) == {style.value}


async def test_scans_appear_as_the_sandbox_clock_moves(sandbox: Sandbox) -> None:
    start = sandbox.world.clock.now().replace(microsecond=0)
    number = sample_number(1)
    timeline = simple_timeline(number, start)
    sandbox.world.register([timeline])
    adapter = sandbox.adapter()

    first = await adapter.track([number])
    assert first[number].outcome is Outcome.NOT_FOUND  # no scan yet: no shipments

    sandbox.world.clock.advance(timedelta(hours=8))
    moving = (await adapter.track([number]))[number]
    assert [e.status for e in moving.events] == [Status.LABEL_PURCHASED, Status.CARRIER_PICKED_UP]
    assert moving.estimated_delivery_at == timeline.eta()
    assert moving.raw_status == "EN_ROUTE"

    sandbox.world.clock.advance(timedelta(hours=24))
    done = (await adapter.track([number]))[number]
    assert [e.status for e in done.events] == [
        Status.LABEL_PURCHASED, Status.CARRIER_PICKED_UP, Status.IN_TRANSIT,
        Status.OUT_FOR_DELIVERY, Status.DELIVERED,
    ]  # fmt: skip
    assert done.estimated_delivery_at is None


async def test_timelines_registered_over_http_are_found_with_spaces_in_the_number(
    sandbox: Sandbox,
) -> None:
    payload = simple_timeline("rr123456785se").model_dump(mode="json")
    async with sandbox.session.post(f"{sandbox.url}/_sandbox/timelines", json=payload) as resp:
        assert resp.status == 200
    result = (await sandbox.adapter().track(["RR 1234 5678 5SE"]))["RR 1234 5678 5SE"]
    assert result.outcome is Outcome.FOUND
    assert result.events[-1].status is Status.DELIVERED
    assert [r.numbers for r in sandbox.world.requests] == [("RR123456785SE",)]


def test_sample_numbers_are_distinct_s10_numbers_with_valid_check_digits() -> None:
    numbers = [sample_number(i) for i in range(2000)]
    assert len(set(numbers)) == len(numbers)
    assert sample_number(0)[:2] == "RR"
    assert all(len(n) == 13 and n[:2].isalpha() and n[11:] in {"SE", "DK"} for n in numbers)
    assert all(int(n[10]) == s10_check_digit(n[2:10]) for n in numbers)
    assert s10_check_digit("12345678") == 5  # RR123456785SE, the textbook example
    assert s10_check_digit("10000014") == 0  # 11 - 1: a remainder of 1 gives 0
    assert s10_check_digit("00000000") == 5  # 11 - 0: a remainder of 0 gives 5


# --- one request per number, inside the rate limit ------------------------------------------


async def test_each_number_is_asked_once_in_its_own_request(sandbox: Sandbox) -> None:
    numbers = [sample_number(i) for i in range(7)]
    sandbox.world.register(simple_timeline(n) for n in numbers)

    results = await sandbox.adapter().track([*numbers, numbers[0]])

    assert list(results) == numbers
    assert {r.outcome for r in results.values()} == {Outcome.FOUND}
    assert sorted(r.numbers for r in sandbox.world.requests) == sorted((n,) for n in numbers)
    assert all(len(r.numbers) <= PostnordAdapter.max_batch for r in sandbox.world.requests)


async def test_429_is_retried_after_retry_after(sandbox: Sandbox) -> None:
    sandbox.world.rate_limit_per_second = 1
    numbers = [sample_number(20), sample_number(21)]
    sandbox.world.register(simple_timeline(n) for n in numbers)

    results = await sandbox.adapter().track(numbers)

    assert {r.outcome for r in results.values()} == {Outcome.FOUND}
    assert sorted(map(sandbox.statuses_of, numbers)) == [[200], [429, 200]]


async def test_rate_limit_fault_gives_up_after_max_attempts(sandbox: Sandbox) -> None:
    with pytest.raises(CarrierUnavailable) as raised:
        await sandbox.adapter(max_attempts=2).track(["SB429X"])
    assert raised.value.retry_after == 1.0
    assert sandbox.statuses_of("SB429X") == [429, 429]


# --- what PostNord says about single numbers ------------------------------------------------


async def test_unknown_numbers_are_not_found_and_the_others_still_succeed(
    sandbox: Sandbox,
) -> None:
    found = sample_number(30)
    sandbox.world.register([simple_timeline(found)])
    numbers = [found, sample_number(31), sample_number(32), "SBNOTFOUND42"]

    results = await sandbox.adapter().track(numbers)

    assert list(results) == numbers
    assert [r.outcome for r in results.values()] == [Outcome.FOUND] + [Outcome.NOT_FOUND] * 3
    assert {r.status for r in sandbox.world.requests} == {200}


async def test_malformed_answer_is_an_error_for_that_number_only(sandbox: Sandbox) -> None:
    good = sample_number(40)
    sandbox.world.register([simple_timeline(good), simple_timeline("SBBADJSON1")])

    results = await sandbox.adapter().track(["SBBADJSON1", good])

    assert results["SBBADJSON1"].outcome is Outcome.ERROR
    assert "HTTP 200 with no JSON" in results["SBBADJSON1"].message
    assert results[good].outcome is Outcome.FOUND


async def test_bad_identifiers_are_invalid(sandbox: Sandbox) -> None:
    numbers = ["  ", "RR12/3456785SE", "ABC123"]
    results = await sandbox.adapter().track(numbers)
    assert [r.outcome for r in results.values()] == [Outcome.INVALID] * 3
    assert results["ABC123"].message == "Invalid identifier"  # PostNord's answer: too short
    assert [r.numbers for r in sandbox.world.requests] == [("ABC123",)]  # the others: not asked


# --- when PostNord cannot be asked ----------------------------------------------------------


async def test_wrong_api_key_raises_auth_error(sandbox: Sandbox) -> None:
    numbers = [sample_number(50), sample_number(51)]
    sandbox.world.register(simple_timeline(n) for n in numbers)
    with pytest.raises(CarrierAuthError, match="HTTP 403"):
        await sandbox.adapter(api_key="wrong").track(numbers)
    assert {r.status for r in sandbox.world.requests} == {403}


@pytest.mark.parametrize("key", [None, ""])
async def test_missing_api_key_raises_auth_error_without_a_request(
    sandbox: Sandbox, key: str | None
) -> None:
    with pytest.raises(CarrierAuthError, match=r"carriers\.postnord\.api_key"):
        await sandbox.adapter(api_key=key).track([sample_number(52)])
    assert sandbox.world.requests == []


async def test_server_error_is_unavailable_after_max_attempts(sandbox: Sandbox) -> None:
    good = sample_number(60)
    sandbox.world.register([simple_timeline(good)])
    with pytest.raises(CarrierUnavailable, match="HTTP 500"):
        await sandbox.adapter(max_attempts=2).track(["SB500A", good])
    assert sandbox.statuses_of("SB500A") == [500, 500]


async def test_slow_answer_past_the_timeout_is_unavailable_and_the_key_is_not_logged(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.world.slow_seconds = 5.0
    with caplog.at_level(logging.DEBUG), pytest.raises(CarrierUnavailable) as raised:
        await sandbox.adapter(timeout_seconds=0.2, max_attempts=2).track(["SBSLOW1"])
    assert "timed out" in str(raised.value)
    assert API_KEY not in str(raised.value)
    assert "carrier request failed" in caplog.text
    assert API_KEY not in caplog.text


async def test_slow_answer_within_the_timeout_is_the_normal_answer(sandbox: Sandbox) -> None:
    sandbox.world.slow_seconds = 0.05
    sandbox.world.register([simple_timeline("SBSLOW2")])
    result = (await sandbox.adapter().track(["SBSLOW2"]))["SBSLOW2"]
    assert result.outcome is Outcome.FOUND
    assert result.events[-1].status is Status.DELIVERED


def test_identity_urls_and_defaults() -> None:
    adapter = PostnordAdapter(CarrierSettings(api_key="k"), None)  # type: ignore[arg-type]
    page = adapter.public_url("RR 123456785 SE")
    assert page == "https://tracking.postnord.com/en/?id=RR123456785SE"
    assert (adapter.code, adapter.display_name, adapter.max_batch) == ("postnord", "PostNord", 1)
    assert (adapter.default_requests_per_second, adapter.default_requests_per_day) == (4.0, None)
    assert DEFAULT_BASE_URL == "https://api2.postnord.com"
    assert TEST_BASE_URL == "https://atapi2.postnord.com"
    unset = PostnordAdapter(CarrierSettings(api_key="k", base_url=""), None)  # type: ignore[arg-type]
    assert unset._base == DEFAULT_BASE_URL
    assert CarrierSettings(**SANDBOX_SETTINGS).api_key is not None
    assert isinstance(sandbox_app(CarrierWorld()), web.Application)


# --- the sandbox speaks the spec ------------------------------------------------------------


def spec_validator(schema_name: str) -> Any:
    if not SPEC.exists():
        pytest.skip(f"PostNord spec not found at {SPEC}")
    jsonschema = pytest.importorskip("jsonschema")
    spec = json.loads(SPEC.read_text(encoding="utf-8"))
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    return jsonschema.Draft7Validator(schema)


@pytest.mark.parametrize("style", list(TimeStyle))
async def test_tracking_answers_match_the_spec(sandbox: Sandbox, style: TimeStyle) -> None:
    validator = spec_validator("ResponseDto")
    number = number_with_style(style)
    sandbox.world.register([every_kind_timeline(number, sandbox.world.clock.now())])
    sandbox.world.clock.advance(timedelta(hours=33))  # in the locker: ETA still shown

    status, content_type, body, _ = await sandbox.get(number, apikey=API_KEY, locale="en")

    assert (status, content_type) == (200, "application/json")
    assert list(validator.iter_errors(body)) == []
    shipment = body["TrackingInformationResponse"]["shipments"][0]
    item = shipment["items"][0]
    assert shipment["status"] == "AVAILABLE_FOR_DELIVERY"  # the shipment enum has no PAR_LOC
    assert item["status"] == "AVAILABLE_FOR_DELIVERY_PAR_LOC"
    assert "estimatedTimeOfArrival" in item
    assert len(item["events"]) == 10


async def test_not_found_and_fault_answers_match_the_spec(sandbox: Sandbox) -> None:
    validator = spec_validator("ResponseDto")
    unknown = [sample_number(i) for i in range(70, 80)]
    answers = [await sandbox.get(n, apikey=API_KEY) for n in unknown]
    answers.append(await sandbox.get("SHORT1", apikey=API_KEY))
    answers.append(await sandbox.get(unknown[0], apikey=API_KEY, locale="de"))

    assert {answer[:2] for answer in answers} == {(200, "application/json")}
    bodies = [body["TrackingInformationResponse"] for _, _, body, _ in answers]
    for body in bodies:
        assert list(validator.iter_errors({"TrackingInformationResponse": body})) == []
        assert body["shipments"] == []
    assert {"compositeFault" in b for b in bodies[:10]} == {True, False}  # "sometimes"
    faults = [b["compositeFault"]["faults"][0]["faultCode"] for b in bodies[10:]]
    assert faults == ["invalidIdentifier", "invalidLocale"]


async def test_error_answers_match_the_spec(sandbox: Sandbox) -> None:
    validator = spec_validator("ErrorResponse")
    number = sample_number(80)
    answers = [
        await sandbox.get(number),
        await sandbox.get(number, apikey="wrong"),
        await sandbox.get(number, apikey=API_KEY, callback="<script>"),
        await sandbox.get("SB429A", apikey=API_KEY),
    ]
    assert [(status, content_type) for status, content_type, *_ in answers] == [
        (401, "application/json"), (403, "application/json"), (400, "application/json"),
        (429, "application/json"),
    ]  # fmt: skip
    for _, _, body, _ in answers:
        assert list(validator.iter_errors(body)) == []
    assert [r.status for r in sandbox.world.requests] == [401, 403, 400, 429]


async def test_json_p_callback_wraps_the_answer(sandbox: Sandbox) -> None:
    number = sample_number(81)
    sandbox.world.register([simple_timeline(number)])
    status, content_type, _, text = await sandbox.get(number, apikey=API_KEY, callback="cb")
    assert (status, content_type) == (200, "application/javascript")
    assert text.startswith('cb({"TrackingInformationResponse"')
    assert text.endswith(");")
