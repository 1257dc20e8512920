"""FedEx adapter against the FedEx sandbox, served over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from carriers.base import CarrierAuthError, CarrierSettings, CarrierUnavailable, Outcome
from carriers.fedex import FedexAdapter
from carriers.fedex.sandbox import build_app, check_digit, sample_number
from carriers.fedex.sandbox_render import TimeStyle, time_style
from carriers.sandbox_base import CarrierWorld, Kind, Scan, Timeline
from tracker.domain import Status

CLIENT_ID = "test-fedex-client"
CLIENT_SECRET = "test-fedex-secret"
SPEC = Path(__file__).resolve().parents[1].parent / "shared/specs/carriers/fedex-track.json"
START = datetime(2025, 3, 3, 14, 0, tzinfo=UTC)
TRACK = "/track/v1/trackingnumbers"
TOKEN = "/oauth/token"

# Every scan kind once, with the status and FedEx code the adapter must read back.
EVERY_KIND: list[tuple[Kind, Status | None, str, str, str]] = [
    (Kind.LABEL, Status.LABEL_PURCHASED, "OC", "", ""),
    (Kind.PICKUP, Status.CARRIER_PICKED_UP, "PU", "Memphis", "US"),
    (Kind.TRANSIT, Status.IN_TRANSIT, "AR", "Memphis", "US"),
    (Kind.INFO, None, "RR", "Memphis", "US"),
    (Kind.CUSTOMS, Status.IN_TRANSIT, "CP", "Koeln", "DE"),
    (Kind.DELAY, Status.DELAYED, "DY", "Koeln", "DE"),
    (Kind.EXCEPTION, Status.FAILURE, "SE", "Koeln", "DE"),
    (Kind.OUT_FOR_DELIVERY, Status.OUT_FOR_DELIVERY, "OD", "Tokyo", "JP"),
    (Kind.ATTEMPT, Status.ATTEMPTED_DELIVERY, "DE", "Tokyo", "JP"),
    (Kind.PICKUP_POINT, Status.READY_FOR_PICKUP, "HL", "Tokyo", "JP"),
    (Kind.DELIVERED, Status.DELIVERED, "DL", "Tokyo", "JP"),
    (Kind.RETURNED, Status.FAILURE, "RS", "Springfield", "US"),
]
MESSAGES = {Kind.DELAY: "Weather", Kind.EXCEPTION: "Address incomplete", Kind.ATTEMPT: "Refused"}


def every_kind_timeline(number: str, start: datetime = START) -> Timeline:
    scans = [
        Scan(kind=kind, after_hours=3.5 * i, city=city, country=country, postal_code="38118",
             message=MESSAGES.get(kind, ""))
        for i, (kind, _, _, city, country) in enumerate(EVERY_KIND)
    ]  # fmt: skip
    return Timeline(tracking_number=number, start=start, scans=scans, eta_hours=30)


def simple_timeline(number: str, start: datetime = START) -> Timeline:
    kinds = [Kind.LABEL, Kind.PICKUP, Kind.TRANSIT, Kind.OUT_FOR_DELIVERY, Kind.DELIVERED]
    scans = [Scan(kind=k, after_hours=1 + 6 * i, city="Chicago", country="US")
             for i, k in enumerate(kinds)]  # fmt: skip
    return Timeline(tracking_number=number, start=start, scans=scans, eta_hours=28)


def number_with_style(style: TimeStyle) -> str:
    return next(n for n in map(sample_number, range(100)) if time_style(n) is style)


@dataclass
class Sandbox:
    world: CarrierWorld
    url: str
    session: aiohttp.ClientSession

    def adapter(self, **overrides: Any) -> FedexAdapter:
        options: dict[str, Any] = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                   "base_url": self.url, "requests_per_second": 200.0,
                                   "timeout_seconds": 10.0, "max_attempts": 3}  # fmt: skip
        options.update(overrides)
        return FedexAdapter(CarrierSettings(**options), self.session)

    def tracks(self) -> list[tuple[tuple[str, ...], int]]:
        return [(r.numbers, r.status) for r in self.world.requests if r.path == TRACK]

    def paths(self) -> list[tuple[str, int]]:
        return [(r.path, r.status) for r in self.world.requests]


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    world = CarrierWorld()
    app = build_app(world, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    runner = web.AppRunner(app, handler_cancellation=True)
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
    assert [e.carrier_code for e in result.events] == [code for _, _, code, *_ in EVERY_KIND]
    assert [e.happened_at for e in result.events] == [timeline.at(s) for s in timeline.scans]
    assert [e.city for e in result.events] == [c.upper() or None for *_, c, _ in EVERY_KIND]
    assert result.events[1].province == "TN"
    assert result.events[6].message == (
        "Shipment exception - Package damaged - unable to deliver. Address incomplete"
    )
    assert result.events[8].extra["exceptionCode"] == "08"
    assert result.estimated_delivery_at is None  # delivered: FedEx drops the estimate
    assert result.raw_status == "RS/Return to shipper"
    assert result.extra["service"] == "FEDEX_GROUND"
    sources = {e.city: e.time_source for e in result.events}
    if style is TimeStyle.LOCAL:
        assert sources == {None: "offset", "MEMPHIS": "local:America/Chicago",
                           "KOELN": "local:Europe/Berlin", "TOKYO": "local:Asia/Tokyo",
                           "SPRINGFIELD": "offset"}  # fmt: skip
    else:
        assert set(sources.values()) == {"offset"}


async def test_scans_and_the_estimate_appear_as_the_sandbox_clock_moves(sandbox: Sandbox) -> None:
    number = sample_number(1)
    start = sandbox.world.clock.now().replace(microsecond=0)
    timeline = simple_timeline(number, start)
    sandbox.world.register([timeline])
    adapter = sandbox.adapter()

    first = await adapter.track([number])
    assert first[number].outcome is Outcome.NOT_FOUND  # no scan yet: FedEx does not know it

    sandbox.world.clock.advance(timedelta(hours=8))
    moving = (await adapter.track([number]))[number]
    assert [e.status for e in moving.events] == [Status.LABEL_PURCHASED, Status.CARRIER_PICKED_UP]
    assert moving.estimated_delivery_at == timeline.eta()
    assert moving.raw_status == "PU/Picked up"

    sandbox.world.clock.advance(timedelta(hours=24))
    done = (await adapter.track([number]))[number]
    assert [e.carrier_code for e in done.events] == ["OC", "PU", "AR", "OD", "DL"]
    assert done.estimated_delivery_at is None


async def test_timelines_can_be_registered_over_http(sandbox: Sandbox) -> None:
    number = sample_number(2)
    payload = simple_timeline(number).model_dump(mode="json")
    async with sandbox.session.post(f"{sandbox.url}/_sandbox/timelines", json=payload) as resp:
        assert resp.status == 200
    spaced = f"{number[:4]} {number[4:8]} {number[8:]}"
    results = await sandbox.adapter().track([spaced, number])
    assert list(results) == [spaced, number]
    assert results[spaced].tracking_number == spaced
    assert results[spaced].events == results[number].events
    assert results[spaced].events[-1].status is Status.DELIVERED
    assert sandbox.tracks() == [((number,), 200)]  # one number, asked once


# --- OAuth ----------------------------------------------------------------------------------


async def test_token_is_reused_then_replaced_with_one_retry_when_expired(
    sandbox: Sandbox,
) -> None:
    number = sample_number(3)
    sandbox.world.register([simple_timeline(number)])
    adapter = sandbox.adapter()
    for _ in range(2):
        assert (await adapter.track([number]))[number].outcome is Outcome.FOUND
    assert sandbox.paths() == [(TOKEN, 200), (TRACK, 200), (TRACK, 200)]

    async with sandbox.session.post(f"{sandbox.url}/_sandbox/tokens/expire") as resp:
        assert (await resp.json()) == {"expired": True}
    assert (await adapter.track([number]))[number].outcome is Outcome.FOUND
    assert sandbox.paths()[3:] == [(TRACK, 401), (TOKEN, 200), (TRACK, 200)]


async def test_wrong_credentials_raise_auth_error(sandbox: Sandbox) -> None:
    with pytest.raises(CarrierAuthError, match="HTTP 401"):
        await sandbox.adapter(client_secret="wrong").track([sample_number(5)])
    assert sandbox.paths() == [(TOKEN, 401)]


@pytest.mark.parametrize("missing", ["client_id", "client_secret"])
async def test_missing_credentials_and_blank_numbers_never_reach_fedex(
    sandbox: Sandbox, missing: str
) -> None:
    with pytest.raises(CarrierAuthError, match=r"carriers\.fedex\.client_id"):
        await sandbox.adapter(**{missing: None}).track([sample_number(5)])
    assert (await sandbox.adapter().track(["  "]))["  "].outcome is Outcome.INVALID
    assert sandbox.world.requests == []  # neither asked FedEx


# --- batches and what FedEx says about single numbers -----------------------------------------


async def test_numbers_go_thirty_per_request(sandbox: Sandbox) -> None:
    numbers = [sample_number(100 + i) for i in range(2 * FedexAdapter.max_batch + 1)]
    sandbox.world.register([simple_timeline(n) for n in numbers[::2]])

    results = await sandbox.adapter().track(numbers)

    assert list(results) == numbers
    assert [r.outcome for r in results.values()] == [
        Outcome.FOUND if i % 2 == 0 else Outcome.NOT_FOUND for i in range(len(numbers))
    ]
    tracks = sandbox.tracks()
    assert sorted(len(asked) for asked, _ in tracks) == [1, 30, 30]
    assert sorted(n for asked, _ in tracks for n in asked) == sorted(numbers)


async def test_unknown_numbers_are_not_found_and_the_others_still_succeed(
    sandbox: Sandbox,
) -> None:
    known = sample_number(6)
    sandbox.world.register([simple_timeline(known)])
    numbers = [known, sample_number(7), "SBNOTFOUND42"]

    results = await sandbox.adapter().track(numbers)

    assert [r.outcome for r in results.values()] == [Outcome.FOUND] + [Outcome.NOT_FOUND] * 2
    assert results["SBNOTFOUND42"].message == (
        "Tracking number cannot be found. Please correct the tracking number and try again."
    )
    assert sandbox.tracks() == [(tuple(numbers), 200)]


async def test_malformed_answer_is_an_error_for_that_number_only(sandbox: Sandbox) -> None:
    good = [sample_number(8), sample_number(9)]
    sandbox.world.register([simple_timeline(n) for n in good])

    results = await sandbox.adapter().track(["SBBADJSON1", *good])

    assert results["SBBADJSON1"].outcome is Outcome.ERROR
    assert "HTTP 200 with no JSON" in results["SBBADJSON1"].message
    assert [results[n].outcome for n in good] == [Outcome.FOUND, Outcome.FOUND]
    first, *singles = sandbox.tracks()
    assert first == (("SBBADJSON1", *good), 200)  # together: unreadable, so asked one by one
    assert sorted(singles) == sorted(((n,), 200) for n in ["SBBADJSON1", *good])


# --- when FedEx cannot be asked ---------------------------------------------------------------


async def test_429_is_retried_after_retry_after(sandbox: Sandbox) -> None:
    sandbox.world.rate_limit_per_second = 1
    numbers = [sample_number(200 + i) for i in range(FedexAdapter.max_batch + 1)]
    sandbox.world.register([simple_timeline(n) for n in numbers])

    results = await sandbox.adapter().track(numbers)

    assert {r.outcome for r in results.values()} == {Outcome.FOUND}
    assert sorted(status for _, status in sandbox.tracks()) == [200, 200, 429]


@pytest.mark.parametrize(("fault", "status", "retry_after"), [("SB429X", 429, 1.0),
                                                              ("SB500A", 500, None)])  # fmt: skip
async def test_rate_limit_and_server_errors_are_unavailable_after_max_attempts(
    sandbox: Sandbox, fault: str, status: int, retry_after: float | None
) -> None:
    with pytest.raises(CarrierUnavailable, match=f"HTTP {status}") as raised:
        await sandbox.adapter(max_attempts=2).track([fault, sample_number(10)])
    assert raised.value.retry_after == retry_after
    assert sandbox.tracks() == [((fault, sample_number(10)), status)] * 2


async def test_slow_answer_past_the_timeout_is_unavailable(sandbox: Sandbox) -> None:
    sandbox.world.slow_seconds = 5.0
    with pytest.raises(CarrierUnavailable, match="timed out"):
        await sandbox.adapter(timeout_seconds=0.2, max_attempts=1).track(["SBSLOW1"])


def test_adapter_identity_and_public_url() -> None:
    adapter = FedexAdapter(CarrierSettings(client_id="i", client_secret="s"), None)  # type: ignore[arg-type]
    assert adapter.public_url("1234 5678 9012") == (
        "https://www.fedex.com/fedextrack/?trknbr=123456789012"
    )
    assert adapter.public_url("a/b") == "https://www.fedex.com/fedextrack/?trknbr=a%2Fb"
    assert (adapter.code, adapter.display_name, adapter.max_batch) == ("fedex", "FedEx", 30)
    assert (adapter.default_requests_per_second, adapter.default_requests_per_day) == (140, 1e5)


def test_sample_numbers_are_distinct_fedex_express_numbers() -> None:
    assert check_digit("12866704372") == 6  # the spec's example number, 128667043726
    numbers = [sample_number(i) for i in range(500)]
    assert len(set(numbers)) == 500
    assert all(len(n) == 12 and n.isdigit() and int(n[-1]) == check_digit(n[:11])
               for n in numbers)  # fmt: skip
    tracking_numbers = pytest.importorskip("tracking_numbers")
    for number in numbers[:50]:
        found = tracking_numbers.get_tracking_number(number)
        assert found is not None, number
        assert found.courier.code == "fedex"
        assert found.validation_errors == []


# --- the sandbox speaks the spec ------------------------------------------------------------


def spec_validator(schema_name: str) -> Any:
    if not SPEC.exists():
        pytest.skip(f"FedEx spec not found at {SPEC}")
    jsonschema = pytest.importorskip("jsonschema")
    spec = json.loads(SPEC.read_text(encoding="utf-8"))
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    return jsonschema.Draft7Validator(schema)


async def post_track(
    sandbox: Sandbox, body: Any, token: str | None, **headers: str
) -> tuple[int, Any]:
    sent = {"Content-Type": "application/json", "X-locale": "en_US", **headers}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, str) else json.dumps(body)
    async with sandbox.session.post(f"{sandbox.url}{TRACK}", data=data, headers=sent) as resp:
        return resp.status, await resp.json(content_type=None)


async def fetch_token(sandbox: Sandbox, **form: str) -> tuple[int, Any]:
    fields = {"grant_type": "client_credentials", "client_id": CLIENT_ID, **form}
    fields.setdefault("client_secret", CLIENT_SECRET)
    async with sandbox.session.post(f"{sandbox.url}{TOKEN}", data=fields) as resp:
        return resp.status, await resp.json()


def track_body(*numbers: str) -> dict[str, Any]:
    items = [{"trackingNumberInfo": {"trackingNumber": n}} for n in numbers]
    return {"includeDetailedScans": True, "trackingInfo": items}


@pytest.mark.parametrize("style", list(TimeStyle))
async def test_track_answers_match_the_spec(sandbox: Sandbox, style: TimeStyle) -> None:
    validator = spec_validator("TrkcResponseVO_TrackingNumber")
    number = number_with_style(style)
    sandbox.world.register([every_kind_timeline(number, sandbox.world.clock.now())])
    sandbox.world.clock.advance(timedelta(hours=29))  # part way: the estimate is still shown
    status, token = await fetch_token(sandbox)
    assert (status, token["token_type"], token["expires_in"]) == (200, "bearer", 3599)
    body = track_body(number, "SBNOTFOUND1")
    assert list(spec_validator("Full_Schema_Tracking_Numbers").iter_errors(body)) == []
    echo = {"x-customer-transaction-id": "order-17"}

    status, answer = await post_track(sandbox, body, token["access_token"], **echo)

    assert status == 200
    assert list(validator.iter_errors(answer)) == []
    assert answer["customerTransactionId"] == "order-17"
    found, missing = answer["output"]["completeTrackResults"]
    parcel = found["trackResults"][0]
    assert [e["eventType"] for e in parcel["scanEvents"]] == ["DE", "OD", "SE", "DY", "CP", "RR",
                                                              "AR", "PU", "OC"]  # fmt: skip
    assert parcel["latestStatusDetail"]["code"] == "DE"
    assert parcel["estimatedDeliveryTimeWindow"]["type"] == "ESTIMATED_DELIVERY"
    assert missing["trackResults"][0]["error"]["code"] == "TRACKING.TRACKINGNUMBER.NOTFOUND"


async def test_error_answers_match_the_spec(sandbox: Sandbox) -> None:
    access = (await fetch_token(sandbox))[1]["access_token"]
    cases: list[tuple[Any, str | None, dict[str, str], int, str]] = [
        (track_body("1"), None, {}, 401, "NOT.AUTHORIZED.ERROR"),
        (track_body("1"), "sbx_forged", {}, 401, "NOT.AUTHORIZED.ERROR"),
        ("{not json", access, {}, 400, "INVALID.INPUT.EXCEPTION"),
        ({"trackingInfo": []}, access, {}, 400, "INVALID.INPUT.EXCEPTION"),
        (track_body(), access, {}, 400, "TRACKING.TRACKINGNUMBER.EMPTY"),
        (track_body("  "), access, {}, 400, "TRACKING.TRACKINGNUMBER.EMPTY"),
        (track_body(*"1" * 31), access, {}, 400, "INVALID.INPUT.EXCEPTION"),
        (track_body("1"), access, {"X-locale": "x"}, 400, "INVALID.INPUT.EXCEPTION"),
        (track_body("SB429A"), access, {}, 429, "TOO.MANY.REQUESTS.ERROR"),
    ]
    for body, token, headers, status, code in cases:
        answered, answer = await post_track(sandbox, body, token, **headers)
        assert (answered, [e["code"] for e in answer["errors"]]) == (status, [code])
        schema = "ErrorResponseVO401" if status == 401 else "ErrorResponseVO"
        assert list(spec_validator(schema).iter_errors(answer)) == []


async def test_token_endpoint_refuses_bad_requests_in_fedex_shape(sandbox: Sandbox) -> None:
    for form, status, code in [({"client_secret": "wrong"}, 401, "NOT.AUTHORIZED.ERROR"),
                               ({"grant_type": "password"}, 400, "BAD.REQUEST.ERROR"),
                               ({"client_id": ""}, 400, "BAD.REQUEST.ERROR")]:  # fmt: skip
        answered, answer = await fetch_token(sandbox, **form)
        assert (answered, [e["code"] for e in answer["errors"]]) == (status, [code])
    assert sandbox.paths() == [(TOKEN, 401), (TOKEN, 400), (TOKEN, 400)]
