"""FedEx: status table and the pure parser, on hand-written bodies shaped like FedEx's answers."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carriers.base import Outcome, TrackResult
from carriers.fedex.parse import error_results, parse_response, parse_timestamp
from carriers.fedex.statuses import EVENT_CODES, map_status
from carriers.timezones import zone_name
from tracker.domain import Status

NUMBER = "794612345672"
OTHER = "770011223344"

IT, DY, FAIL = Status.IN_TRANSIT, Status.DELAYED, Status.FAILURE

# Every code statuses.py knows, with the status it must give, written out here on its own.
EXPECTED_CODES: dict[str, Status | None] = {
    "AA": IT, "AC": IT, "AD": Status.OUT_FOR_DELIVERY, "AE": None, "AF": IT, "AO": None,
    "AP": None, "AR": IT, "AX": IT, "BR": None, "CA": FAIL, "CC": IT, "CD": DY, "CH": None,
    "CP": IT, "CU": None, "DD": DY, "DE": Status.ATTEMPTED_DELIVERY, "DL": Status.DELIVERED,
    "DP": IT, "DR": None, "DS": None, "DY": DY, "EA": IT, "ED": Status.OUT_FOR_DELIVERY,
    "EO": IT, "EP": None, "FD": IT, "HL": Status.READY_FOR_PICKUP,
    "HP": Status.READY_FOR_PICKUP, "IN": Status.LABEL_PURCHASED, "IT": IT, "IX": IT, "LO": IT,
    "LP": None, "OC": Status.LABEL_PURCHASED, "OD": Status.OUT_FOR_DELIVERY, "OF": IT, "OX": IT,
    "PD": DY, "PF": IT, "PL": IT, "PM": IT, "PU": Status.CARRIER_PICKED_UP,
    "PX": Status.CARRIER_PICKED_UP, "RC": None, "RD": None, "RG": None, "RM": None, "RP": None,
    "RR": None, "RS": FAIL, "SE": DY, "SF": IT, "SH": None, "SP": None, "TP": None, "TR": IT,
}  # fmt: skip


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def scan(date: object, event_type: object, words: object = "", **more: Any) -> dict[str, Any]:
    return {"date": date, "eventType": event_type, "eventDescription": words, **more}


TORONTO = {"city": "TORONTO", "stateOrProvinceCode": "ON", "countryCode": "CA"}
MEMPHIS = {"city": "MEMPHIS", "stateOrProvinceCode": "TN", "countryCode": "US"}


# A Memphis -> Toronto parcel as the Track API returns it: scans newest first.
PARCEL: dict[str, Any] = {
    "trackingNumberInfo": {"trackingNumber": NUMBER, "carrierCode": "FDXE"},
    "serviceDetail": {"type": "FEDEX_2_DAY", "description": "FedEx 2Day"},
    "recipientInformation": {"address": {"city": "TORONTO", "stateOrProvinceCode": "ON",
                                         "countryCode": "CA"}},
    "latestStatusDetail": {
        "code": "DE", "derivedCode": "DE", "description": "Delivery exception",
        "statusByLocale": "Delivery exception",
        "ancillaryDetails": [{"reason": "08", "reasonDescription": "Recipient not in"}],
    },
    "dateAndTimes": [
        {"type": "ACTUAL_PICKUP", "dateTime": "2024-11-04T16:20:00-06:00"},
        {"type": "ESTIMATED_DELIVERY", "dateTime": "2024-11-07T17:00:00"},
    ],
    "estimatedDeliveryTimeWindow": {"window": {"ends": "2024-11-08T00:00:00-05:00"}},
    "scanEvents": [
        scan("2024-11-06T10:42:00", "DE", "Delivery exception", derivedStatusCode="DE",
             scanLocation=TORONTO, exceptionCode="08",
             exceptionDescription="Customer not available or business closed"),
        scan("2024-11-06T08:05:00-05:00", "OD", "On FedEx vehicle for delivery",
             derivedStatusCode="OD", scanLocation=TORONTO),
        scan("2024-11-05T03:30:00Z", "DP", "Departed FedEx hub", derivedStatusCode="IT",
             scanLocation=MEMPHIS, locationId="NQAA", locationType="FEDEX_FACILITY"),
        scan("2024-11-04T16:20:00-06:00", "PU", "Picked up", derivedStatusCode="PU",
             scanLocation={**MEMPHIS, "postalCode": "38118"}),
        scan("2024-11-04T09:00:00", "OC", "Shipment information sent to FedEx",
             derivedStatusCode="IN"),
    ],
}  # fmt: skip


def answer(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"transactionId": "t-1", "output": {"completeTrackResults": list(entries)}}


def entry(number: str, *results: object) -> dict[str, Any]:
    return {"trackingNumber": number, "trackResults": list(results)}


def not_found(number: str) -> dict[str, Any]:
    return entry(number, {"trackingNumberInfo": {"trackingNumber": number},
                          "error": {"code": "TRACKING.TRACKINGNUMBER.NOTFOUND",
                                    "message": "Tracking number cannot be found."}})  # fmt: skip


def one(body: object, number: str = NUMBER) -> TrackResult:
    return parse_response([number], body)[number]


# --- status table ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(set(EXPECTED_CODES) | set(EVENT_CODES)))
def test_every_code_maps_to_its_status(code: str) -> None:
    assert (code in EVENT_CODES, code in EXPECTED_CODES) == (True, True)
    expected = EXPECTED_CODES[code]
    assert map_status(code) is expected
    assert map_status(code.lower(), "IT") is expected  # a known eventType wins, even for None
    assert map_status("ZZ", code) is expected  # an unknown eventType falls back to the derived


@pytest.mark.parametrize(
    ("code", "texts", "expected"),
    [
        ("DE", ("Delivery exception", "Customer not available or business closed"),
         Status.ATTEMPTED_DELIVERY),
        ("DE", ("Delivery exception", "Refused by recipient"), Status.FAILURE),
        ("DE", ("Delivery exception", "Returning package to shipper"), Status.FAILURE),
        ("DE", ("Delivery exception", "Recipient not in. Refused"), Status.ATTEMPTED_DELIVERY),
        ("DE", ("Delivery exception", ""), Status.ATTEMPTED_DELIVERY),
        ("SE", ("Shipment exception", "Package damaged - unable to deliver"), Status.FAILURE),
        ("SE", ("Shipment exception", "Package lost"), Status.FAILURE),
        ("SE", ("Shipment exception", "Weather delay"), Status.DELAYED),
        ("SE", ("Shipment exception", "Incorrect address"), Status.DELAYED),
        ("DY", ("Delay", "Package damaged"), Status.DELAYED),  # only DE and SE are refined
        ("RS", ("Returning package to shipper", ""), Status.FAILURE),
    ],
)  # fmt: skip
def test_exceptions_are_refined_by_their_words(
    code: str, texts: tuple[str, str], expected: Status
) -> None:
    assert map_status(code, None, *texts) is expected


@pytest.mark.parametrize("code", ["", "  ", "Q9", None, 7, ["DL"]])
def test_unknown_or_missing_codes_map_to_no_status(code: object) -> None:
    assert map_status(code, code, "Delivered") is None


# --- timestamps -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "country", "state", "expected", "source"),
    [
        ("2018-02-02T12:01:00-07:00", "US", "CO", at(2018, 2, 2, 19, 1), "offset"),
        ("2018-02-02T12:01:00+09:00", None, None, at(2018, 2, 2, 3, 1), "offset"),
        ("2018-02-02T12:01:00+00:00", "JP", None, at(2018, 2, 2, 12, 1), "offset"),
        ("2018-02-02T12:01:00Z", "DE", None, at(2018, 2, 2, 12, 1), "utc"),
        ("2018-07-02T12:00:00", "US", "TN", at(2018, 7, 2, 17), "local:America/Chicago"),
        ("2018-01-02T12:00:00", "us", " ny ", at(2018, 1, 2, 17), "local:America/New_York"),
        ("2018-07-02T12:00:00", "US", "AZ", at(2018, 7, 2, 19), "local:America/Phoenix"),
        ("2018-07-02T12:00:00", "CA", "BC", at(2018, 7, 2, 19), "local:America/Vancouver"),
        ("2018-07-02T12:00:00", "DE", "XX", at(2018, 7, 2, 10), "local:Europe/Berlin"),
        ("2018-07-02T12:00:00", "US", None, at(2018, 7, 2, 12), "local:assumed-utc"),
        ("2018-07-02T12:00:00", "US", "ZZ", at(2018, 7, 2, 12), "local:assumed-utc"),
        ("2018-07-02T12:00:00", "BR", "SP", at(2018, 7, 2, 12), "local:assumed-utc"),
        ("2018-07-02T12:00:00", None, None, at(2018, 7, 2, 12), "local:assumed-utc"),
        ("2018-07-02", "JP", None, at(2018, 7, 2, 3), "local:date-only:Asia/Tokyo"),
    ],
)
def test_timestamps_become_the_right_utc_instant(
    stamp: str, country: str | None, state: str | None, expected: datetime, source: str
) -> None:
    assert parse_timestamp(stamp, country, state) == (expected, source)


@pytest.mark.parametrize(
    "stamp", ["", "soon", "2018-02-30T10:00:00", "0001-01-01T00:00:00+05:00", 1517570460, None]
)
def test_unreadable_timestamps_are_none(stamp: object) -> None:
    assert parse_timestamp(stamp, "US", "TN") is None


def test_split_states_use_the_zone_most_people_live_in() -> None:
    assert [zone_name("US", s) for s in ("TN", "IN", "KY", "FL", None)] == [
        "America/Chicago", "America/Indiana/Indianapolis", "America/New_York",
        "America/New_York", None,
    ]  # fmt: skip
    assert zone_name(None, "TN") is None


# --- whole answers --------------------------------------------------------------------------


def test_parcel_answer_is_read_oldest_first_in_utc() -> None:
    result = one(answer(entry(NUMBER, PARCEL)))

    assert result.outcome is Outcome.FOUND
    assert [e.status for e in result.events] == [
        Status.LABEL_PURCHASED, Status.CARRIER_PICKED_UP, Status.IN_TRANSIT,
        Status.OUT_FOR_DELIVERY, Status.ATTEMPTED_DELIVERY,
    ]  # fmt: skip
    assert [e.happened_at for e in result.events] == [
        at(2024, 11, 4, 9), at(2024, 11, 4, 22, 20), at(2024, 11, 5, 3, 30),
        at(2024, 11, 6, 13, 5), at(2024, 11, 6, 15, 42),
    ]  # fmt: skip
    assert [e.time_source for e in result.events] == [
        "local:assumed-utc", "offset", "utc", "offset", "local:America/Toronto",
    ]  # fmt: skip
    assert [e.carrier_code for e in result.events] == ["OC", "PU", "DP", "OD", "DE"]
    pickup, hub, attempt = result.events[1], result.events[2], result.events[4]
    assert pickup.location == "MEMPHIS, TN, 38118, US"
    assert hub.extra == {"derivedStatusCode": "IT", "locationId": "NQAA",
                         "locationType": "FEDEX_FACILITY"}  # fmt: skip
    assert attempt.message == "Delivery exception - Customer not available or business closed"
    assert attempt.extra["exceptionCode"] == "08"
    assert attempt.location == "TORONTO, ON, CA"
    assert result.estimated_delivery_at == at(2024, 11, 7, 22)  # 17:00 in Toronto
    assert result.raw_status == "DE/Delivery exception"
    assert result.message == "Delivery exception"
    assert result.extra == {"skipped_events": 0, "derived_code": "DE", "carrier": "FDXE",
                            "service": "FEDEX_2_DAY", "reason": "Recipient not in"}  # fmt: skip


@pytest.mark.parametrize(
    ("dates", "window", "expected"),
    [
        ([{"type": "APPOINTMENT_DELIVERY", "dateTime": "2024-11-07T10:00:00-05:00"},
          {"type": "COMMITMENT", "dateTime": "2024-11-09T10:00:00-05:00"}],
         {"ends": "2024-11-08T00:00:00-05:00"}, at(2024, 11, 7, 15)),
        ([{"type": "COMMITMENT", "dateTime": "2024-11-09T10:00:00-05:00"}],
         {"begins": "2024-11-07T08:00:00", "ends": "2024-11-08T00:00:00-05:00"},
         at(2024, 11, 8, 5)),
        ([], {"begins": "2024-11-07T08:00:00"}, at(2024, 11, 7, 13)),
        ([{"type": "COMMITMENT", "dateTime": "2024-11-09"}], "soon", at(2024, 11, 9, 17)),
        ([{"type": "ESTIMATED_DELIVERY", "dateTime": "unknown"}, "junk"], None, None),
    ],
)  # fmt: skip
def test_eta_comes_from_the_first_usable_delivery_date(
    dates: list[Any], window: object, expected: datetime | None
) -> None:
    parcel = copy.deepcopy(PARCEL)
    parcel["dateAndTimes"] = dates
    parcel["estimatedDeliveryTimeWindow"] = {"window": window}
    assert one(answer(entry(NUMBER, parcel))).estimated_delivery_at == expected


def test_each_number_of_a_batch_gets_its_own_result_however_it_is_spelled() -> None:
    third = "61299998888999"
    body = answer(not_found(OTHER), entry(NUMBER, PARCEL))
    results = parse_response([NUMBER, OTHER, third], body)

    assert list(results) == [NUMBER, OTHER, third]
    assert results[NUMBER].outcome is Outcome.FOUND
    assert results[OTHER] == TrackResult.not_found(OTHER, "Tracking number cannot be found.")
    assert results[third] == TrackResult.error(third, "FedEx answer has no result for it")
    spaced = "7946 1234 5672"
    result = parse_response([spaced], answer(entry(NUMBER, PARCEL)))[spaced]
    assert (result.tracking_number, result.outcome) == (spaced, Outcome.FOUND)
    unnamed = {"trackResults": [PARCEL]}  # no trackingNumber: read from trackingNumberInfo
    assert one(answer(unnamed)).outcome is Outcome.FOUND
    lone = entry("something else", PARCEL)  # one asked, one answered: it is the answer
    assert one(answer(lone)).outcome is Outcome.FOUND


def test_of_parcels_sharing_a_number_the_one_with_the_newest_scan_is_taken() -> None:
    old = {"scanEvents": [scan("2019-01-01T10:00:00Z", "DL", "Delivered")]}
    new = {"scanEvents": [scan("2024-11-01T10:00:00Z", "IT", "In transit")]}
    result = one(answer(entry(NUMBER, old, new, {"error": {"code": "X"}})))
    assert [e.status for e in result.events] == [Status.IN_TRANSIT]
    assert result.extra["duplicates"] == 2


@pytest.mark.parametrize(
    ("error", "outcome", "message"),
    [
        ({"code": "TRACKING.TRACKINGNUMBER.NOTFOUND", "message": "Not here."},
         Outcome.NOT_FOUND, "Not here."),
        ({"code": "TRACKING.DATA.NOTFOUND"}, Outcome.NOT_FOUND,
         "Tracking number cannot be found."),
        ({"code": "TRACKING.TRACKINGNUMBER.INVALID", "message": "Invalid tracking number."},
         Outcome.INVALID, "Invalid tracking number."),
        ({"code": "tracking.trackingnumber.empty"}, Outcome.INVALID,
         "TRACKING.TRACKINGNUMBER.EMPTY"),
        ({"code": "SYSTEM.UNAVAILABLE.EXCEPTION", "message": "Try later."}, Outcome.ERROR,
         "FedEx error: SYSTEM.UNAVAILABLE.EXCEPTION: Try later."),
        ({"code": 5}, Outcome.ERROR, "FedEx error: no detail"),
    ],
)  # fmt: skip
def test_per_number_errors_are_data(error: dict[str, Any], outcome: Outcome, message: str) -> None:
    result = one(answer(entry(NUMBER, {"error": error})))
    assert (result.outcome, result.message) == (outcome, message)


def test_error_bodies_answer_for_every_number() -> None:
    empty = {"code": "TRACKING.TRACKINGNUMBER.EMPTY", "message": "Please provide tracking number."}
    body = {"transactionId": "t", "errors": [empty]}
    results = error_results([NUMBER, OTHER], 400, body)
    assert {r.outcome for r in results.values()} == {Outcome.INVALID}
    assert one(body).outcome is Outcome.INVALID  # the same body inside a 200 answer
    gone = error_results([NUMBER], 404, {"errors": [{"code": "NOT.FOUND.ERROR"}]})[NUMBER]
    assert (gone.outcome, gone.message) == (Outcome.ERROR, "FedEx HTTP 404: NOT.FOUND.ERROR")
    assert error_results([NUMBER], 502, "<html>")[NUMBER].message == "FedEx HTTP 502: no detail"


def test_garbage_in_one_scan_skips_or_degrades_only_that_scan() -> None:
    parcel = copy.deepcopy(PARCEL)
    parcel["scanEvents"][1:1] = [
        "not a scan",
        scan(1730900000, "IT", "epoch seconds"),
        scan("yesterday", "DL", "Delivered"),
        {"eventType": "DL"},
        scan("2024-11-06T07:00:00Z", ["IT"], "", derivedStatusCode=3, scanLocation="MEMPHIS"),
        scan("2024-11-06T07:30:00Z", "IT", None,
             scanLocation={"city": " ", "stateOrProvinceCode": 7, "countryCode": "us"}),
    ]  # fmt: skip
    result = one(answer(entry(NUMBER, parcel)))

    assert result.outcome is Outcome.FOUND
    assert result.extra["skipped_events"] == 4
    assert [e.status for e in result.events] == [
        Status.LABEL_PURCHASED, Status.CARRIER_PICKED_UP, Status.IN_TRANSIT, None,
        Status.IN_TRANSIT, Status.OUT_FOR_DELIVERY, Status.ATTEMPTED_DELIVERY,
    ]  # fmt: skip
    degraded, odd_place = result.events[3], result.events[4]
    assert (degraded.carrier_code, degraded.message, degraded.location) == ("", "", "")
    assert (odd_place.city, odd_place.province, odd_place.country) == (None, None, "US")


def test_scans_with_the_same_time_keep_fedexs_order_reversed() -> None:
    parcel = {"scanEvents": [scan("2024-11-06T09:00:00Z", "DL", "Delivered"),
                             scan("2024-11-06T09:00:00Z", "OD", "On vehicle")]}  # fmt: skip
    result = one(answer(entry(NUMBER, parcel)))
    assert [e.status for e in result.events] == [Status.OUT_FOR_DELIVERY, Status.DELIVERED]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (None, "not a JSON object (got NoneType)"),
        ([answer()], "not a JSON object (got list)"),
        ({"transactionId": "t"}, "no 'output' object"),
        ({"output": []}, "no 'output' object"),
        ({"output": {"alerts": []}}, "no 'completeTrackResults' list"),
        (answer(entry(NUMBER)), "no 'trackResults' for it"),
        (answer(entry(NUMBER, "x", 1)), "no 'trackResults' for it"),
    ],
)
def test_answers_of_the_wrong_shape_are_an_error_result(body: object, fragment: str) -> None:
    result = one(body)
    assert result.outcome is Outcome.ERROR
    assert result.tracking_number == NUMBER
    assert fragment in result.message


# --- never raises ---------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)


def some_of(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Objects with any subset of ``fields``, or any JSON at all in their place."""
    return st.fixed_dictionaries({}, optional=fields) | JSON


DATES = st.sampled_from(
    ["2024-11-06T10:42:00", "2024-11-06T10:42:00Z", "2024-11-06T10:42:00-05:00", "2024-11-06",
     "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59", ""]
) | JSON  # fmt: skip
CODES = st.sampled_from(sorted(EXPECTED_CODES)) | JSON
PLACE = some_of(city=JSON, postalCode=JSON,
                stateOrProvinceCode=st.sampled_from(["TN", "ON", "", "zz"]) | JSON,
                countryCode=st.sampled_from(["US", "CA", "jp", "USA", ""]) | JSON)  # fmt: skip
SCAN = some_of(date=DATES, eventType=CODES, derivedStatusCode=CODES, exceptionCode=JSON,
               eventDescription=st.text(max_size=40) | JSON, exceptionDescription=JSON,
               scanLocation=PLACE, delayDetail=JSON)  # fmt: skip
PARCEL_SHAPES = some_of(
    scanEvents=st.lists(SCAN, max_size=5), latestStatusDetail=JSON, error=JSON,
    dateAndTimes=st.lists(some_of(type=st.sampled_from(["ESTIMATED_DELIVERY", "COMMITMENT"]),
                                  dateTime=DATES), max_size=3),
    estimatedDeliveryTimeWindow=some_of(window=some_of(begins=DATES, ends=DATES)),
    recipientInformation=some_of(address=PLACE), serviceDetail=JSON, trackingNumberInfo=JSON,
)  # fmt: skip
ENTRIES = some_of(trackingNumber=st.sampled_from([NUMBER, OTHER, "7946 1234 5672"]) | JSON,
                  trackResults=st.lists(PARCEL_SHAPES, max_size=3) | JSON)  # fmt: skip
BODIES = some_of(output=some_of(completeTrackResults=st.lists(ENTRIES, max_size=3) | JSON),
                 errors=JSON)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES, numbers=st.lists(st.sampled_from([NUMBER, OTHER, " x ", ""]), min_size=1,
                                     max_size=3, unique=True))  # fmt: skip
def test_parse_response_never_raises(body: object, numbers: list[str]) -> None:
    results = parse_response(numbers, body)
    assert list(results) == numbers
    for number, result in results.items():
        assert isinstance(result, TrackResult)
        assert result.tracking_number == number
        assert all(e.happened_at.tzinfo is UTC for e in result.events)
        times = [e.happened_at for e in result.events]
        assert times == sorted(times)
