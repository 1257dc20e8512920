"""PostNord: status table and the pure parser, on hand-written bodies shaped like its answers."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carriers.base import Outcome, TrackResult
from carriers.postnord.parse import fault_result, parse_response, parse_timestamp
from carriers.postnord.statuses import (
    EVENT_CODES,
    ITEM_STATUSES,
    SHIPMENT_ONLY_STATUSES,
    map_status,
    status_for_item_status,
)
from tracker.domain import Status
from tracker.text import MAX_TEXT

NUMBER = "UA482019374SE"


def event(time: str, status: str, code: str, text: str, **location: str) -> dict[str, Any]:
    return {
        "eventTime": time,
        "eventCode": code,
        "status": status,
        "eventDescription": text,
        "location": {"locationId": "1", "locationType": "HUB", **location},
    }


# A small parcel from Germany to a Gothenburg locker, events oldest first, mixed time shapes.
LOCKER_EVENTS = [
    event("2024-03-11T18:20:00+01:00", "INFORMED", "EDI_INFORMED",
          "The sender has notified us about the shipment"),
    event("2024-03-12T08:05:00Z", "EN_ROUTE", "PICKED_UP",
          "The shipment item has been collected from the sender",
          city="Hamburg", countryCode="DE", postcode="20095"),
    event("2024-03-13T02:40:00", "EN_ROUTE", "TERMINAL_SORTED",
          "The shipment item has been sorted at the terminal",
          displayName="Terminal Hallsberg", countryCode="SE"),
    event("2024-03-13T07:30:00", "EN_ROUTE", "77", "The shipment item is out for delivery",
          city="Göteborg", country="Sweden", postcode="41101"),
    event("2024-03-13T12:15:00", "AVAILABLE_FOR_DELIVERY_PAR_LOC", "78",
          "The shipment item is available in the parcel locker", city="Göteborg",
          countryCode="se"),
]  # fmt: skip
LOCKER_PARCEL: dict[str, Any] = {"TrackingInformationResponse": {"shipments": [{
    "shipmentId": "70716503914215327",
    "status": "AVAILABLE_FOR_DELIVERY",
    "statusText": {"header": "Ready for pickup", "body": "At the parcel locker"},
    "service": {"code": "17", "name": "MyPack Collect", "sourceSystem": "X"},
    "consignee": {"address": {"countryCode": "SE", "city": "Göteborg"}},
    "estimatedTimeOfArrival": "2024-03-14T16:00:00",
    "items": [
        {"itemId": "00373500489531200011", "status": "EN_ROUTE",
         "events": [event("2024-03-10T09:00:00", "EN_ROUTE", "X", "Other item")]},
        {"itemId": NUMBER, "status": "AVAILABLE_FOR_DELIVERY_PAR_LOC",
         "eventStatus": "AVAILABLE_FOR_DELIVERY",
         "statusText": {"header": "Your parcel is in the locker"}, "events": LOCKER_EVENTS},
    ],
}]}}  # fmt: skip


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# --- status table ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("CREATED", Status.LABEL_PURCHASED), ("INFORMED", Status.LABEL_PURCHASED),
        ("EN_ROUTE", Status.IN_TRANSIT), ("AVAILABLE_FOR_DELIVERY", Status.READY_FOR_PICKUP),
        ("AVAILABLE_FOR_DELIVERY_PAR_LOC", Status.READY_FOR_PICKUP),
        ("DELIVERED", Status.DELIVERED), ("DELAYED", Status.DELAYED),
        ("EXPECTED_DELAY", Status.DELAYED), ("DELIVERY_IMPOSSIBLE", Status.ATTEMPTED_DELIVERY),
        ("DELIVERY_REFUSED", Status.FAILURE), ("RETURNED", Status.FAILURE),
        ("STOPPED", Status.FAILURE), ("OTHER", None), ("SPLIT", None), ("TELEPORTED", None),
        ("", None), ("en_route", Status.IN_TRANSIT),
        (" Delivery-Impossible ", Status.ATTEMPTED_DELIVERY),
    ],
)  # fmt: skip
def test_item_status_table(code: str, expected: Status | None) -> None:
    assert status_for_item_status(code) is expected
    assert map_status(code) is expected


def test_tables_cover_the_spec_enums_exactly() -> None:
    item_status_enum = {
        "CREATED", "AVAILABLE_FOR_DELIVERY", "AVAILABLE_FOR_DELIVERY_PAR_LOC", "DELAYED",
        "DELIVERED", "DELIVERY_IMPOSSIBLE", "DELIVERY_REFUSED", "EXPECTED_DELAY", "INFORMED",
        "EN_ROUTE", "OTHER", "RETURNED", "STOPPED",
    }  # fmt: skip
    assert set(ITEM_STATUSES) == item_status_enum
    assert set(SHIPMENT_ONLY_STATUSES) == {"SPLIT"}


@pytest.mark.parametrize(
    ("status", "code", "text", "expected"),
    [
        ("EN_ROUTE", "PICKED_UP", "", Status.CARRIER_PICKED_UP),
        ("EN_ROUTE", "LOADED_FOR_DELIVERY", "", Status.OUT_FOR_DELIVERY),
        ("EN_ROUTE", "TERMINAL_SORTED", "The shipment item is out for delivery",
         Status.IN_TRANSIT),
        ("EN_ROUTE", "CUSTOMS_PROCESSING", "", Status.IN_TRANSIT),
        ("EN_ROUTE", "EDI_INFORMED", "", Status.IN_TRANSIT),
        ("EN_ROUTE", "77", "The shipment item is out for delivery", Status.OUT_FOR_DELIVERY),
        ("EN_ROUTE", "", "Loaded onto the delivery vehicle", Status.OUT_FOR_DELIVERY),
        ("EN_ROUTE", "", "On its way to the recipient with our driver", Status.OUT_FOR_DELIVERY),
        ("EN_ROUTE", "", "The shipment item has been picked up", Status.CARRIER_PICKED_UP),
        ("EN_ROUTE", "", "Dropped off by sender at a service point", Status.CARRIER_PICKED_UP),
        ("EN_ROUTE", "", "The shipment item has been received from the sender",
         Status.CARRIER_PICKED_UP),
        ("EN_ROUTE", "", "The shipment item has arrived at the terminal", Status.IN_TRANSIT),
        ("DELIVERED", "PICKED_UP", "picked up by the recipient", Status.DELIVERED),
        ("AVAILABLE_FOR_DELIVERY", "", "Can be picked up at the service point",
         Status.READY_FOR_PICKUP),
        ("OTHER", "LOADED_FOR_DELIVERY", "out for delivery", None),
        (None, "PICKED_UP", "", Status.CARRIER_PICKED_UP),
        (None, "", "Out for delivery", Status.OUT_FOR_DELIVERY),
        (None, "TERMINAL_SORTED", "", None),
        (None, "", "Sorted", None),
        ("UNHEARD_OF", "PICKED_UP", "out for delivery", None),
        (7, "PICKED_UP", "", Status.CARRIER_PICKED_UP),
    ],
)  # fmt: skip
def test_en_route_scans_are_refined_by_code_then_words(
    status: object, code: str, text: str, expected: Status | None
) -> None:
    assert map_status(status, code, text) is expected


# --- timestamps -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "country", "expected", "source"),
    [
        ("2024-07-03T10:00:00", "SE", at(2024, 7, 3, 8), "local:Europe/Stockholm"),
        ("2024-01-03T10:00:00", "SE", at(2024, 1, 3, 9), "local:Europe/Stockholm"),
        ("2024-07-03T10:00:00", "dk", at(2024, 7, 3, 8), "local:Europe/Copenhagen"),
        ("2024-07-03T10:00:00", "NO", at(2024, 7, 3, 8), "local:Europe/Oslo"),
        ("2024-07-03T10:00:00", "FI", at(2024, 7, 3, 7), "local:Europe/Helsinki"),
        ("2024-01-03T10:00", "FI", at(2024, 1, 3, 8), "local:Europe/Helsinki"),
        ("2024-03-31T02:30:00", "SE", at(2024, 3, 31, 1, 30), "local:Europe/Stockholm"),
        ("2024-07-03T10:00:00", "US", at(2024, 7, 3, 10), "local:assumed-utc"),
        ("2024-07-03T10:00:00", None, at(2024, 7, 3, 10), "local:assumed-utc"),
        ("2024-07-03T10:00:00+02:00", "FI", at(2024, 7, 3, 8), "offset"),
        ("2024-07-03T10:00:00.500-04:00", None, datetime(2024, 7, 3, 14, 0, 0, 500000, UTC),
         "offset"),
        ("2024-07-03T10:00:00Z", "SE", at(2024, 7, 3, 10), "utc"),
        ("2024-07-03", "SE", at(2024, 7, 3, 10), "local:date-only:Europe/Stockholm"),
    ],
)  # fmt: skip
def test_timestamps_become_the_right_utc_instant(
    stamp: str, country: str | None, expected: datetime, source: str
) -> None:
    assert parse_timestamp(stamp, country) == (expected, source)


@pytest.mark.parametrize(
    "stamp", ["", "igår", "2024-02-30T10:00:00", "0001-01-01T00:30:00+01:00", 1720000000, None]
)
def test_unreadable_timestamps_are_none(stamp: object) -> None:
    assert parse_timestamp(stamp, "SE") is None


# --- whole answers --------------------------------------------------------------------------


def test_locker_parcel_is_read_from_the_asked_item_oldest_first_in_utc() -> None:
    result = parse_response(NUMBER, LOCKER_PARCEL)

    assert result.outcome is Outcome.FOUND
    assert [e.status for e in result.events] == [
        Status.LABEL_PURCHASED, Status.CARRIER_PICKED_UP, Status.IN_TRANSIT,
        Status.OUT_FOR_DELIVERY, Status.READY_FOR_PICKUP,
    ]  # fmt: skip
    stockholm = "local:Europe/Stockholm"
    assert [(e.happened_at, e.time_source) for e in result.events] == [
        (at(2024, 3, 11, 17, 20), "offset"), (at(2024, 3, 12, 8, 5), "utc"),
        (at(2024, 3, 13, 1, 40), stockholm), (at(2024, 3, 13, 6, 30), stockholm),
        (at(2024, 3, 13, 11, 15), stockholm),
    ]  # fmt: skip
    assert [e.location for e in result.events] == [
        "", "Hamburg, 20095, DE", "Terminal Hallsberg, SE", "Göteborg, 41101, SE", "Göteborg, SE",
    ]  # fmt: skip
    pickup = result.events[1]
    assert pickup.carrier_code == "PICKED_UP"
    assert pickup.message == "The shipment item has been collected from the sender"
    assert pickup.extra == {"status": "EN_ROUTE", "locationType": "HUB"}
    assert result.estimated_delivery_at == at(2024, 3, 14, 15)  # Swedish local time
    assert result.raw_status == "AVAILABLE_FOR_DELIVERY_PAR_LOC/AVAILABLE_FOR_DELIVERY"
    assert result.message == "Your parcel is in the locker"
    assert result.extra == {
        "skipped_events": 0, "items": 2, "shipment_id": "70716503914215327",
        "item_id": NUMBER, "service": "MyPack Collect", "shipment_status": "AVAILABLE_FOR_DELIVERY",
    }  # fmt: skip


def test_shipment_id_reads_the_first_item_and_the_shipment_texts() -> None:
    body = copy.deepcopy(LOCKER_PARCEL)
    shipment = body["TrackingInformationResponse"]["shipments"][0]
    del shipment["items"][0]["status"]
    result = parse_response("707 1650 3914 2153 27", body)
    assert [e.message for e in result.events] == ["Other item"]
    assert result.raw_status == "AVAILABLE_FOR_DELIVERY"
    assert result.message == "Ready for pickup: At the parcel locker"


def test_eta_prefers_the_item_and_drops_to_public_time_of_arrival() -> None:
    body = copy.deepcopy(LOCKER_PARCEL)
    shipment = body["TrackingInformationResponse"]["shipments"][0]
    item = shipment["items"][1]
    item["estimatedTimeOfArrival"] = "2024-03-15T09:00:00Z"
    assert parse_response(NUMBER, body).estimated_delivery_at == at(2024, 3, 15, 9)
    del item["estimatedTimeOfArrival"], shipment["estimatedTimeOfArrival"]
    shipment["publicTimeOfArrival"] = "2024-03-16"
    assert parse_response(NUMBER, body).estimated_delivery_at == at(2024, 3, 16, 11)  # noon, CET
    shipment["publicTimeOfArrival"] = "soon"
    assert parse_response(NUMBER, body).estimated_delivery_at is None


def test_delivery_date_is_kept_and_no_items_is_still_found() -> None:
    body = {"TrackingInformationResponse": {"shipments": [{
        "shipmentId": NUMBER, "status": "INFORMED", "deliveryDate": "2024-05-02T13:00:00",
        "deliveryPoint": {"locationId": "9", "locationType": "SERVICE_POINT", "countryCode": "NO"},
    }]}}  # fmt: skip
    result = parse_response(NUMBER, body)
    assert (result.outcome, result.events, result.raw_status) == (Outcome.FOUND, (), "INFORMED")
    assert result.extra["delivered_at"] == "2024-05-02T11:00:00+00:00"  # Oslo, summer time
    assert result.extra["items"] == 0


def test_garbage_in_one_event_skips_or_degrades_only_that_event() -> None:
    body = copy.deepcopy(LOCKER_PARCEL)
    events = body["TrackingInformationResponse"]["shipments"][0]["items"][1]["events"]
    events[1:1] = [
        "not an event",
        {"eventTime": 1710000000, "status": "DELIVERED", "eventCode": "D"},
        {"eventTime": "the other day", "status": "DELIVERED"},
        {"eventTime": "2024-03-12T09:00:00Z", "status": ["EN_ROUTE"], "eventCode": 5,
         "eventDescription": {"en": "x"}, "location": "Malmö"},
        {"eventTime": "2024-03-12T10:00:00Z", "status": "EN_ROUTE",
         "location": {"countryCode": 46, "city": None, "postcode": 21120}},
    ]  # fmt: skip
    result = parse_response(NUMBER, body)

    assert result.outcome is Outcome.FOUND
    assert result.extra["skipped_events"] == 3
    assert [e.status for e in result.events] == [
        Status.LABEL_PURCHASED, Status.CARRIER_PICKED_UP, None, Status.IN_TRANSIT,
        Status.IN_TRANSIT, Status.OUT_FOR_DELIVERY, Status.READY_FOR_PICKUP,
    ]  # fmt: skip
    degraded = result.events[2]
    assert (degraded.carrier_code, degraded.message, degraded.location) == ("", "", "")


def test_events_listed_out_of_order_are_sorted_and_ties_keep_postnords_order() -> None:
    body = {"TrackingInformationResponse": {"shipments": [{"shipmentId": NUMBER, "items": [{
        "itemId": NUMBER, "events": [
            event("2024-03-13T12:00:00Z", "DELIVERED", "D", "Delivered"),
            event("2024-03-13T09:00:00Z", "EN_ROUTE", "", "Out for delivery"),
            event("2024-03-13T12:00:00Z", "DELIVERED", "D2", "Delivered, signed"),
        ]}]}]}}  # fmt: skip
    result = parse_response(NUMBER, body)
    assert [e.carrier_code for e in result.events] == ["", "D", "D2"]


# --- not found, invalid, errors --------------------------------------------------------------


def test_empty_shipments_are_not_found_with_or_without_a_fault() -> None:
    plain = {"TrackingInformationResponse": {"shipments": []}}
    assert parse_response(NUMBER, plain) == TrackResult.not_found(
        NUMBER, "PostNord returned no shipments for this number"
    )
    with_fault = {"TrackingInformationResponse": {"shipments": [], "compositeFault": {"faults": [
        {"faultCode": "notFound", "explanationText": "No shipment found"}]}}}  # fmt: skip
    assert parse_response(NUMBER, with_fault) == TrackResult.not_found(NUMBER, "No shipment found")
    missing = {"TrackingInformationResponse": {}}
    assert parse_response(NUMBER, missing).outcome is Outcome.NOT_FOUND


def test_identifier_fault_is_invalid_and_a_request_fault_is_an_error() -> None:
    def faulty(code: str, text: str) -> dict[str, Any]:
        fault = {"faultCode": code, "explanationText": text,
                 "paramValues": [{"param": "id", "value": "x"}]}  # fmt: skip
        return {"TrackingInformationResponse": {"shipments": [],
                                                "compositeFault": {"faults": [fault]}}}  # fmt: skip

    assert parse_response(NUMBER, faulty("invalidIdentifier", "Invalid identifier")) == (
        TrackResult(NUMBER, Outcome.INVALID, message="Invalid identifier")
    )
    locale = parse_response(NUMBER, faulty("invalidLocale", "Invalid locale"))
    assert locale == TrackResult.error(NUMBER, "PostNord invalidLocale: Invalid locale")


def test_error_response_bodies_by_http_status() -> None:
    bad_id = {"message": "Bad request", "compositeFault": {"faults": [
        {"faultCode": "INVALID_ID", "explanationText": "Identifier too short"}]}}  # fmt: skip
    assert fault_result(NUMBER, bad_id, 400) == TrackResult(
        NUMBER, Outcome.INVALID, message="Identifier too short"
    )
    gone = {"message": "Shipment not found"}
    assert fault_result(NUMBER, gone, 404) == TrackResult.not_found(NUMBER, "Shipment not found")
    assert fault_result(NUMBER, gone, 400) == TrackResult.error(
        NUMBER, "PostNord HTTP 400: Shipment not found"
    )
    assert fault_result(NUMBER, "<html>", 404) is None
    assert fault_result(NUMBER, {"compositeFault": {"faults": [1, {}]}}, 404) is None
    bare = parse_response(NUMBER, {"message": "Query parameter missing"})
    assert bare == TrackResult.error(NUMBER, "PostNord error: Query parameter missing")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (None, "not a JSON object (got NoneType)"),
        ([LOCKER_PARCEL], "not a JSON object (got list)"),
        ("<html>", "not a JSON object (got str)"),
        ({"shipments": []}, "no 'TrackingInformationResponse'"),
        ({"TrackingInformationResponse": []}, "'TrackingInformationResponse' is not an object"),
        ({"TrackingInformationResponse": {"shipments": {"shipmentId": NUMBER}}},
         "'shipments' is not a list"),
        ({"TrackingInformationResponse": {"shipments": [1, "two"]}}, "no shipment objects"),
    ],
)  # fmt: skip
def test_bodies_of_the_wrong_shape_are_an_error_result(body: object, fragment: str) -> None:
    result = parse_response(NUMBER, body)
    assert result.outcome is Outcome.ERROR
    assert result.tracking_number == NUMBER
    assert fragment in result.message


# --- never raises ---------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda kid: st.lists(kid, max_size=4) | st.dictionaries(st.text(max_size=9), kid, max_size=4),
    max_leaves=25,
)  # fmt: skip
TIMES = st.sampled_from(
    ["2024-03-13T12:15:00", "2024-03-13T12:15:00Z", "2024-03-13T12:15:00+01:00", "2024-03-13",
     "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59", ""]
) | JSON  # fmt: skip
STATUSES = st.sampled_from([*ITEM_STATUSES, "SPLIT"]) | JSON


def opt(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


LOCATION = opt(
    countryCode=st.sampled_from(["SE", "dk", "US", "", "SWE"]) | JSON,
    country=st.sampled_from(["Sverige", "Norway"]) | JSON, city=JSON, displayName=JSON,
    postcode=JSON, locationType=JSON,
)  # fmt: skip
EVENT = opt(
    eventTime=TIMES, status=STATUSES, eventCode=st.sampled_from([*EVENT_CODES, "77"]) | JSON,
    eventDescription=st.text(max_size=40) | JSON, location=LOCATION | JSON, localEventCode=JSON,
)  # fmt: skip
FAULT = opt(faultCode=st.sampled_from(["invalidIdentifier", "notFound"]) | JSON,
            explanationText=JSON)  # fmt: skip
FAULTS = opt(faults=st.lists(FAULT | JSON, max_size=3) | JSON) | JSON
ITEM = opt(
    itemId=st.sampled_from([NUMBER, NUMBER.lower()]) | JSON, status=STATUSES,
    eventStatus=STATUSES, events=st.lists(EVENT | JSON, max_size=5),
    estimatedTimeOfArrival=TIMES, deliveryDate=TIMES, statusText=JSON,
)  # fmt: skip
SHIPMENT = opt(
    shipmentId=st.sampled_from([NUMBER, "7071"]) | JSON, status=STATUSES,
    items=st.lists(ITEM | JSON, max_size=3) | JSON, estimatedTimeOfArrival=TIMES,
    publicTimeOfArrival=TIMES, deliveryPoint=LOCATION | JSON,
    consignee=opt(address=LOCATION) | JSON, statusText=JSON, service=JSON,
)  # fmt: skip
INFO = opt(shipments=st.lists(SHIPMENT | JSON, max_size=3) | JSON, compositeFault=FAULTS)
BODIES = JSON | st.fixed_dictionaries({"TrackingInformationResponse": INFO | JSON}) | opt(
    message=JSON, compositeFault=FAULTS)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(BODIES, st.sampled_from([NUMBER, "7071", " x "]), st.sampled_from([400, 404]))
def test_parse_response_never_raises(body: object, number: str, http: int) -> None:
    fault = fault_result(number, body, http)
    assert fault is None or fault.tracking_number == number
    result = parse_response(number, body)
    assert isinstance(result, TrackResult)
    assert result.tracking_number == number
    assert all(e.happened_at.tzinfo is UTC for e in result.events)
    assert [e.happened_at for e in result.events] == sorted(e.happened_at for e in result.events)


def test_many_long_faults_make_one_bounded_message() -> None:
    """Each fault's text is cut to MAX_TEXT; the message joining them is cut too."""
    faults = [{"faultCode": f"fault{n}", "explanationText": "x" * 450} for n in range(5)]
    body = {"compositeFault": {"faults": faults}}
    result = fault_result(NUMBER, body, 400)
    assert result is not None
    assert result.outcome is Outcome.ERROR
    assert result.message.startswith("PostNord fault0, fault1")
    assert len(result.message) == MAX_TEXT
    missing = fault_result(NUMBER, body, 404)
    assert missing is not None
    assert missing.outcome is Outcome.NOT_FOUND
    assert len(missing.message) == MAX_TEXT
