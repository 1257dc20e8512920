"""UPS: status table, times and the pure parser, on hand-written bodies shaped like UPS's."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carriers.base import Outcome, TrackResult
from carriers.ups.parse import error_result, parse_activity, parse_response
from carriers.ups.statuses import (
    FALLBACK,
    GENERIC_STATUS_CODES,
    SCAN_CODES,
    STATUS_CODES,
    TYPE_DEFAULTS,
    map_status,
)
from carriers.ups.times import activity_moment, parse_offset, parse_time, zone_for_place
from tests.fixtures.ups.bodies import GROUND, NUMBER, activity, at, place
from tests.fixtures.ups.strategies import BODIES
from tracker.domain import Status
from tracker.text import MAX_TEXT

A = Status  # keeps the tables below on one line each
# What every published package status code must read as, written out independently of the table.
STATUS_CODE_EXPECTATIONS: dict[str, Status | None] = {
    "000": None, "003": A.LABEL_PURCHASED, "005": A.IN_TRANSIT, "006": A.OUT_FOR_DELIVERY,
    "007": A.FAILURE, "010": A.IN_TRANSIT, "011": A.DELIVERED, "012": A.IN_TRANSIT,
    "013": A.DELAYED, "014": A.IN_TRANSIT, "016": A.DELAYED, "017": A.READY_FOR_PICKUP,
    "018": None, "019": A.DELAYED, "020": None, "021": A.OUT_FOR_DELIVERY,
    "022": A.ATTEMPTED_DELIVERY, "023": A.ATTEMPTED_DELIVERY, "024": A.ATTEMPTED_DELIVERY,
    "025": A.IN_TRANSIT, "026": A.DELIVERED, "027": None, "028": None, "029": A.DELAYED,
    "030": A.DELAYED, "032": A.DELAYED, "033": None, "034": A.FAILURE, "035": A.FAILURE,
    "036": A.FAILURE, "037": A.FAILURE, "038": A.CARRIER_PICKED_UP, "039": A.IN_TRANSIT,
    "040": A.READY_FOR_PICKUP, "041": None, "042": None, "043": None, "044": A.IN_TRANSIT,
    "045": A.LABEL_PURCHASED, "046": A.DELAYED, "047": A.DELAYED, "048": A.DELAYED,
    "049": A.DELAYED, "050": A.DELAYED, "051": A.DELAYED, "052": A.DELAYED, "053": A.DELAYED,
    "054": None, "055": A.DELAYED, "056": None, "057": A.IN_TRANSIT, "058": A.DELAYED,
    "059": A.DELAYED, "060": A.ATTEMPTED_DELIVERY, "061": A.ATTEMPTED_DELIVERY,
    "062": A.ATTEMPTED_DELIVERY, "063": None, "064": A.FAILURE, "065": None,
    "066": A.ATTEMPTED_DELIVERY, "067": A.FAILURE, "068": A.FAILURE, "069": A.FAILURE,
}  # fmt: skip

TYPE_EXPECTATIONS: dict[str, Status | None] = {
    "M": A.LABEL_PURCHASED, "MV": A.FAILURE, "P": A.CARRIER_PICKED_UP, "I": A.IN_TRANSIT,
    "O": A.OUT_FOR_DELIVERY, "X": A.DELAYED, "D": A.DELIVERED, "RS": A.FAILURE,
    "DO": A.IN_TRANSIT, "DD": A.IN_TRANSIT, "W": A.IN_TRANSIT, "NA": None,
}  # fmt: skip


# --- status table ---------------------------------------------------------------------------


def test_every_published_status_code_is_in_the_table() -> None:
    assert set(STATUS_CODES) == set(STATUS_CODE_EXPECTATIONS)
    assert set(STATUS_CODES) >= GENERIC_STATUS_CODES


@pytest.mark.parametrize(("status_code", "expected"), list(STATUS_CODE_EXPECTATIONS.items()))
def test_status_code_alone(status_code: str, expected: Status | None) -> None:
    assert map_status(None, status_code) is expected


@pytest.mark.parametrize(("type_", "expected"), list(TYPE_EXPECTATIONS.items()))
def test_type_alone(type_: str, expected: Status | None) -> None:
    assert set(TYPE_DEFAULTS) == set(TYPE_EXPECTATIONS)
    assert map_status(type_) is expected
    assert map_status(type_.lower(), "") is expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [("MP", A.LABEL_PURCHASED), ("PU", A.CARRIER_PICKED_UP), ("OT", A.OUT_FOR_DELIVERY),
     ("OF", A.OUT_FOR_DELIVERY), ("OD", A.OUT_FOR_DELIVERY)],
)  # fmt: skip
def test_scan_codes_refine_a_generic_in_transit(code: str, expected: Status) -> None:
    assert set(SCAN_CODES) == {"MP", "PU", "OT", "OF", "OD"}
    assert map_status("I", "005", code) is expected
    assert map_status("I", "", code.lower()) is expected
    assert map_status("I", "005", "AR") is Status.IN_TRANSIT


@pytest.mark.parametrize(
    ("type_", "status_code", "code", "expected"),
    [
        ("X", "022", "48", A.ATTEMPTED_DELIVERY),  # exception refined by statusCode
        ("X", "017", "ZP", A.READY_FOR_PICKUP),
        ("X", "040", "", A.READY_FOR_PICKUP),
        ("X", "052", "", A.DELAYED),
        ("X", "064", "", A.FAILURE),
        ("X", "034", "", A.FAILURE),
        ("X", "027", "", None),  # a request: no status, though the type is an exception
        ("X", "999", "", A.DELAYED),  # unknown detail: the type decides
        ("D", "034", "", A.FAILURE),  # "delivered" back to the sender
        ("D", "011", "FS", A.DELIVERED),
        ("D", "005", "", A.DELIVERED),  # a generic code never overrides the type
        ("I", "000", "", A.IN_TRANSIT),
        ("P", "010", "", A.CARRIER_PICKED_UP),
        ("MV", "", "", A.FAILURE),
        # A label code under a later type: UPS's own example ("released by the customs agency").
        ("X", "003", "SR", A.DELAYED),
        ("I", "045", "", A.IN_TRANSIT),
        ("D", "003", "", A.DELIVERED),
        ("M", "003", "", A.LABEL_PURCHASED),
        ("Q", "003", "", A.LABEL_PURCHASED),  # an unknown type says nothing: the code decides
        ("NA", "003", "", A.LABEL_PURCHASED),
        ("I", "21", "", A.OUT_FOR_DELIVERY),  # leading zero dropped
        ("I", 21, "", A.OUT_FOR_DELIVERY),  # a number instead of a string
        (" i ", " 038 ", "", A.CARRIER_PICKED_UP),
        ("Q", "", "", FALLBACK),  # unknown type, nothing else known: no status
        ("", "", "", None),
        ("", "005", "", A.IN_TRANSIT),  # no type: a generic code says what it says
        (None, None, None, None),
        (["I"], {"x": 1}, 7, None),
        ("I", True, "", A.IN_TRANSIT),
    ],
)
def test_precedence_and_normalization(
    type_: object, status_code: object, code: object, expected: Status | None
) -> None:
    assert map_status(type_, status_code, code) is expected


# --- times ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected", "source"),
    [
        ({"gmtDate": "20240308", "gmtTime": "22:47:00", "date": "20240308", "time": "174700",
          "gmtOffset": "-05:00"}, at(2024, 3, 8, 22, 47), "utc"),
        ({"gmtDate": "20210210", "gmtTime": "74700"}, at(2021, 2, 10, 7, 47), "utc"),
        ({"gmtDate": "20210210", "gmtTime": "0"}, at(2021, 2, 10), "utc"),
        ({"date": "20240311", "time": "233000", "gmtOffset": "-05:00"}, at(2024, 3, 12, 4, 30),
         "offset"),
        ({"date": "20240311", "time": "233000", "gmtOffset": "+0530"}, at(2024, 3, 11, 18),
         "offset"),
        ({"date": "20240311", "time": "930", "gmtOffset": "+1"}, at(2024, 3, 10, 23, 9, 30),
         "offset"),
        ({"gmtDate": "20240311", "gmtTime": "25:00:00", "date": "20240311", "time": "120000",
          "gmtOffset": "+02:00"}, at(2024, 3, 11, 10), "offset"),  # bad GMT time: next rule
        ({"date": "20240312", "time": "081500", "location": place("CHICAGO", "IL", "", "US")},
         at(2024, 3, 12, 13, 15), "local:America/Chicago"),
        ({"date": "20240712", "time": "081500", "location": place("DENVER", "co", "", "us")},
         at(2024, 7, 12, 14, 15), "local:America/Denver"),
        ({"date": "20240110", "time": "120000", "location": place("PHOENIX", "AZ", "", "US")},
         at(2024, 1, 10, 19), "local:America/Phoenix"),
        ({"date": "20240110", "time": "120000", "location": place("TORONTO", "ON", "", "CA")},
         at(2024, 1, 10, 17), "local:America/Toronto"),
        ({"date": "20240710", "time": "120000", "location": place("KOELN", "", "", "DE")},
         at(2024, 7, 10, 10), "local:Europe/Berlin"),
        ({"date": "20240710", "time": "120000",
          "location": {"address": {"country": "JP"}}}, at(2024, 7, 10, 3), "local:Asia/Tokyo"),
        ({"date": "20240710", "time": "120000", "location": place("SOMEWHERE", "", "", "US")},
         at(2024, 7, 10, 12), "local:assumed-utc"),  # US without a state: zone unknown
        ({"date": "20240710", "time": "120000", "location": place("X", "ZZ", "", "US")},
         at(2024, 7, 10, 12), "local:assumed-utc"),
        ({"date": "20240710", "time": "120000", "location": place("X", "", "", "BR")},
         at(2024, 7, 10, 12), "local:assumed-utc"),  # several zones: not guessed
        ({"date": "20240710", "time": "120000"}, at(2024, 7, 10, 12), "local:assumed-utc"),
        ({"date": "20240710", "location": place("X", "", "", "DE")}, at(2024, 7, 10, 10),
         "local:date-only:Europe/Berlin"),
        ({"date": "20240710", "time": "", "gmtOffset": "-04:00"}, at(2024, 7, 10, 16),
         "local:date-only:offset"),
    ],
)  # fmt: skip
def test_activity_times_become_the_right_utc_instant(
    fields: dict[str, Any], expected: datetime, source: str
) -> None:
    assert activity_moment(fields) == (expected, source)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"date": "2024-07-10", "time": "120000"},
        {"date": "20241310", "time": "120000"},
        {"date": 20240710, "time": "120000"},
        {"gmtDate": "20240710"},
        {"date": "", "gmtTime": "12:00:00"},
        {"date": "00010101", "time": "000000", "gmtOffset": "+05:00"},  # before year 1 in UTC
        {"date": "99991231", "time": "235959", "gmtOffset": "-05:00"},  # after year 9999
    ],
)
def test_activities_without_a_readable_date_have_no_moment(fields: dict[str, Any]) -> None:
    assert activity_moment(fields) is None


@pytest.mark.parametrize(
    "text",
    ["", "1234567", "12:5", "12:00:00:00", "24:00:00", "126000", "ab", "١٢٠٠٠٠", None, 120000],
)
def test_unreadable_times(text: object) -> None:
    assert parse_time(text) is None


@pytest.mark.parametrize("text", ["", "05:00", "+18:00", "-5:75", "+123", "UTC", None])
def test_unreadable_offsets(text: object) -> None:
    assert parse_offset(text) is None


def test_zone_lookup_needs_a_state_for_the_us_and_canada() -> None:
    assert str(zone_for_place("US", "TX")) == "America/Chicago"
    assert str(zone_for_place("ca", " bc ")) == "America/Vancouver"
    assert zone_for_place("US") is None
    assert zone_for_place("CA", 5) is None
    assert str(zone_for_place("NL", "ignored")) == "Europe/Amsterdam"
    assert zone_for_place(None) is None


# --- whole answers --------------------------------------------------------------------------


def test_ground_answer_is_read_oldest_first_in_utc() -> None:
    result = parse_response(NUMBER, GROUND)

    assert result.outcome is Outcome.FOUND
    assert [e.status for e in result.events] == [
        Status.LABEL_PURCHASED, Status.CARRIER_PICKED_UP, Status.IN_TRANSIT,
        Status.OUT_FOR_DELIVERY,
    ]  # fmt: skip
    assert [e.happened_at for e in result.events] == [
        at(2024, 3, 8, 14, 31), at(2024, 3, 8, 22, 47), at(2024, 3, 12, 4, 30),
        at(2024, 3, 12, 13, 15),
    ]  # fmt: skip
    assert [e.time_source for e in result.events] == [
        "utc", "utc", "offset", "local:America/Chicago",
    ]  # fmt: skip
    out = result.events[3]
    assert (out.carrier_code, out.message) == ("I/021/OT", "Out For Delivery Today")
    assert (out.city, out.province, out.zip, out.country) == ("CHICAGO", "IL", "60607", "US")
    assert out.extra == {"type": "I", "statusCode": "021", "code": "OT", "slic": "4210"}
    label = result.events[0]
    assert (label.city, label.country, label.location) == (None, "US", "US")
    # 17:00 on the scheduled day, in the destination's zone (Illinois, CDT on 12 March 2024).
    assert result.estimated_delivery_at == at(2024, 3, 12, 22)
    assert result.raw_status == "OT/Out For Delivery Today"
    assert result.message == "Out For Delivery Today"
    assert result.extra == {"skipped_events": 0, "service": "UPS Ground", "tracking_number": NUMBER}


def test_eta_prefers_the_rescheduled_date_and_drops_out_when_delivered() -> None:
    body = copy.deepcopy(GROUND)
    package = body["trackResponse"]["shipment"][0]["package"][0]
    package["deliveryDate"] = [{"type": "SDD", "date": "20240312"},
                               {"type": "RDD", "date": "20240313"}]  # fmt: skip
    package["deliveryTime"] = {"type": "EOD"}
    assert parse_response(NUMBER, body).estimated_delivery_at == at(2024, 3, 13, 17)  # noon CDT

    del package["packageAddress"]  # no destination: the newest scan's place (Chicago)
    package["deliveryTime"] = {"type": "CMT", "endTime": "103000"}
    assert parse_response(NUMBER, body).estimated_delivery_at == at(2024, 3, 13, 15, 30)

    package["deliveryDate"] = [{"type": "DEL", "date": "20240312"}]
    package["deliveryTime"] = {"type": "DEL", "endTime": "121500"}
    assert parse_response(NUMBER, body).estimated_delivery_at is None

    package["deliveryDate"] = [{"type": "SDD", "date": "soon"}, "junk"]
    assert parse_response(NUMBER, body).estimated_delivery_at is None


def test_the_package_with_the_asked_number_is_picked() -> None:
    body = copy.deepcopy(GROUND)
    shipment = body["trackResponse"]["shipment"][0]
    mine = copy.deepcopy(shipment["package"][0])
    other = copy.deepcopy(mine)
    other["trackingNumber"] = "1Z4F7W360393184834"
    other["activity"] = [activity("D", "011", "FS", "DELIVERED", date="20240312",
                                  time="101500", gmtOffset="-05:00")]  # fmt: skip
    shipment["package"] = [other, mine]

    result = parse_response(NUMBER.lower(), body)
    assert result.events[-1].status is Status.OUT_FOR_DELIVERY
    assert result.extra["package_count"] == 2
    fallback = parse_response("1ZUNLISTED0000000", body)
    assert [e.status for e in fallback.events] == [Status.DELIVERED]  # none matches: the first


def test_garbage_in_one_activity_skips_or_degrades_only_that_activity() -> None:
    body = copy.deepcopy(GROUND)
    activities = body["trackResponse"]["shipment"][0]["package"][0]["activity"]
    activities[1:1] = [
        "not an activity",
        {"status": {"type": "I"}, "date": 20240311, "time": "120000"},
        {"status": {"type": "D"}, "date": "last Tuesday"},
        {"status": ["weird"], "date": "20240311", "time": "120000", "location": "Hodgkins"},
        {"status": {"type": 5, "description": {"x": 1}, "code": None}, "date": "20240311",
         "time": "130000", "location": {"address": {"countryCode": 1, "city": None},
                                       "slic": 4210}},
    ]  # fmt: skip
    result = parse_response(NUMBER, body)

    assert result.outcome is Outcome.FOUND
    assert result.extra["skipped_events"] == 3
    assert [e.status for e in result.events] == [
        Status.LABEL_PURCHASED, Status.CARRIER_PICKED_UP, None, None, Status.IN_TRANSIT,
        Status.OUT_FOR_DELIVERY,
    ]  # fmt: skip
    assert parse_activity("x") is None
    degraded = result.events[3]
    assert (degraded.carrier_code, degraded.message, degraded.location) == ("", "", "")
    assert degraded.time_source == "local:assumed-utc"


def test_activities_with_the_same_time_keep_ups_order_reversed() -> None:
    same = {"gmtDate": "20240312", "gmtTime": "15:00:00"}
    body = {"trackResponse": {"shipment": [{"package": [{"activity": [
        activity("D", "011", "FS", "DELIVERED", **same),
        activity("I", "021", "OT", "Out For Delivery Today", **same),
    ]}]}]}}  # fmt: skip
    result = parse_response(NUMBER, body)
    assert [e.status for e in result.events] == [Status.OUT_FOR_DELIVERY, Status.DELIVERED]
    assert result.raw_status == "FS/DELIVERED"  # no currentStatus: the newest activity's


# --- not found, invalid, errors ---------------------------------------------------------------


def test_warnings_without_a_package_are_not_found() -> None:
    body = {"trackResponse": {"shipment": [{
        "inquiryNumber": NUMBER, "userRelation": [],
        "warnings": [{"code": "TW0001", "message": "Tracking Information Not Found"}],
    }]}}  # fmt: skip
    assert parse_response(NUMBER, body) == TrackResult.not_found(
        NUMBER, "Tracking Information Not Found"
    )
    body["trackResponse"]["shipment"][0]["warnings"] = [{"code": "151018", "message": "Bad"}]
    assert parse_response(NUMBER, body) == TrackResult(NUMBER, Outcome.INVALID, message="Bad")
    body["trackResponse"]["shipment"][0]["warnings"] = "none"
    assert parse_response(NUMBER, body).outcome is Outcome.NOT_FOUND
    assert parse_response(NUMBER, {"trackResponse": {"shipment": []}}).outcome is (
        Outcome.NOT_FOUND
    )


@pytest.mark.parametrize(
    ("http_status", "errors", "outcome", "message"),
    [
        (404, [{"code": "151044", "message": "No tracking information available"}],
         Outcome.NOT_FOUND, "No tracking information available"),
        (404, [], Outcome.NOT_FOUND, "Tracking information not found"),
        (None, [{"code": "151044", "message": "Not found"}], Outcome.NOT_FOUND, "Not found"),
        (400, [{"code": "151018", "message": "Invalid tracking number"}], Outcome.INVALID,
         "Invalid tracking number"),
        (400, [{"code": "10400", "message": "Missing transId"}], Outcome.ERROR,
         "UPS HTTP 400: 10400: Missing transId"),
        (None, [{"code": "", "message": "Something odd"}, "junk", {"code": 5}], Outcome.ERROR,
         "UPS error: Something odd"),
        (418, None, Outcome.ERROR, "UPS HTTP 418: no detail"),
    ],
)  # fmt: skip
def test_error_bodies_as_data(
    http_status: int | None, errors: object, outcome: Outcome, message: str
) -> None:
    result = error_result(NUMBER, http_status, {"response": {"errors": errors}})
    assert result is not None
    assert (result.tracking_number, result.outcome, result.message) == (NUMBER, outcome, message)


def test_error_body_in_place_of_a_track_response_is_read() -> None:
    body = {"response": {"errors": [{"code": "151044", "message": "No tracking information"}]}}
    assert parse_response(NUMBER, body).outcome is Outcome.NOT_FOUND
    assert error_result(NUMBER, None, {"nothing": "here"}) is None


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (None, "not a JSON object (got NoneType)"),
        ([GROUND], "not a JSON object (got list)"),
        ("<html>", "not a JSON object (got str)"),
        ({"trackResponse": {"shipment": {"inquiryNumber": NUMBER}}}, "is not a list"),
        ({"trackResponse": "x"}, "is not a list"),
        ({"trackResponse": {"shipment": [1, "two"]}}, "no shipment objects"),
        ({"data": []}, "no 'trackResponse'"),
    ],
)
def test_bodies_of_the_wrong_shape_are_an_error_result(body: object, fragment: str) -> None:
    result = parse_response(NUMBER, body)
    assert result.outcome is Outcome.ERROR
    assert result.tracking_number == NUMBER
    assert fragment in result.message


# --- never raises ---------------------------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=BODIES,
    number=st.sampled_from([NUMBER, "1Z999AA10123456784", " x "]),
    http_status=st.sampled_from([None, 400, 404, 500]),
)
def test_parsing_never_raises(body: object, number: str, http_status: int | None) -> None:
    problem = error_result(number, http_status, body)
    assert problem is None or problem.tracking_number == number
    result = parse_response(number, body)
    assert isinstance(result, TrackResult)
    assert result.tracking_number == number
    assert all(e.happened_at.tzinfo is UTC for e in result.events)
    assert [e.happened_at for e in result.events] == sorted(e.happened_at for e in result.events)


def test_many_long_errors_make_one_bounded_message() -> None:
    """Each error's text is cut to MAX_TEXT; the message joining them is cut too."""
    errors = [{"code": f"1{n}", "message": "x" * 450} for n in range(5)]
    result = error_result(NUMBER, 400, {"response": {"errors": errors}})
    assert result is not None
    assert result.outcome is Outcome.ERROR
    assert result.message.startswith("UPS HTTP 400: 10: xxx")
    assert len(result.message) == MAX_TEXT
    assert result.message.endswith("…")


def test_a_scan_with_three_long_codes_has_a_bounded_carrier_code() -> None:
    scan = activity("I" * 450, "0" * 450, "Q" * 450, "Arrived", gmtDate="20240312",
                    gmtTime="15:00:00", gmtOffset="-05:00")  # fmt: skip
    event = parse_activity(scan)
    assert event is not None
    assert event.carrier_code.startswith("I" * 450 + "/000")
    assert len(event.carrier_code) == MAX_TEXT
