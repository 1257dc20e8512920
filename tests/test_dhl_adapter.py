"""DHL adapter against the DHL sandbox, served over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from carriers.base import CarrierAuthError, CarrierSettings, CarrierUnavailable, Outcome
from carriers.dhl import DhlAdapter
from carriers.dhl.sandbox import TimeStyle, build_app, time_style
from carriers.sandbox_base import CarrierWorld, Kind, Scan, Timeline
from tracker.domain import Status

API_KEY = "sandbox-dhl-key"
SPEC = (
    Path(__file__).resolve().parents[1].parent
    / "shared" / "specs" / "carriers" / "dhl-shipment-tracking-unified.yaml"
)  # fmt: skip
START = datetime(2025, 6, 2, 6, 0, tzinfo=UTC)

# Every scan kind once, in a plausible order, with the status the parser must read back.
EVERY_KIND: list[tuple[Kind, Status | None, str, str]] = [
    (Kind.LABEL, Status.LABEL_PURCHASED, "", ""),
    (Kind.PICKUP, Status.CARRIER_PICKED_UP, "Bonn", "DE"),
    (Kind.TRANSIT, Status.IN_TRANSIT, "Köln", "DE"),
    (Kind.INFO, None, "Köln", "DE"),
    (Kind.CUSTOMS, Status.IN_TRANSIT, "Memphis", "US"),
    (Kind.DELAY, Status.DELAYED, "Amsterdam", "NL"),
    (Kind.EXCEPTION, Status.FAILURE, "Amsterdam", "NL"),
    (Kind.OUT_FOR_DELIVERY, Status.OUT_FOR_DELIVERY, "Tokyo", "JP"),
    (Kind.ATTEMPT, Status.ATTEMPTED_DELIVERY, "Tokyo", "JP"),
    (Kind.PICKUP_POINT, Status.READY_FOR_PICKUP, "Tokyo", "JP"),
    (Kind.DELIVERED, Status.DELIVERED, "Tokyo", "JP"),
    (Kind.RETURNED, Status.FAILURE, "Bonn", "DE"),
]


def every_kind_timeline(number: str, start: datetime = START) -> Timeline:
    scans = [
        Scan(kind=kind, after_hours=3.5 * i, city=city, country=country, postal_code="1000",
             message="scripted" if kind is Kind.DELAY else "")
        for i, (kind, _, city, country) in enumerate(EVERY_KIND)
    ]  # fmt: skip
    return Timeline(tracking_number=number, start=start, scans=scans, eta_hours=30)


def simple_timeline(number: str, start: datetime = START) -> Timeline:
    kinds = [Kind.LABEL, Kind.PICKUP, Kind.TRANSIT, Kind.OUT_FOR_DELIVERY, Kind.DELIVERED]
    scans = [Scan(kind=k, after_hours=1 + 6 * i, city="Leipzig", country="DE")
             for i, k in enumerate(kinds)]  # fmt: skip
    return Timeline(tracking_number=number, start=start, scans=scans, eta_hours=28)


def number_with_style(style: TimeStyle) -> str:
    return next(n for n in (f"JJD{i:010d}" for i in range(100)) if time_style(n) is style)


@dataclass
class Sandbox:
    world: CarrierWorld
    url: str
    session: aiohttp.ClientSession

    def adapter(self, **overrides: Any) -> DhlAdapter:
        options: dict[str, Any] = {"api_key": API_KEY, "base_url": self.url,
                                   "requests_per_second": 200.0, "timeout_seconds": 10.0,
                                   "max_attempts": 3}  # fmt: skip
        options.update(overrides)
        return DhlAdapter(CarrierSettings(**options), self.session)

    def statuses_of(self, number: str) -> list[int]:
        return [r.status for r in self.world.requests if r.numbers == (number,)]


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
    number = number_with_style(style)
    timeline = every_kind_timeline(number)
    sandbox.world.register([timeline])

    result = (await sandbox.adapter().track([number]))[number]

    assert result.outcome is Outcome.FOUND
    assert [e.status for e in result.events] == [status for _, status, *_ in EVERY_KIND]
    assert [e.happened_at for e in result.events] == [timeline.at(s) for s in timeline.scans]
    assert [e.city for e in result.events] == [city or None for *_, city, _ in EVERY_KIND]
    assert result.events[5].message.endswith(" - scripted")
    assert result.estimated_delivery_at is None  # delivered: DHL drops the ETA
    assert result.raw_status == "failure/The shipment has been returned to the sender"
    sources = {e.country: e.time_source for e in result.events if e.country}
    if style is TimeStyle.LOCAL:
        assert sources == {"DE": "local:Europe/Berlin", "US": "utc",
                           "NL": "local:Europe/Amsterdam", "JP": "local:Asia/Tokyo"}  # fmt: skip
    else:
        assert set(sources.values()) == {style.value}


async def test_scans_appear_as_the_sandbox_clock_moves(sandbox: Sandbox) -> None:
    start = sandbox.world.clock.now().replace(microsecond=0)
    timeline = simple_timeline("JJD7700000001", start)
    sandbox.world.register([timeline])
    adapter = sandbox.adapter()

    first = await adapter.track(["JJD7700000001"])
    assert first["JJD7700000001"].outcome is Outcome.NOT_FOUND  # no scan yet: DHL's 404

    sandbox.world.clock.advance(timedelta(hours=8))
    moving = (await adapter.track(["JJD7700000001"]))["JJD7700000001"]
    assert [e.status for e in moving.events] == [Status.LABEL_PURCHASED, Status.CARRIER_PICKED_UP]
    assert moving.estimated_delivery_at == timeline.eta()

    sandbox.world.clock.advance(timedelta(hours=24))
    done = (await adapter.track(["JJD7700000001"]))["JJD7700000001"]
    assert [e.status for e in done.events] == [
        Status.LABEL_PURCHASED, Status.CARRIER_PICKED_UP, Status.IN_TRANSIT,
        Status.OUT_FOR_DELIVERY, Status.DELIVERED,
    ]  # fmt: skip
    assert done.estimated_delivery_at is None


async def test_timelines_can_be_registered_over_http(sandbox: Sandbox) -> None:
    payload = simple_timeline("jjd7700000002").model_dump(mode="json")
    async with sandbox.session.post(f"{sandbox.url}/_sandbox/timelines", json=payload) as resp:
        assert resp.status == 200
    result = (await sandbox.adapter().track(["JJD 7700 000002"]))["JJD 7700 000002"]
    assert result.outcome is Outcome.FOUND
    assert result.events[-1].status is Status.DELIVERED


# --- what DHL says about single numbers ------------------------------------------------------


async def test_unknown_numbers_are_not_found_and_the_others_still_succeed(
    sandbox: Sandbox,
) -> None:
    sandbox.world.register([simple_timeline("JJD7700000003")])
    numbers = ["JJD7700000003", "NEVERREGISTERED1", "SBNOTFOUND42"]

    results = await sandbox.adapter().track(numbers)

    assert list(results) == numbers
    assert [r.outcome for r in results.values()] == [
        Outcome.FOUND, Outcome.NOT_FOUND, Outcome.NOT_FOUND,
    ]  # fmt: skip
    assert results["SBNOTFOUND42"].message == "No shipment with given tracking number found."
    assert sorted(r.status for r in sandbox.world.requests) == [200, 404, 404]


async def test_malformed_answer_is_an_error_for_that_number_only(sandbox: Sandbox) -> None:
    sandbox.world.register([simple_timeline("JJD7700000004")])

    results = await sandbox.adapter().track(["SBBADJSON1", "JJD7700000004"])

    assert results["SBBADJSON1"].outcome is Outcome.ERROR
    assert "HTTP 200 with no JSON" in results["SBBADJSON1"].message
    assert results["JJD7700000004"].outcome is Outcome.FOUND


async def test_blank_number_is_invalid_without_asking_dhl(sandbox: Sandbox) -> None:
    results = await sandbox.adapter().track(["  "])
    assert results["  "].outcome is Outcome.INVALID
    assert sandbox.world.requests == []


# --- when DHL cannot be asked ---------------------------------------------------------------


async def test_wrong_api_key_raises_auth_error(sandbox: Sandbox) -> None:
    sandbox.world.register([simple_timeline("JJD7700000005")])
    with pytest.raises(CarrierAuthError, match="HTTP 401"):
        await sandbox.adapter(api_key="wrong").track(["JJD7700000005", "JJD7700000006"])
    assert {r.status for r in sandbox.world.requests} == {401}


async def test_missing_api_key_raises_auth_error_without_a_request(sandbox: Sandbox) -> None:
    with pytest.raises(CarrierAuthError, match=r"carriers\.dhl\.api_key"):
        await sandbox.adapter(api_key=None).track(["JJD7700000005"])
    assert sandbox.world.requests == []


async def test_429_is_retried_after_retry_after(sandbox: Sandbox) -> None:
    sandbox.world.rate_limit_per_second = 1
    sandbox.world.register([simple_timeline("JJD7700000007"), simple_timeline("JJD7700000008")])

    results = await sandbox.adapter().track(["JJD7700000007", "JJD7700000008"])

    assert {r.outcome for r in results.values()} == {Outcome.FOUND}
    retried = [n for n in results if sandbox.statuses_of(n) == [429, 200]]
    assert len(retried) == 1
    assert len(sandbox.world.requests) == 3


async def test_rate_limit_fault_gives_up_after_max_attempts(sandbox: Sandbox) -> None:
    with pytest.raises(CarrierUnavailable) as raised:
        await sandbox.adapter(max_attempts=2).track(["SB429X"])
    assert raised.value.retry_after == 1.0
    assert sandbox.statuses_of("SB429X") == [429, 429]


async def test_server_error_is_unavailable_after_max_attempts(sandbox: Sandbox) -> None:
    sandbox.world.register([simple_timeline("JJD7700000009")])
    with pytest.raises(CarrierUnavailable, match="HTTP 500"):
        await sandbox.adapter(max_attempts=2).track(["SB500A", "JJD7700000009"])
    assert sandbox.statuses_of("SB500A") == [500, 500]


async def test_slow_answer_past_the_timeout_is_unavailable(sandbox: Sandbox) -> None:
    sandbox.world.slow_seconds = 5.0
    with pytest.raises(CarrierUnavailable, match="timed out"):
        await sandbox.adapter(timeout_seconds=0.2, max_attempts=1).track(["SBSLOW1"])


async def test_slow_answer_within_the_timeout_is_the_normal_answer(sandbox: Sandbox) -> None:
    sandbox.world.slow_seconds = 0.05
    sandbox.world.register([simple_timeline("SBSLOW2")])
    result = (await sandbox.adapter().track(["SBSLOW2"]))["SBSLOW2"]
    assert result.outcome is Outcome.FOUND
    assert result.events[-1].status is Status.DELIVERED


def test_public_url_points_at_dhls_tracking_page() -> None:
    adapter = DhlAdapter(CarrierSettings(api_key="k"), None)  # type: ignore[arg-type]
    assert adapter.public_url("JJD 01/2") == (
        "https://www.dhl.com/global-en/home/tracking/tracking-parcel.html"
        "?submit=1&tracking-id=JJD+01%2F2"
    )
    assert (adapter.code, adapter.display_name, adapter.max_batch) == ("dhl", "DHL", 1)


# --- the sandbox speaks the spec ------------------------------------------------------------


def spec_validator(schema_name: str) -> Any:
    if not SPEC.exists():
        pytest.skip(f"DHL spec not found at {SPEC}")
    jsonschema = pytest.importorskip("jsonschema")
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8").replace("\t", "  "))
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    return jsonschema.Draft7Validator(schema)


async def get(sandbox: Sandbox, key: str | None, **query: str) -> tuple[int, str, Any]:
    headers = {"DHL-API-Key": key} if key is not None else {}
    url = f"{sandbox.url}/track/shipments"
    async with sandbox.session.get(url, params=query, headers=headers) as resp:
        return resp.status, resp.content_type, await resp.json(content_type=None)


@pytest.mark.parametrize("style", list(TimeStyle))
async def test_shipment_answers_match_the_spec(sandbox: Sandbox, style: TimeStyle) -> None:
    validator = spec_validator("supermodelIoLogisticsTrackingShipments")
    number = number_with_style(style)
    sandbox.world.register([every_kind_timeline(number, sandbox.world.clock.now())])
    sandbox.world.clock.advance(timedelta(hours=10))  # part way: ETA still shown

    status, content_type, body = await get(sandbox, API_KEY, trackingNumber=number)

    assert (status, content_type) == (200, "application/json")
    assert list(validator.iter_errors(body)) == []
    shipment = body["shipments"][0]
    assert shipment["status"] == shipment["events"][0]
    assert "estimatedTimeOfDelivery" in shipment
    assert len(shipment["events"]) == 3


async def test_problem_answers_match_the_spec(sandbox: Sandbox) -> None:
    validator = spec_validator("supermodelIoLogisticsApiProblemDetail")
    answers = [
        await get(sandbox, None, trackingNumber="JJD1"),
        await get(sandbox, "wrong", trackingNumber="JJD1"),
        await get(sandbox, API_KEY),
        await get(sandbox, API_KEY, trackingNumber="UNKNOWN1"),
        await get(sandbox, API_KEY, trackingNumber="SB429A"),
    ]
    assert [(status, content_type) for status, content_type, _ in answers] == [
        (401, "application/problem+json"), (401, "application/problem+json"),
        (400, "application/problem+json"), (404, "application/problem+json"),
        (429, "application/problem+json"),
    ]  # fmt: skip
    for status, _, body in answers:
        assert list(validator.iter_errors(body)) == []
        assert body["status"] == status
    assert answers[3][2] == {"title": "No result found", "status": 404,
                             "detail": "No shipment with given tracking number found."}  # fmt: skip
    assert [r.status for r in sandbox.world.requests] == [401, 401, 400, 404, 429]
