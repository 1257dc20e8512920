"""USPS adapter against the USPS sandbox, served over real HTTP on 127.0.0.1."""

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
from carriers.sandbox_base import EXPECTED_STATUS, CarrierWorld, Kind, Scan, Timeline
from carriers.sandbox_tokens import TOKENS_KEY
from carriers.usps import DEFAULT_BASE_URL, TEST_BASE_URL, UspsAdapter
from carriers.usps.sandbox import ACCOUNT_KEY, build_app, mod10_check_digit, sample_number
from carriers.usps.sandbox_render import TimeStyle, time_style
from tracker.domain import Status

CLIENT_ID, CLIENT_SECRET = "test-usps-client", "test-usps-secret"
TRACKING, TOKEN = "/tracking/v3/tracking/", "/oauth2/v3/token"
SPEC = (
    Path(__file__).resolve().parents[1].parent
    / "shared" / "specs" / "carriers" / "usps-tracking-v3.yaml"
)  # fmt: skip
START = datetime(2025, 6, 2, 6, 0, tzinfo=UTC)

# Every scan kind once: the status the parser must read back, where it happened, and the zone
# its zone-less local time is read in (None: no zone can be known, read as UTC).
EVERY_KIND: list[tuple[Kind, Status | None, str, str, str, str | None]] = [
    (Kind.LABEL, Status.LABEL_PURCHASED, "", "", "", None),
    (Kind.PICKUP, Status.CARRIER_PICKED_UP, "Richmond", "23227", "US", "America/New_York"),
    (Kind.TRANSIT, Status.IN_TRANSIT, "Memphis", "38118", "US", "America/Chicago"),
    (Kind.INFO, None, "Memphis", "38118", "US", "America/Chicago"),
    (Kind.CUSTOMS, Status.IN_TRANSIT, "Frankfurt", "60549", "DE", "Europe/Berlin"),
    (Kind.DELAY, Status.DELAYED, "Toronto", "M5V 2T6", "CA", None),
    (Kind.EXCEPTION, Status.FAILURE, "Phoenix", "85001", "US", "America/Phoenix"),
    (Kind.OUT_FOR_DELIVERY, Status.OUT_FOR_DELIVERY, "Phoenix", "85001", "US", "America/Phoenix"),
    (Kind.ATTEMPT, Status.ATTEMPTED_DELIVERY, "Honolulu", "96813", "US", "Pacific/Honolulu"),
    (Kind.PICKUP_POINT, Status.READY_FOR_PICKUP, "San Juan", "00901", "PR", "America/Puerto_Rico"),
    (Kind.DELIVERED, Status.DELIVERED, "Anchorage", "99501", "US", "America/Anchorage"),
    (Kind.RETURNED, Status.FAILURE, "Richmond", "23227", "US", "America/New_York"),
]


def every_kind_timeline(number: str, start: datetime = START) -> Timeline:
    scans = [
        Scan(kind=kind, after_hours=3.5 * i, city=city, postal_code=zip_code, country=country,
             message="Weather" if kind is Kind.DELAY else "")
        for i, (kind, _, city, zip_code, country, _) in enumerate(EVERY_KIND)
    ]  # fmt: skip
    return Timeline(tracking_number=number, start=start, scans=scans, eta_hours=60)


SIMPLE = [Kind.LABEL, Kind.PICKUP, Kind.TRANSIT, Kind.OUT_FOR_DELIVERY, Kind.DELIVERED]


def simple_timeline(number: str, start: datetime = START) -> Timeline:
    scans = [Scan(kind=k, after_hours=1 + 6 * i, city="Denver", postal_code="80202",
                  country="US") for i, k in enumerate(SIMPLE)]  # fmt: skip
    return Timeline(tracking_number=number, start=start, scans=scans, eta_hours=28)


def number_with_style(style: TimeStyle) -> str:
    return next(n for n in map(sample_number, range(100)) if time_style(n) is style)


@dataclass
class Sandbox:
    world: CarrierWorld
    app: web.Application
    url: str
    session: aiohttp.ClientSession

    def adapter(self, **overrides: Any) -> UspsAdapter:
        options: dict[str, Any] = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                   "base_url": self.url, "requests_per_second": 200.0,
                                   "timeout_seconds": 10.0, "max_attempts": 3}  # fmt: skip
        return UspsAdapter(CarrierSettings(**{**options, **overrides}), self.session)

    def register(self, *numbers: str) -> None:
        self.world.register([simple_timeline(n) for n in numbers])

    def statuses_of(self, number: str) -> list[int]:
        return [r.status for r in self.world.requests if r.numbers == (number,)]

    def token_requests(self) -> list[int]:
        return [r.status for r in self.world.requests if r.path == TOKEN]

    def tracking_requests(self) -> list[tuple[str, ...]]:
        return [r.numbers for r in self.world.requests if r.path.startswith(TRACKING)]


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    world = CarrierWorld()
    app = build_app(world, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    async with aiohttp.ClientSession() as session:
        yield Sandbox(world, app, f"http://{host}:{port}", session)
    await runner.cleanup()


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("style", list(TimeStyle))
async def test_every_kind_round_trips(sandbox: Sandbox, style: TimeStyle) -> None:
    assert {kind for kind, *_ in EVERY_KIND} == set(Kind)
    number = number_with_style(style)
    timeline = every_kind_timeline(number)
    sandbox.world.register([timeline])

    result = (await sandbox.adapter().track([number]))[number]

    assert result.outcome is Outcome.FOUND
    assert [e.status for e in result.events] == [status for _, status, *_ in EVERY_KIND]
    assert [e.happened_at for e in result.events] == [timeline.at(s) for s in timeline.scans]
    assert [e.country for e in result.events] == [c or None for *_, c, _ in EVERY_KIND]
    assert [e.province for e in result.events][:4] == [None, "VA", "TN", "TN"]
    assert result.events[5].message == "In Transit, Arriving Late, Weather"
    assert [e.carrier_code for e in result.events][:5] == ["GX", "03", "10", "DX", "EDB"]
    assert result.estimated_delivery_at is None  # delivered: USPS drops the ETA
    assert result.raw_status == "Alert/Return to Sender"
    expected_sources = {
        TimeStyle.GMT: ["utc"] * len(EVERY_KIND),
        TimeStyle.OFFSET: ["offset"] * len(EVERY_KIND),
    }.get(style, [f"local:{zone or 'assumed-utc'}" for *_, zone in EVERY_KIND])
    assert [e.time_source for e in result.events] == expected_sources


async def test_scans_appear_as_the_sandbox_clock_moves(sandbox: Sandbox) -> None:
    number = sample_number(900)
    timeline = simple_timeline(number, sandbox.world.clock.now().replace(microsecond=0))
    sandbox.world.register([timeline])
    adapter = sandbox.adapter()

    first = (await adapter.track([number]))[number]
    assert first.outcome is Outcome.NOT_FOUND  # a label with no scan yet: USPS's 404

    sandbox.world.clock.advance(timedelta(hours=8))
    moving = (await adapter.track([number]))[number]
    assert [e.status for e in moving.events] == [Status.LABEL_PURCHASED, Status.CARRIER_PICKED_UP]
    assert moving.estimated_delivery_at == timeline.eta()
    assert moving.raw_status == "Accepted/USPS picked up item"

    sandbox.world.clock.advance(timedelta(hours=24))
    done = (await adapter.track([number]))[number]
    assert [e.status for e in done.events] == [EXPECTED_STATUS[k] for k in SIMPLE]
    assert done.estimated_delivery_at is None


# --- through the adapter: auth, batching, limits, failures ------------------------------------


async def test_token_is_reused_then_renewed_with_exactly_one_retry(sandbox: Sandbox) -> None:
    numbers = [sample_number(910), sample_number(911)]
    sandbox.register(*numbers)
    adapter = sandbox.adapter()

    await adapter.track(numbers)
    await adapter.track(numbers)
    assert (sandbox.app[TOKENS_KEY].issued, sandbox.token_requests()) == (1, [200])
    assert len(sandbox.tracking_requests()) == 4

    async with sandbox.session.post(f"{sandbox.url}/_sandbox/tokens/expire") as resp:
        assert (await resp.json()) == {"expired": True}
    result = (await adapter.track(numbers[:1]))[numbers[0]]

    assert result.outcome is Outcome.FOUND
    assert sandbox.statuses_of(numbers[0]) == [200, 200, 401, 200]
    assert (sandbox.app[TOKENS_KEY].issued, sandbox.token_requests()) == (2, [200, 200])


async def test_wrong_credentials_raise_auth_error_before_any_tracking(sandbox: Sandbox) -> None:
    numbers = [sample_number(913), sample_number(914)]
    sandbox.register(*numbers)
    with pytest.raises(CarrierAuthError, match="HTTP 401"):
        await sandbox.adapter(client_secret="wrong").track(numbers)
    assert set(sandbox.token_requests()) == {401}
    assert sandbox.tracking_requests() == []


@pytest.mark.parametrize("missing", ["client_id", "client_secret"])
async def test_missing_credentials_fail_without_a_request(sandbox: Sandbox, missing: str) -> None:
    with pytest.raises(CarrierAuthError, match=r"carriers\.usps\.client_id and client_secret"):
        await sandbox.adapter(**{missing: None}).track([sample_number(915)])
    assert sandbox.world.requests == []


async def test_token_without_the_tracking_scope_is_an_auth_error(sandbox: Sandbox) -> None:
    number = sample_number(916)
    sandbox.register(number)
    adapter = sandbox.adapter()
    await adapter.track([number])
    sandbox.app[ACCOUNT_KEY].untracked_tokens.add(await adapter.tokens.get())

    with pytest.raises(CarrierAuthError, match="HTTP 403"):
        await adapter.track([number])
    assert sandbox.statuses_of(number) == [200, 403]


async def test_one_number_per_request(sandbox: Sandbox) -> None:
    adapter = sandbox.adapter()
    numbers = [sample_number(920 + i) for i in range(2 * adapter.max_batch + 1)]
    sandbox.register(*numbers)

    results = await adapter.track([*numbers, numbers[0]])

    assert list(results) == numbers
    assert sorted(sandbox.tracking_requests()) == sorted((n,) for n in numbers)
    assert max(len(r) for r in sandbox.tracking_requests()) <= adapter.max_batch == 1


async def test_429_is_retried_after_retry_after(sandbox: Sandbox) -> None:
    sandbox.world.rate_limit_per_second = 1
    numbers = [sample_number(930), sample_number(931)]
    sandbox.register(*numbers)

    results = await sandbox.adapter().track(numbers)

    assert {r.outcome for r in results.values()} == {Outcome.FOUND}
    assert sorted(sandbox.statuses_of(n) for n in numbers) == [[200], [429, 200]]


async def test_rate_limit_fault_gives_up_after_max_attempts(sandbox: Sandbox) -> None:
    with pytest.raises(CarrierUnavailable) as raised:
        await sandbox.adapter(max_attempts=2).track(["SB429X"])
    assert raised.value.retry_after == 1.0
    assert sandbox.statuses_of("SB429X") == [429, 429]


async def test_problems_with_one_number_are_data_and_the_others_succeed(sandbox: Sandbox) -> None:
    good, unknown, spaced = sample_number(940), sample_number(941), sample_number(942)
    sandbox.register(good, spaced)
    odd = ["SBNOTFOUND42", "ABC-123", "SBBADJSON1", "  ", f" {spaced[:4]} {spaced[4:]}"]
    numbers = [good, unknown, *odd]

    results = await sandbox.adapter().track(numbers)

    assert list(results) == numbers
    assert [r.outcome for r in results.values()] == [
        Outcome.FOUND, Outcome.NOT_FOUND, Outcome.NOT_FOUND, Outcome.INVALID, Outcome.ERROR,
        Outcome.INVALID, Outcome.FOUND,  # blank: USPS is not asked; spaces: asked without them
    ]  # fmt: skip
    assert results["SBNOTFOUND42"].message.startswith("The tracking number may be incorrect")
    assert "letters or digits" in results["ABC-123"].message
    assert "HTTP 200 with no JSON" in results["SBBADJSON1"].message
    asked = [*numbers[:6], spaced]
    assert [sandbox.statuses_of(n) for n in asked] == [[200], [404], [404], [400], [200], [], [200]]


async def test_server_error_is_unavailable_after_max_attempts(sandbox: Sandbox) -> None:
    good = sample_number(950)
    sandbox.register(good)
    with pytest.raises(CarrierUnavailable, match="HTTP 500"):
        await sandbox.adapter(max_attempts=2).track(["SB500A", good])
    assert sandbox.statuses_of("SB500A") == [500, 500]


async def test_slow_answer_past_the_timeout_is_unavailable(sandbox: Sandbox) -> None:
    sandbox.world.slow_seconds = 5.0
    with pytest.raises(CarrierUnavailable, match="timed out"):
        await sandbox.adapter(timeout_seconds=0.2, max_attempts=1).track(["SBSLOW1"])


# --- configuration, numbers and budgets -------------------------------------------------------


def test_defaults_base_url_and_public_page() -> None:
    def adapter(url: str | None = None) -> UspsAdapter:
        settings = CarrierSettings(client_id="i", client_secret="s", base_url=url)
        return UspsAdapter(settings, None)  # type: ignore[arg-type]

    names = (UspsAdapter.code, UspsAdapter.display_name, UspsAdapter.max_batch)
    assert names == ("usps", "USPS", 1)
    assert UspsAdapter.default_requests_per_second == pytest.approx(60 / 3600)  # ~60 an hour
    assert UspsAdapter.default_requests_per_day == 1440
    assert DEFAULT_BASE_URL == "https://apis.usps.com"
    assert TEST_BASE_URL == "https://apis-tem.usps.com"
    assert adapter(None).base_url == adapter("").base_url == DEFAULT_BASE_URL
    assert adapter(TEST_BASE_URL + "/").base_url == TEST_BASE_URL
    assert adapter().public_url(" 9400 1000 0000 0000 1234 53") == (
        "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400100000000000123453"
    )


def test_sample_numbers_are_distinct_impb_numbers_with_a_valid_check_digit() -> None:
    numbers = [sample_number(i) for i in range(500)]
    assert len(set(numbers)) == 500
    assert all(len(n) == 22 and n.isdigit() and n[:4] in ("9400", "9405") for n in numbers)
    assert all(int(n[-1]) == mod10_check_digit(n[:-1]) for n in numbers)
    assert mod10_check_digit("940010000000000012345") == 3  # 3*(5+3+1+1+9) + (4+2+4) = 67


# --- the sandbox speaks the spec ------------------------------------------------------------


def validator(name: str) -> Any:
    if not SPEC.exists():
        pytest.skip(f"USPS spec not found at {SPEC}")
    jsonschema = pytest.importorskip("jsonschema")
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    return jsonschema.Draft7Validator(schema)


async def fetch_token(sandbox: Sandbox, **overrides: str) -> tuple[int, dict[str, Any]]:
    body = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "grant_type": "client_credentials", **overrides}  # fmt: skip
    async with sandbox.session.post(f"{sandbox.url}{TOKEN}", json=body) as resp:
        return resp.status, await resp.json()


async def get(sandbox: Sandbox, number: str, token: str | None, **query: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    url = f"{sandbox.url}{TRACKING}{number}"
    async with sandbox.session.get(url, params=query, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


@pytest.mark.parametrize("style", list(TimeStyle))
async def test_tracking_answers_match_the_spec(sandbox: Sandbox, style: TimeStyle) -> None:
    details, summary = validator("TrackingDetails"), validator("TrackingSummary")
    number = number_with_style(style)
    sandbox.world.register([every_kind_timeline(number, sandbox.world.clock.now())])
    sandbox.world.clock.advance(timedelta(hours=10))  # part way: ETA still shown
    token = (await fetch_token(sandbox))[1]["access_token"]

    status, headers, body = await get(sandbox, number, token, expand="DETAIL")
    assert (status, headers["Content-Type"]) == (200, "application/json; charset=utf-8")
    assert list(details.iter_errors(body)) == []
    assert list(summary.iter_errors(body)) != []  # so the spec's oneOf picks exactly one
    assert len(body["trackingEvents"]) == 3
    newest = body["trackingEvents"][0]  # each style writes USPS's fields its own way
    assert {e["eventTimestamp"].endswith("Z") for e in body["trackingEvents"]} == {
        style is TimeStyle.LOCAL_Z
    }
    assert ("GMTTimestamp" in newest, "GMTOffset" in newest) == (
        style is TimeStyle.GMT, style in (TimeStyle.GMT, TimeStyle.OFFSET),
    )  # fmt: skip
    assert (body["trackingEvents"][0]["eventType"], "expectedDeliveryTimeStamp" in body) == (
        body["status"], True,
    )  # fmt: skip
    for query in ({"expand": "summary"}, {}):  # SUMMARY is the default
        status, _, short = await get(sandbox, number, token, **query)
        assert (status, list(summary.iter_errors(short)), len(short["eventSummaries"])) == (
            200, [], 3,
        )  # fmt: skip


async def test_error_answers_match_the_spec(sandbox: Sandbox) -> None:
    error_message = validator("ErrorMessage")
    good = sample_number(960)
    sandbox.register(good)
    token = (await fetch_token(sandbox))[1]["access_token"]
    narrow = (await fetch_token(sandbox, scope="prices labels"))[1]["access_token"]
    answers = [
        await get(sandbox, good, None), await get(sandbox, good, "not-a-token"),
        await get(sandbox, good, narrow), await get(sandbox, "ABC-123", token),
        await get(sandbox, good, token, expand="EVERYTHING"),
        await get(sandbox, good, token, destinationZIPCode="8020"),
        await get(sandbox, good, token, mailingDate="yesterday"),
        await get(sandbox, sample_number(961), token, expand="DETAIL"),
        await get(sandbox, "SB429A", token),
    ]  # fmt: skip
    assert [status for status, _, _ in answers] == [401, 401, 403, 400, 400, 400, 400, 404, 429]
    for status, _, body in answers:
        assert list(error_message.iter_errors(body)) == []
        assert body["error"]["code"] == str(status)
    assert answers[0][1]["WWW-Authenticate"] == 'Bearer realm="https://api.usps.com"'
    assert answers[-1][1]["Retry-After"] == "1"
    assert [a[2]["error"]["errors"][0]["source"]["parameter"] for a in answers[3:7]] == [
        "trackingNumber", "expand", "destinationZIPCode", "mailingDate",
    ]  # fmt: skip


async def test_token_endpoint_answers_like_uspss(sandbox: Sandbox) -> None:
    status, token = await fetch_token(sandbox, scope="tracking")
    assert (status, token["token_type"], token["status"], token["scope"]) == (
        200, "Bearer", "approved", "tracking",
    )  # fmt: skip
    assert token["expires_in"] == str(8 * 3600)  # a string, as USPS sends it
    assert await fetch_token(sandbox, client_secret="nope") == (
        401, {"error": "invalid_client", "error_description": "Client authentication failed."},
    )  # fmt: skip
    status, body = await fetch_token(sandbox, grant_type="authorization_code")
    assert (status, body["error"]) == (400, "unsupported_grant_type")
    async with sandbox.session.post(f"{sandbox.url}{TOKEN}", data=b"{not json") as resp:
        assert (resp.status, (await resp.json())["error"]) == (400, "invalid_request")
    assert sandbox.token_requests() == [200, 401, 400, 400]
