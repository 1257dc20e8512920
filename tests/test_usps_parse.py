"""USPS: status tables and the pure parser, on hand-written bodies shaped like USPS's answers."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carriers.base import Outcome, TrackResult
from carriers.usps.parse import error_result, parse_event, parse_gmt_offset, parse_response
from carriers.usps.statuses import EVENT_CODES, INTERNATIONAL_CODES, map_status
from tracker.domain import Status

NUMBER = "9400100000000000123453"

LABEL, PICKED_UP, TRANSIT = Status.LABEL_PURCHASED, Status.CARRIER_PICKED_UP, Status.IN_TRANSIT
OUT, ATTEMPT, PICKUP = Status.OUT_FOR_DELIVERY, Status.ATTEMPTED_DELIVERY, Status.READY_FOR_PICKUP
DELAYED, DELIVERED, FAILURE = Status.DELAYED, Status.DELIVERED, Status.FAILURE

FIXTURES = Path(__file__).parent / "fixtures" / "usps"
# A Priority Mail parcel from Richmond, VA to Denver, CO, written the ways USPS writes times.
PARCEL: dict[str, Any] = json.loads((FIXTURES / "parcel_details.json").read_text())
NOT_FOUND_BODY: dict[str, Any] = json.loads((FIXTURES / "not_found.json").read_text())


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


# --- status tables --------------------------------------------------------------------------


def expected_table(name: str) -> dict[str, Status | None]:
    """A hand-written table (not derived from statuses.py): a changed row shows here."""
    table: dict[str, list[str]] = json.loads((FIXTURES / "status_tables.json").read_text())[name]
    return {code: None if status == "no status" else Status(status)
            for status, codes in table.items() for code in codes}  # fmt: skip


EXPECTED_CODES = expected_table("event_codes")
EXPECTED_INTERNATIONAL = expected_table("international_codes")
EXPECTED_CATEGORIES = expected_table("categories")


def test_the_code_tables_hold_exactly_the_documented_codes() -> None:
    assert set(EVENT_CODES) == set(EXPECTED_CODES)
    assert set(INTERNATIONAL_CODES) == set(EXPECTED_INTERNATIONAL)


@pytest.mark.parametrize(
    ("code", "expected"), [*EXPECTED_CODES.items(), *EXPECTED_INTERNATIONAL.items()]
)
def test_every_event_code_has_its_status(code: str, expected: Status | None) -> None:
    assert map_status(code, "") is expected
    assert map_status(code.lower(), "") is expected


@pytest.mark.parametrize(
    ("code", "words", "expected"),
    [
        ("01", "Delivered, To Original Sender", FAILURE),
        ("10", "Return to Sender Processed", FAILURE),
        ("09", "Return to Sender", FAILURE),
        ("NT", "In Transit, Arriving Late", DELAYED),
        ("NT", "In Transit to Next Facility", TRANSIT),
        ("10", "Processed through USPS Facility, delayed by weather", DELAYED),
        ("08", "Missent, returning to sender", FAILURE),
        ("10", "Processed through USPS Facility", TRANSIT),
        ("04", "Refused", FAILURE),
        ("DX", "Delivery Status Not Updated", None),  # known, information only
        ("ZZ", "Delivered", None),  # unknown: no status, no guessing from the words
        ("ZZ", "Out for Delivery", None), ("", "Out for Delivery", None),
        (" of ", "", OUT), ("OF", ["not", "text"], OUT),
        (1, "", DELIVERED), ("1", "", DELIVERED),  # zero-padded
        (True, "Delivered", None), ({"code": "01"}, "Delivered", None),
    ],
)  # fmt: skip
def test_codes_and_words_together(code: object, words: object, expected: Status | None) -> None:
    assert map_status(code, words) is expected


# --- times ----------------------------------------------------------------------------------


def event(**fields: object) -> dict[str, object]:
    return {"eventType": "Processed through USPS Facility", "eventCode": "10", **fields}


@pytest.mark.parametrize(
    ("raw", "expected", "source"),
    [
        (event(GMTTimestamp="2024-04-04T14:03:12.041Z", eventTimestamp="2024-04-04T07:03:12",
               GMTOffset="-7:00", eventState="AZ"), at(2024, 4, 4, 14, 3, 12, 41000), "utc"),
        (event(GMTTimestamp="2024-01-15T18:00:00"), at(2024, 1, 15, 18), "utc"),
        (event(GMTTimestamp="2024-01-15T18:00:00+00:00", eventTimestamp="2024-01-15T01:00:00",
               GMTOffset="+9:00"), at(2024, 1, 15, 18), "utc"),  # GMT wins over the rest
        (event(GMTTimestamp="garbage", eventTimestamp="2024-01-15T13:00:00", GMTOffset="-5:00"),
         at(2024, 1, 15, 18), "offset"),
        (event(eventTimestamp="2024-04-04T07:03:12", GMTOffset="-7:00"),
         at(2024, 4, 4, 14, 3, 12), "offset"),
        (event(eventTimestamp="2024-04-04T20:00:00", GMTOffset="+5:30"), at(2024, 4, 4, 14, 30),
         "offset"),
        (event(eventTimestamp="2024-04-04T08:00:00", GMTOffset="-0400"), at(2024, 4, 4, 12),
         "offset"),
        (event(eventTimestamp="2024-04-04T08:00:00Z", GMTOffset="-4:00", eventState="NY"),
         at(2024, 4, 4, 12), "offset"),  # the "Z" is local time; the offset says which
        (event(eventTimestamp="2024-04-04T08:00:00-04:00"), at(2024, 4, 4, 12), "offset"),
        (event(eventTimestamp="2024-07-01T23:40:00", eventState="TN"), at(2024, 7, 2, 4, 40),
         "local:America/Chicago"),
        (event(eventTimestamp="2024-01-01T23:40:00", eventState="tn"), at(2024, 1, 2, 5, 40),
         "local:America/Chicago"),
        (event(eventTimestamp="2024-07-01T12:00:00", eventState="AZ"), at(2024, 7, 1, 19),
         "local:America/Phoenix"),
        (event(eventTimestamp="2024-07-01T12:00:00", eventState="HI"), at(2024, 7, 1, 22),
         "local:Pacific/Honolulu"),
        (event(eventTimestamp="2024-07-01T12:00:00Z", eventState="CA"), at(2024, 7, 1, 19),
         "local:America/Los_Angeles"),
        (event(eventTimestamp="2024-07-01T12:00:00", eventZIP="99501-1234"), at(2024, 7, 1, 20),
         "local:America/Anchorage"),  # no state: the ZIP Code's
        (event(eventTimestamp="2024-07-01T12:00:00", eventState="PR"), at(2024, 7, 1, 16),
         "local:America/Puerto_Rico"),
        (event(eventTimestamp="2024-07-01T12:00:00", eventCountry="GERMANY",
               eventCity="FRANKFURT"), at(2024, 7, 1, 10), "local:Europe/Berlin"),
        (event(eventTimestamp="2024-07-01T12:00:00", eventCountry="CANADA"), at(2024, 7, 1, 12),
         "local:assumed-utc"),  # several zones: not guessed
        (event(eventTimestamp="2024-07-03T09:00:00", eventCountry="CANADA", eventState="ON",
               eventCity="TORONTO"), at(2024, 7, 3, 13), "local:America/Toronto"),  # province
        (event(eventTimestamp="2024-01-03T09:00:00", eventCountry="CA", eventState="bc"),
         at(2024, 1, 3, 17), "local:America/Vancouver"),
        (event(eventTimestamp="2024-07-01T12:00:00", eventCountry="GERMANY", eventState="HE"),
         at(2024, 7, 1, 10), "local:Europe/Berlin"),  # a one-zone country: the state is moot
        (event(eventTimestamp="2024-07-01T12:00:00", eventState="AE"), at(2024, 7, 1, 12),
         "local:assumed-utc"),
        (event(eventTimestamp="2024-07-01T12:00:00"), at(2024, 7, 1, 12), "local:assumed-utc"),
        (event(eventTimestamp="2024-07-01T12:00:00Z"), at(2024, 7, 1, 12), "local:assumed-utc"),
        (event(GMTTimestamp="0001-01-01T00:00:00+05:00", eventTimestamp="2024-07-01T12:00:00",
               eventState="NY"), at(2024, 7, 1, 16), "local:America/New_York"),  # GMT unusable
        (event(eventTimestamp="2024-07-01T12:00:00", GMTOffset="-99:00", eventState="NY"),
         at(2024, 7, 1, 16), "local:America/New_York"),  # an impossible offset is ignored
        (event(eventTimestamp="2024-07-01", GMTOffset="-5:00", eventState="TX"),
         at(2024, 7, 1, 17), "local:date-only:America/Chicago"),
    ],
)  # fmt: skip
def test_scan_times_become_the_right_utc_instant(
    raw: dict[str, object], expected: datetime, source: str
) -> None:
    parsed = parse_event(raw)
    assert parsed is not None
    assert (parsed.happened_at, parsed.time_source) == (expected, source)


@pytest.mark.parametrize(
    "raw",
    [
        event(),
        event(eventTimestamp="yesterday", GMTOffset="-5:00"),
        event(eventTimestamp=1720000000),
        event(eventTimestamp="2024-13-45T00:00:00"),
        event(eventTimestamp="0001-01-01T00:00:00", GMTOffset="+5:00"),
        "not an event",
        None,
    ],
)
def test_scans_without_a_usable_time_are_skipped(raw: object) -> None:
    assert parse_event(raw) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("-7:00", timedelta(hours=-7)), ("+5:30", timedelta(hours=5, minutes=30)),
        ("-0400", timedelta(hours=-4)), ("5", timedelta(hours=5)), ("GMT-5", timedelta(hours=-5)),
        (" -10:00 ", timedelta(hours=-10)), (-7, timedelta(hours=-7)),
        ("-15:00", None), ("+5:75", None), ("abc", None), ("", None), (None, None),
        (True, None), (float("nan"), None), (99, None),
    ],
)  # fmt: skip
def test_gmt_offsets(value: object, expected: timedelta | None) -> None:
    assert parse_gmt_offset(value) == expected


# --- whole answers --------------------------------------------------------------------------


def test_parcel_answer_is_read_oldest_first_in_utc() -> None:
    result = parse_response(NUMBER, PARCEL)

    assert result.outcome is Outcome.FOUND
    assert [e.status for e in result.events] == [LABEL, PICKED_UP, TRANSIT, OUT, DELIVERED]
    assert [e.happened_at for e in result.events] == [
        at(2024, 6, 30, 13), at(2024, 7, 1, 20, 20), at(2024, 7, 3, 4, 40),
        at(2024, 7, 3, 13, 10), at(2024, 7, 3, 20, 5, 0, 250000),
    ]  # fmt: skip
    assert [e.time_source for e in result.events] == [
        "local:America/New_York", "local:America/New_York", "local:America/Chicago", "offset",
        "utc",
    ]  # fmt: skip
    assert [e.carrier_code for e in result.events] == ["GX", "03", "U1", "OF", "01"]
    delivered = result.events[-1]
    assert delivered.message == "Delivered, In/At Mailbox"
    assert (delivered.city, delivered.province, delivered.zip, delivered.country) == (
        "DENVER", "CO", "80202", "US",
    )  # fmt: skip
    assert delivered.extra == {"eventTimestamp": "2024-07-03T14:05:00", "GMTOffset": "-6:00"}
    assert result.events[0].province is None  # USPS gave only the ZIP Code
    assert result.events[0].country == "US"
    assert result.estimated_delivery_at == at(2024, 7, 4, 2)  # 8 pm in Denver
    assert result.raw_status == "Delivered/Delivered, In/At Mailbox"
    assert result.message.startswith("Your item was delivered in or at the mailbox")
    assert result.extra == {"skipped_events": 0, "mail_class": "PRIORITY_MAIL",
                            "tracking_number": NUMBER}  # fmt: skip


@pytest.mark.parametrize("category", [*EXPECTED_CATEGORIES, "ALERT", "Pre_Shipment"])
def test_the_status_category_gives_no_scan_a_status(category: str) -> None:
    body = {"statusCategory": category, "status": "Whatever", "trackingEvents": [
        {"eventType": "Loaded on a truck", "eventCode": "Q7", "GMTTimestamp": "2024-07-03T14:00Z"},
        {"eventType": "Processed through USPS Facility", "eventCode": "10",
         "GMTTimestamp": "2024-07-03T12:00Z"},
    ]}  # fmt: skip
    result = parse_response(NUMBER, body)
    assert [e.status for e in result.events] == [TRANSIT, None]
    assert result.raw_status == f"{category}/Whatever"  # shown, never a status


OLDER_SCAN = {
    "eventType": "In Transit to Next Facility",
    "eventCode": "NT",
    "GMTTimestamp": "2024-07-02T15:00:00Z",
    "eventCity": "CHICAGO",
    "eventState": "IL",
}
NEWER_SCAN = {
    "eventType": "Arrived at USPS Regional Facility",
    "eventCode": "U1",
    "GMTTimestamp": "2024-07-03T14:00:00Z",
    "eventCity": "DENVER",
    "eventState": "CO",
}
ODD_SCAN = {**OLDER_SCAN, "eventCode": "Q7", "eventType": "Delivered, Parcel Locker"}


@pytest.mark.parametrize(
    ("scan", "category_alone", "category_later", "status"),
    [
        (OLDER_SCAN, "Alert", "In Transit", TRANSIT),
        (OLDER_SCAN, "Delivered", "Delivered", TRANSIT),
        (ODD_SCAN, "Delivered", "Delivered", None),  # unknown code: no status, newest or not
    ],
)  # fmt: skip
def test_a_scan_keeps_its_status_and_key_when_a_newer_scan_arrives(
    scan: dict[str, str], category_alone: str, category_later: str, status: Status | None
) -> None:
    alone = parse_response(NUMBER, {"statusCategory": category_alone, "trackingEvents": [scan]})
    later = parse_response(
        NUMBER, {"statusCategory": category_later, "trackingEvents": [NEWER_SCAN, scan]}
    )
    first, again = alone.events[0], later.events[0]
    assert first.happened_at == again.happened_at == at(2024, 7, 2, 15)
    assert first.status is again.status is status
    assert first.dedupe_key == again.dedupe_key  # stored once, written back once


@pytest.mark.parametrize(
    ("field", "value", "time_field", "time_value", "expected"),
    [
        ("expectedDeliveryTimeStamp", "2024-07-04T01:00:00Z", "", "", at(2024, 7, 4, 1)),
        ("expectedDeliveryTimeStamp", "2024-07-03T21:00:00-04:00", "", "", at(2024, 7, 4, 1)),
        ("guaranteedDeliveryTimeStamp", "2024-07-03T19:00:00", "", "", at(2024, 7, 4, 1)),
        ("expectedDeliveryDate", "2024-07-03", "expectedDeliveryTime", "9:00 pm",
         at(2024, 7, 4, 3)),
        ("expectedDeliveryDate", "2024-07-03", "expectedDeliveryTime", "20:30:00",
         at(2024, 7, 4, 2, 30)),
        ("predictedDeliveryDate", "2024-07-03", "predictedDeliveryWindowEndTime", "soon",
         at(2024, 7, 3, 18)),  # unreadable time of day: noon
        ("guaranteedDeliveryDate", "2024-07-03", "", "", at(2024, 7, 3, 18)),
        ("expectedDeliveryTimeStamp", "next week", "", "", None),
        ("expectedDeliveryDate", "2024-07-03T10:00:00", "", "", None),
    ],
)  # fmt: skip
def test_eta_in_the_destinations_zone(
    field: str, value: str, time_field: str, time_value: str, expected: datetime | None
) -> None:
    body = copy.deepcopy(PARCEL)
    del body["expectedDeliveryTimeStamp"], body["destinationState"]  # the ZIP tells: Denver
    body[field] = value
    if time_field:
        body[time_field] = time_value
    assert parse_response(NUMBER, body).estimated_delivery_at == expected


def test_garbage_in_one_event_skips_or_degrades_only_that_event() -> None:
    body = copy.deepcopy(PARCEL)
    body["trackingEvents"][1:1] = [
        "not an event",
        {"eventType": "no time", "eventCode": "10"},
        {"eventCode": "10", "eventTimestamp": {"date": "2024-07-03"}},
        {"eventTimestamp": "2024-07-03T08:00:00", "GMTOffset": "-6:00", "eventCode": ["10"],
         "eventType": 7, "eventCity": None, "eventState": 5, "eventZIP": 80202,
         "eventCountry": {"name": "US"}},
    ]  # fmt: skip
    result = parse_response(NUMBER, body)

    assert result.outcome is Outcome.FOUND
    assert result.extra["skipped_events"] == 3
    assert [e.status for e in result.events] == [LABEL, PICKED_UP, TRANSIT, OUT, None, DELIVERED]
    degraded = result.events[4]
    assert (degraded.carrier_code, degraded.message, degraded.location) == ("", "", "")
    assert degraded.happened_at == at(2024, 7, 3, 14)


def test_scans_at_the_same_time_keep_uspss_order_reversed() -> None:
    body = {"statusCategory": "Delivered", "trackingEvents": [
        {"eventCode": "01", "eventType": "Delivered", "GMTTimestamp": "2024-07-03T09:00:00Z"},
        {"eventCode": "OF", "eventType": "Out for Delivery",
         "GMTTimestamp": "2024-07-03T09:00:00Z"},
    ]}  # fmt: skip
    result = parse_response(NUMBER, body)
    assert [e.status for e in result.events] == [OUT, DELIVERED]


def test_known_number_without_scans_and_the_summary_shape_are_found() -> None:
    bare = parse_response(NUMBER, {"trackingNumber": NUMBER, "statusCategory": "Pre-Shipment",
                                   "status": "Label Created, not yet in system"})  # fmt: skip
    assert (bare.outcome, bare.events, bare.raw_status) == (
        Outcome.FOUND, (), "Pre-Shipment/Label Created, not yet in system",
    )  # fmt: skip
    summary = parse_response(NUMBER, {"trackingNumber": NUMBER, "eventSummaries": [
        3, "Out for Delivery, July 3, 2024, 7:10 am, DENVER, CO 80202"]})  # fmt: skip
    assert (summary.outcome, summary.events) == (Outcome.FOUND, ())
    assert summary.message == "Out for Delivery, July 3, 2024, 7:10 am, DENVER, CO 80202"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (None, "not a JSON object (got NoneType)"), ([PARCEL], "not a JSON object (got list)"),
        ("<html>", "not a JSON object (got str)"), ({"data": []}, "no 'trackingEvents'"),
        ({"trackingEvents": {"eventCode": "01"}}, "'trackingEvents' is not a list"),
        ({"error": {"message": "no code"}}, "USPS answered with an error object"),
    ],
)  # fmt: skip
def test_bodies_of_the_wrong_shape_are_an_error_result(body: object, fragment: str) -> None:
    result = parse_response(NUMBER, body)
    assert result.outcome is Outcome.ERROR
    assert result.tracking_number == NUMBER
    assert fragment in result.message


def test_error_answers_are_data_by_http_status() -> None:
    not_found = TrackResult.not_found(
        NUMBER, "Tracking number not found. The label has no scan yet."
    )
    assert error_result(NUMBER, 404, NOT_FOUND_BODY) == not_found
    assert parse_response(NUMBER, NOT_FOUND_BODY) == not_found  # the body's code decides
    assert error_result(NUMBER, 404, "<html>") == TrackResult.not_found(
        NUMBER, "USPS has no record of this number"
    )
    bad = {"error": {"code": "400", "message": "Bad Request",
                     "errors": [{"title": "Invalid tracking number"}]}}  # fmt: skip
    assert error_result(NUMBER, 400, bad) == TrackResult(
        NUMBER, Outcome.INVALID, message="Bad Request: Invalid tracking number"
    )
    unavailable = error_result(NUMBER, 503, {"error": {"message": "Service Unavailable"}})
    assert unavailable == TrackResult.error(NUMBER, "USPS HTTP 503: Service Unavailable")
    assert error_result(NUMBER, 410, None) == TrackResult.error(NUMBER, "USPS HTTP 410: no detail")
    assert error_result(NUMBER, None, {"error": {"code": "4²4"}}) is None
    assert error_result(NUMBER, 200, {}) is None


# --- never raises ---------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
STAMPS = st.sampled_from(
    ["2024-07-03T09:15:00", "2024-07-03T09:15:00Z", "2024-07-03T09:15:00.123Z",
     "2024-07-03T09:15:00-05:00", "2024-07-03", "0001-01-01T00:00:00+01:00",
     "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59", "0001-01-01T00:00:00", ""]
) | JSON  # fmt: skip
OFFSETS = st.sampled_from(["-7:00", "+14:00", "-12:00", "+5:30", "-0400", "x", ""]) | JSON
CODES = st.sampled_from([*EXPECTED_CODES, *EXPECTED_INTERNATIONAL, "ZZ", ""]) | JSON
STATES = st.sampled_from(["TN", "AZ", "AE", "PR", "", "tx"]) | JSON
EVENT = st.fixed_dictionaries(
    {},
    optional={
        "eventType": st.text(max_size=40) | JSON, "eventCode": CODES, "eventTimestamp": STAMPS,
        "GMTTimestamp": STAMPS, "GMTOffset": OFFSETS, "eventCity": JSON, "eventState": STATES,
        "eventZIP": st.sampled_from(["38118", "99501", "00000", ""]) | JSON,
        "eventCountry": st.sampled_from(["", "GERMANY", "CANADA", "de"]) | JSON,
    },
)  # fmt: skip
DETAILS = st.fixed_dictionaries(
    {},
    optional={
        "trackingNumber": st.just(NUMBER) | JSON,
        "statusCategory": st.sampled_from([*EXPECTED_CATEGORIES, "Alert"]) | JSON,
        "status": JSON, "statusSummary": JSON, "trackingEvents": st.lists(EVENT | JSON, max_size=5)
        | JSON, "expectedDeliveryTimeStamp": STAMPS, "expectedDeliveryDate": STAMPS,
        "expectedDeliveryTime": JSON, "destinationState": STATES, "destinationZIP": JSON,
        "destinationCountryCode": JSON, "eventSummaries": JSON, "error": JSON,
    },
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=JSON | DETAILS, number=st.sampled_from([NUMBER, "SBNOTFOUND1", " x "]))
def test_parse_response_never_raises(body: object, number: str) -> None:
    result = parse_response(number, body)
    assert isinstance(result, TrackResult)
    assert result.tracking_number == number
    assert all(e.happened_at.tzinfo is UTC for e in result.events)
    assert [e.happened_at for e in result.events] == sorted(e.happened_at for e in result.events)
    if result.estimated_delivery_at is not None:
        assert result.estimated_delivery_at.tzinfo is UTC


@settings(max_examples=200, deadline=None)
@given(status=st.integers(min_value=100, max_value=599) | st.none(), body=JSON)
def test_error_result_never_raises(status: int | None, body: object) -> None:
    result = error_result(NUMBER, status, body)
    assert result is None or result.tracking_number == NUMBER
