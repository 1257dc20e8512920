"""UPS adapter against the UPS sandbox, served over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from carriers.base import CarrierAuthError, CarrierSettings, CarrierUnavailable, Outcome
from carriers.http import JsonResponse
from carriers.sandbox_base import EXPECTED_STATUS, Kind
from carriers.ups import DEFAULT_BASE_URL, TEST_BASE_URL, UpsAdapter
from carriers.ups.sandbox import (
    SANDBOX_SETTINGS,
    NotFoundStyle,
    check_digit,
    sample_number,
)
from carriers.ups.sandbox_render import TimeStyle
from tests.fixtures.ups.world import (
    CLIENT_ID,
    CLIENT_SECRET,
    EVERY_KIND,
    OAUTH_SPEC,
    TOKEN_PATH,
    TRACK_SPEC,
    Sandbox,
    basic,
    every_kind_timeline,
    fetch_token,
    get,
    number_with_style,
    serve_sandbox,
    simple_timeline,
    spec_validator,
    unknown_number,
)
from tracker.domain import Status


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve_sandbox() as running:
        yield running


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
    assert [e.status for e in result.events] == [
        Status.LABEL_PURCHASED, Status.CARRIER_PICKED_UP, Status.IN_TRANSIT, None,
        Status.IN_TRANSIT, Status.DELAYED, Status.FAILURE, Status.OUT_FOR_DELIVERY,
        Status.ATTEMPTED_DELIVERY, Status.READY_FOR_PICKUP, Status.DELIVERED, Status.FAILURE,
    ]  # fmt: skip
    assert [e.happened_at for e in result.events] == [timeline.at(s) for s in timeline.scans]
    assert [e.city for e in result.events] == [city.upper() or None for *_, city, _ in EVERY_KIND]
    assert [e.carrier_code for e in result.events][:3] == ["M/003/MP", "P/038/PU", "I/005/AR"]
    assert result.events[5].message.endswith(" - scripted")
    assert result.estimated_delivery_at is None  # delivered: UPS shows the delivery date instead
    assert result.raw_status == "RS/Returned to the sender."
    sources = {e.country or "": e.time_source for e in result.events}
    if style is TimeStyle.LOCAL:
        assert sources == {"": "local:assumed-utc", "US": "local:assumed-utc",
                           "DE": "local:Europe/Berlin", "NL": "local:Europe/Amsterdam",
                           "JP": "local:Asia/Tokyo"}  # fmt: skip
    elif style is TimeStyle.OFFSET:
        assert set(sources.values()) == {"offset"}
    else:
        assert set(sources.values()) == {"utc"}


async def test_scans_appear_as_the_sandbox_clock_moves(sandbox: Sandbox) -> None:
    number = sample_number(7)
    start = sandbox.world.clock.now().replace(microsecond=0)
    timeline = simple_timeline(number, start)
    sandbox.world.register([timeline])
    adapter = sandbox.adapter()

    first = await adapter.track([number])
    assert first[number].outcome is Outcome.NOT_FOUND  # no scan yet: UPS does not know it

    sandbox.world.clock.advance(timedelta(hours=8))
    moving = (await adapter.track([number]))[number]
    assert [e.status for e in moving.events] == [Status.LABEL_PURCHASED, Status.CARRIER_PICKED_UP]
    assert moving.estimated_delivery_at == timeline.eta()

    sandbox.world.clock.advance(timedelta(hours=24))
    done = (await adapter.track([number]))[number]
    assert [e.status for e in done.events] == [
        Status.LABEL_PURCHASED, Status.CARRIER_PICKED_UP, Status.IN_TRANSIT,
        Status.OUT_FOR_DELIVERY, Status.DELIVERED,
    ]  # fmt: skip
    assert done.estimated_delivery_at is None


async def test_timelines_can_be_registered_over_http(sandbox: Sandbox) -> None:
    number = sample_number(8)
    payload = simple_timeline(number.lower()).model_dump(mode="json")
    async with sandbox.session.post(f"{sandbox.url}/_sandbox/timelines", json=payload) as resp:
        assert resp.status == 200
    spaced = f"{number[:8]} {number[8:]}"
    result = (await sandbox.adapter().track([spaced]))[spaced]
    assert result.outcome is Outcome.FOUND
    assert result.events[-1].status is Status.DELIVERED


# --- what UPS says about single numbers -------------------------------------------------------


async def test_unknown_numbers_are_not_found_in_both_shapes_and_the_others_succeed(
    sandbox: Sandbox,
) -> None:
    known = sample_number(9)
    sandbox.world.register([simple_timeline(known)])
    numbers = [known, unknown_number(NotFoundStyle.WARNING), unknown_number(NotFoundStyle.ERROR),
               "SBNOTFOUND42"]  # fmt: skip

    results = await sandbox.adapter().track(numbers)

    assert list(results) == numbers
    assert [r.outcome for r in results.values()] == [
        Outcome.FOUND, Outcome.NOT_FOUND, Outcome.NOT_FOUND, Outcome.NOT_FOUND,
    ]  # fmt: skip
    assert {r.message for r in list(results.values())[1:]} == {"Tracking Information Not Found"}
    assert sorted(status for _, status in sandbox.track_requests()) == [200, 200, 404, 404]


async def test_malformed_numbers_are_invalid_and_blank_ones_are_not_sent(sandbox: Sandbox) -> None:
    results = await sandbox.adapter().track(["1Z12", "  "])
    assert results["1Z12"].outcome is Outcome.INVALID
    assert results["1Z12"].message == "Invalid tracking number"
    assert results["  "].outcome is Outcome.INVALID
    assert sandbox.track_requests() == [(("1Z12",), 400)]


async def test_malformed_answer_is_an_error_for_that_number_only(sandbox: Sandbox) -> None:
    known = sample_number(10)
    sandbox.world.register([simple_timeline(known)])

    results = await sandbox.adapter().track(["SBBADJSON1", known])

    assert results["SBBADJSON1"].outcome is Outcome.ERROR
    assert "HTTP 200 with no JSON" in results["SBBADJSON1"].message
    assert results[known].outcome is Outcome.FOUND


async def test_one_number_per_request(sandbox: Sandbox) -> None:
    numbers = [sample_number(i) for i in range(20, 23)]  # 2 * max_batch + 1
    sandbox.world.register([simple_timeline(n) for n in numbers])
    adapter = sandbox.adapter()

    results = await adapter.track([*numbers, numbers[0]])

    assert adapter.max_batch == 1
    assert list(results) == numbers
    assert sorted(sandbox.track_requests()) == sorted(((n,), 200) for n in numbers)


# --- OAuth ----------------------------------------------------------------------------------


async def test_token_is_fetched_once_and_reused(sandbox: Sandbox) -> None:
    numbers = [sample_number(i) for i in range(30, 33)]
    sandbox.world.register([simple_timeline(n) for n in numbers])
    adapter = sandbox.adapter()

    await adapter.track(numbers)
    await adapter.track(numbers[:1])

    assert adapter.tokens.fetches == 1
    assert sandbox.issuer.issued == 1
    assert sandbox.token_requests() == [200]
    assert [status for _, status in sandbox.track_requests()] == [200] * 4


async def test_expired_token_is_replaced_with_exactly_one_retry(sandbox: Sandbox) -> None:
    numbers = [sample_number(i) for i in range(40, 43)]
    sandbox.world.register([simple_timeline(n) for n in numbers])
    adapter = sandbox.adapter()
    await adapter.track(numbers)

    async with sandbox.session.post(f"{sandbox.url}/_sandbox/tokens/expire") as resp:
        assert resp.status == 200
    results = await adapter.track(numbers)

    assert {r.outcome for r in results.values()} == {Outcome.FOUND}
    assert adapter.tokens.fetches == 2
    assert sandbox.token_requests() == [200, 200]
    assert all(sandbox.statuses_of(n) == [200, 401, 200] for n in numbers)


async def test_wrong_credentials_raise_auth_error(sandbox: Sandbox) -> None:
    numbers = [sample_number(50), sample_number(51)]
    with pytest.raises(CarrierAuthError, match="HTTP 401"):
        await sandbox.adapter(client_secret="wrong").track(numbers)
    assert set(sandbox.token_requests()) == {401}
    assert sandbox.track_requests() == []


@pytest.mark.parametrize("missing", ["client_id", "client_secret"])
async def test_missing_credentials_raise_auth_error_without_a_request(
    sandbox: Sandbox, missing: str
) -> None:
    with pytest.raises(CarrierAuthError, match=r"carriers\.ups\.client_id and client_secret"):
        await sandbox.adapter(**{missing: None}).track([sample_number(52)])
    assert sandbox.world.requests == []


# --- when UPS cannot be asked ---------------------------------------------------------------


async def test_429_is_retried_after_retry_after(sandbox: Sandbox) -> None:
    sandbox.world.rate_limit_per_second = 1
    numbers = [sample_number(60), sample_number(61)]
    sandbox.world.register([simple_timeline(n) for n in numbers])

    results = await sandbox.adapter().track(numbers)

    assert {r.outcome for r in results.values()} == {Outcome.FOUND}
    assert sorted(sandbox.statuses_of(n) for n in numbers) == [[200], [429, 200]]


async def test_rate_limit_fault_gives_up_after_max_attempts(sandbox: Sandbox) -> None:
    with pytest.raises(CarrierUnavailable) as raised:
        await sandbox.adapter(max_attempts=2).track(["SB429UPS1"])
    assert raised.value.retry_after == 1.0
    assert sandbox.statuses_of("SB429UPS1") == [429, 429]


async def test_server_error_is_unavailable_after_max_attempts(sandbox: Sandbox) -> None:
    known = sample_number(62)
    sandbox.world.register([simple_timeline(known)])
    with pytest.raises(CarrierUnavailable, match="HTTP 500"):
        await sandbox.adapter(max_attempts=2).track(["SB500A", known])
    assert sandbox.statuses_of("SB500A") == [500, 500]


async def test_slow_answer_past_the_timeout_is_unavailable(sandbox: Sandbox) -> None:
    sandbox.world.slow_seconds = 5.0
    with pytest.raises(CarrierUnavailable, match="timed out"):
        await sandbox.adapter(timeout_seconds=0.2, max_attempts=1).track(["SBSLOW1"])


async def test_slow_answer_within_the_timeout_is_the_normal_answer(sandbox: Sandbox) -> None:
    sandbox.world.slow_seconds = 0.05
    sandbox.world.register([simple_timeline("SBSLOW2X")])
    result = (await sandbox.adapter().track(["SBSLOW2X"]))["SBSLOW2X"]
    assert result.outcome is Outcome.FOUND
    assert result.events[-1].status is Status.DELIVERED


def test_blocked_merchant_is_an_auth_error() -> None:
    blocked = {"response": {"errors": [{"code": "250003", "message": "Blocked Merchant"}]}}
    with pytest.raises(CarrierAuthError, match=r"HTTP 403.*250003 Blocked Merchant"):
        UpsAdapter._read("1Z999AA10123456784", JsonResponse(403, blocked, {}, "{}"))


# --- the adapter's constants and the sandbox's numbers -----------------------------------------


def test_adapter_identity_urls_and_base_url() -> None:
    assert (DEFAULT_BASE_URL, TEST_BASE_URL) == (
        "https://onlinetools.ups.com", "https://wwwcie.ups.com",
    )  # fmt: skip
    adapter = UpsAdapter(CarrierSettings(client_id="i", client_secret="s"), None)  # type: ignore[arg-type]
    assert (
        adapter.public_url(" 1Z 999/1 ")
        == "https://www.ups.com/track?loc=en_US&tracknum=1Z+999%2F1"
    )
    assert (adapter.code, adapter.display_name, adapter.max_batch) == ("ups", "UPS", 1)
    assert (adapter.default_requests_per_second, adapter.default_requests_per_day) == (5.0, None)
    assert adapter.base_url == DEFAULT_BASE_URL
    blank = UpsAdapter(CarrierSettings(base_url=""), None)  # type: ignore[arg-type]
    assert blank.base_url == DEFAULT_BASE_URL
    test = UpsAdapter(CarrierSettings(base_url=TEST_BASE_URL + "/"), None)  # type: ignore[arg-type]
    assert test.base_url == TEST_BASE_URL


def test_sample_numbers_are_distinct_1z_numbers_with_valid_check_digits() -> None:
    numbers = [sample_number(i) for i in range(2000)]
    assert len(set(numbers)) == len(numbers)
    assert check_digit("999AA1012345678") == "4"  # UPS's published example 1Z999AA10123456784
    assert all(len(n) == 18 and n[:2] == "1Z" and n[-1] == check_digit(n[2:-1]) for n in numbers)
    tracking_numbers = pytest.importorskip("tracking_numbers")  # an independent implementation
    found = [tracking_numbers.get_tracking_number(n) for n in numbers[:50]]
    assert all(f is not None and f.valid and f.courier.code == "ups" for f in found)
    broken = numbers[0][:-1] + str((int(numbers[0][-1]) + 1) % 10)
    assert tracking_numbers.get_tracking_number(broken) is None
    assert SANDBOX_SETTINGS.keys() == {"client_id", "client_secret"}


# --- the sandbox speaks the spec ------------------------------------------------------------


@pytest.mark.parametrize("style", list(TimeStyle))
async def test_track_answers_match_the_spec(sandbox: Sandbox, style: TimeStyle) -> None:
    validator = spec_validator(TRACK_SPEC, "TrackApiResponse")
    number = number_with_style(style)
    sandbox.world.register([every_kind_timeline(number, sandbox.world.clock.now())])
    _, token = await fetch_token(sandbox)
    sandbox.world.clock.advance(timedelta(hours=10))  # part way: ETA still shown

    status, content_type, body = await get(
        sandbox, number, token["access_token"], locale="en_US", returnMilestones="false"
    )

    assert (status, content_type) == (200, "application/json")
    assert list(validator.iter_errors(body)) == []
    package = body["trackResponse"]["shipment"][0]["package"][0]
    assert len(package["activity"]) == 3
    assert package["deliveryDate"][0]["type"] == "SDD"
    sandbox.world.clock.advance(timedelta(hours=40))  # delivered and returned
    _, _, done = await get(sandbox, number, token["access_token"])
    assert list(validator.iter_errors(done)) == []
    assert done["trackResponse"]["shipment"][0]["package"][0]["deliveryDate"][0]["type"] == "DEL"


async def test_error_answers_match_the_spec(sandbox: Sandbox) -> None:
    validator = spec_validator(TRACK_SPEC, "Response")
    warning = spec_validator(TRACK_SPEC, "TrackApiResponse")
    _, token = await fetch_token(sandbox)
    good = token["access_token"]
    answers = [
        await get(sandbox, "1Z999AA10123456784", None),
        await get(sandbox, "1Z999AA10123456784", "stale"),
        await get(sandbox, "1Z999AA10123456784", good, headers={"transactionSrc": "tests"}),
        await get(sandbox, "1Z999AA10123456784", good, headers={"transId": "x" * 33,
                                                                 "transactionSrc": "t"}),
        await get(sandbox, "1Z999AA10123456784", good, headers={"transId": "1"}),
        await get(sandbox, "1Z999AA10123456784", good, locale="english"),
        await get(sandbox, "1Z999AA10123456784", good, returnMilestones="yes"),
        await get(sandbox, "1Z1", good),
        await get(sandbox, unknown_number(NotFoundStyle.ERROR), good),
        await get(sandbox, "SB429A", good),
    ]  # fmt: skip
    assert [(status, content_type) for status, content_type, _ in answers] == [
        (401, "application/json"), (401, "application/json"), (400, "application/json"),
        (400, "application/json"), (400, "application/json"), (400, "application/json"),
        (400, "application/json"), (400, "application/json"), (404, "application/json"),
        (429, "application/json"),
    ]  # fmt: skip
    for _, _, body in answers:
        assert list(validator.iter_errors(body)) == []
    codes = [body["response"]["errors"][0]["code"] for _, _, body in answers]
    assert codes == ["250002", "250002", "10400", "10400", "10400", "10400", "10400", "151018",
                     "151044", "10429"]  # fmt: skip

    status, _, body = await get(sandbox, unknown_number(NotFoundStyle.WARNING), good)
    assert status == 200
    assert list(warning.iter_errors(body)) == []
    assert "package" not in body["trackResponse"]["shipment"][0]


async def test_token_answers_match_the_spec(sandbox: Sandbox) -> None:
    success = spec_validator(OAUTH_SPEC, "tokenSuccessResponse")
    failure = spec_validator(OAUTH_SPEC, "tokenErrorResponse")

    status, body = await fetch_token(sandbox)
    assert status == 200
    assert list(success.iter_errors(body)) == []
    assert body["expires_in"] == "14399"  # a string, as UPS sends it
    assert sandbox.issuer.valid(body["access_token"])

    status, body = await fetch_token(sandbox, secret="wrong")
    assert status == 401
    assert list(failure.iter_errors(body)) == []

    url = f"{sandbox.url}{TOKEN_PATH}"
    auth = basic(CLIENT_ID, CLIENT_SECRET)
    async with sandbox.session.post(url, headers=auth, data={"grant_type": "password"}) as resp:
        assert resp.status == 400
        assert list(failure.iter_errors(await resp.json())) == []
    async with sandbox.session.post(url, headers=auth, json={"grant_type": "x"}) as resp:
        assert resp.status == 400
    garbled = {"Authorization": "Basic not-base64!"}
    async with sandbox.session.post(url, headers=garbled, data={"grant_type": "x"}) as resp:
        assert resp.status == 401
    assert sandbox.token_requests() == [200, 401, 400, 400, 401]
