"""DHL: status table and the pure parser, on hand-written bodies shaped like DHL's answers."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carriers.base import Outcome, TrackResult
from carriers.dhl.parse import parse_response, parse_timestamp, problem_result
from carriers.dhl.statuses import CODE_DEFAULTS, map_status
from tracker.domain import Status

NUMBER = "JJD0099999999"

# A DHL Paket shipment as the Unified API returns it: events newest first, mixed time shapes.
PARCEL_DE: dict[str, Any] = {
    "shipments": [
        {
            "id": NUMBER,
            "service": "parcel-de",
            "origin": {"address": {"countryCode": "DE", "addressLocality": "Bonn"}},
            "destination": {"address": {"countryCode": "NL", "addressLocality": "Amsterdam"}},
            "status": {
                "timestamp": "2024-07-03T09:15:00",
                "statusCode": "transit",
                "status": "The shipment has been loaded onto the delivery vehicle",
                "description": "The shipment has been loaded onto the delivery vehicle",
                "location": {
                    "address": {"countryCode": "NL", "postalCode": "1043 AG",
                                "addressLocality": "Amsterdam"}
                },
            },
            "estimatedTimeOfDelivery": "2024-07-03T18:00:00",
            "events": [
                {
                    "timestamp": "2024-07-03T09:15:00",
                    "statusCode": "transit",
                    "status": "The shipment has been loaded onto the delivery vehicle",
                    "description": "The shipment has been loaded onto the delivery vehicle",
                    "location": {
                        "address": {"countryCode": "NL", "postalCode": "1043 AG",
                                    "addressLocality": "Amsterdam"}
                    },
                },
                {
                    "timestamp": "2024-07-02T23:40:00Z",
                    "statusCode": "transit",
                    "status": "The shipment has been processed in the parcel center",
                    "description": "The shipment has been processed in the parcel center of Köln",
                    "remark": "Hub scan",
                    "location": {"address": {"countryCode": "DE", "addressLocality": "Köln"}},
                },
                {
                    "timestamp": "2024-07-02T14:05:00+02:00",
                    "statusCode": "transit",
                    "status": "The shipment has been picked up",
                    "location": {"address": {"countryCode": "DE", "postalCode": "53113",
                                             "addressLocality": "Bonn"}},
                },
                {
                    "timestamp": "2024-07-01T20:00:00+02:00",
                    "statusCode": "pre-transit",
                    "status": "The instruction data for this shipment have been provided by the "
                    "sender to DHL electronically",
                },
            ],
        }
    ]
}  # fmt: skip


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


# --- status table ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        ("pre-transit", "The instruction data for this shipment have been provided",
         Status.LABEL_PURCHASED),
        ("pre-transit", "Pickup scheduled", Status.LABEL_PURCHASED),
        ("transit", "The shipment has been processed in the parcel center of Leipzig",
         Status.IN_TRANSIT),
        ("transit", "Customs clearance status updated", Status.IN_TRANSIT),
        ("transit", "The shipment has been picked up", Status.CARRIER_PICKED_UP),
        ("transit", "SHIPMENT PICKED UP", Status.CARRIER_PICKED_UP),
        ("transit", "Pickup", Status.CARRIER_PICKED_UP),
        ("transit", "The shipment has been posted by the sender at the retail outlet",
         Status.CARRIER_PICKED_UP),
        ("transit", "Out for delivery", Status.OUT_FOR_DELIVERY),
        ("transit", "With delivery courier", Status.OUT_FOR_DELIVERY),
        ("transit", "The shipment has been loaded onto the delivery vehicle",
         Status.OUT_FOR_DELIVERY),
        ("transit", "The delivery attempt failed", Status.ATTEMPTED_DELIVERY),
        ("transit", "Recipient not home", Status.ATTEMPTED_DELIVERY),
        ("transit", "Delivery attempted; the shipment is available for pick-up at the retail "
         "outlet", Status.ATTEMPTED_DELIVERY),
        ("transit", "The shipment is available for pick-up at the PACKSTATION 105",
         Status.READY_FOR_PICKUP),
        ("transit", "Available for pickup", Status.READY_FOR_PICKUP),
        ("transit", "The shipment has been delivered to the parcel locker",
         Status.READY_FOR_PICKUP),
        ("transit", "Ready for collection at the DHL Service Point", Status.READY_FOR_PICKUP),
        ("transit", "The shipment is delayed due to weather conditions", Status.DELAYED),
        ("transit", "Delay", Status.DELAYED),
        ("transit", "The shipment is being returned to the sender", Status.FAILURE),
        ("delivered", "The shipment has been delivered", Status.DELIVERED),
        ("delivered", "The shipment has been delivered back to the sender", Status.FAILURE),
        ("failure", "The shipment was damaged and cannot be processed further", Status.FAILURE),
        ("failure", "Delivery attempt failed: recipient not at home",
         Status.ATTEMPTED_DELIVERY),
        ("failure", "The shipment could not be delivered", Status.ATTEMPTED_DELIVERY),
        ("failure", "Shipment delayed (strike)", Status.DELAYED),
        ("failure", "Returned to sender", Status.FAILURE),
        ("unknown", "The shipment has been delivered", None),
        ("unknown", "", None),
        ("lost-in-space", "The shipment has been delivered", None),
        ("", "Out for delivery", None),
        ("TRANSIT", "OUT FOR DELIVERY", Status.OUT_FOR_DELIVERY),
        ("Pre_Transit", "", Status.LABEL_PURCHASED),
        (" delivered ", "", Status.DELIVERED),
    ],
)  # fmt: skip
def test_status_table(code: str, text: str, expected: Status | None) -> None:
    assert map_status(code, text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # DHL eCommerce hands parcels to USPS: a post office is on the way, not a pickup counter.
        ("Arrived at Post Office", Status.IN_TRANSIT),
        ("Arrival at Post Office", Status.IN_TRANSIT),
        ("The shipment will be transported to the retail outlet", Status.IN_TRANSIT),
        ("The shipment is on its way to the Packstation", Status.IN_TRANSIT),
        ("The shipment has arrived at the pick-up point", Status.IN_TRANSIT),
        # Still on the van, whatever it is heading for.
        ("The shipment is out for delivery to the Packstation", Status.OUT_FOR_DELIVERY),
        ("Out for delivery to the parcel shop", Status.OUT_FOR_DELIVERY),
        ("The shipment has been loaded onto the delivery vehicle for the service point",
         Status.OUT_FOR_DELIVERY),
    ],
)  # fmt: skip
def test_naming_a_pickup_place_is_not_ready_for_pickup(text: str, expected: Status) -> None:
    assert map_status("transit", text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "The shipment has been delivered to the Packstation 105",
        "The shipment has been deposited in the parcel locker",
        "Delivered to the DHL Parcel Shop",
        "The shipment has been delivered to the post office for collection",
        "The shipment is being held at the retail outlet for pick-up",
        "Held for pickup",
        "The shipment is ready for pick-up at the Post Office",
        "Available for collection at the service point",
        "The shipment can now be collected from the retail outlet",
        "Awaiting collection by the recipient",
    ],
)
def test_words_that_say_the_parcel_can_be_collected_are_ready_for_pickup(text: str) -> None:
    assert map_status("transit", text) is Status.READY_FOR_PICKUP


def test_every_documented_status_code_has_a_default() -> None:
    assert set(CODE_DEFAULTS) == {"pre-transit", "transit", "delivered", "failure", "unknown"}
    assert [map_status(code) for code in CODE_DEFAULTS] == [
        Status.LABEL_PURCHASED, Status.IN_TRANSIT, Status.DELIVERED, Status.FAILURE, None,
    ]  # fmt: skip


def test_status_words_may_come_from_the_description() -> None:
    assert map_status("transit", "SHIPMENT UPDATE", "With delivery courier") is (
        Status.OUT_FOR_DELIVERY
    )


def test_status_code_that_is_not_a_string_maps_to_no_status() -> None:
    assert map_status(7, "Out for delivery") is None
    assert map_status(None, None, {"x": 1}) is None


# --- timestamps -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "country", "expected", "source"),
    [
        ("2018-08-03T00:00:00+02:00", "DE", at(2018, 8, 2, 22), "offset"),
        ("2018-08-03T00:00:00-05:00", None, at(2018, 8, 3, 5), "offset"),
        ("2018-08-03T00:00:00Z", "DE", at(2018, 8, 3), "utc"),
        ("2018-08-03T07:53:47.250Z", None, at(2018, 8, 3, 7, 53, 47, 250000), "utc"),
        ("2018-08-03T00:00:00", "DE", at(2018, 8, 2, 22), "local:Europe/Berlin"),
        ("2018-01-03T00:00:00", "de", at(2018, 1, 2, 23), "local:Europe/Berlin"),
        ("2018-08-03T09:00:00", "JP", at(2018, 8, 3), "local:Asia/Tokyo"),
        ("2018-08-03T09:00:00", "GB", at(2018, 8, 3, 8), "local:Europe/London"),
        ("2018-08-03T09:00:00", "US", at(2018, 8, 3, 9), "local:assumed-utc"),
        ("2018-08-03T09:00:00", None, at(2018, 8, 3, 9), "local:assumed-utc"),
        ("2018-08-03", "DE", at(2018, 8, 3, 10), "local:date-only:Europe/Berlin"),
    ],
)
def test_timestamps_become_the_right_utc_instant(
    stamp: str, country: str | None, expected: datetime, source: str
) -> None:
    assert parse_timestamp(stamp, country) == (expected, source)


@pytest.mark.parametrize(
    "stamp", ["", "yesterday", "2018-13-45T00:00:00", "0001-01-01T00:00:00+05:00", 1533254400, None]
)
def test_unreadable_timestamps_are_none(stamp: object) -> None:
    assert parse_timestamp(stamp, "DE") is None


# --- whole answers --------------------------------------------------------------------------


def test_parcel_answer_is_read_oldest_first_in_utc() -> None:
    result = parse_response(NUMBER, PARCEL_DE)

    assert result.outcome is Outcome.FOUND
    assert [e.status for e in result.events] == [
        Status.LABEL_PURCHASED, Status.CARRIER_PICKED_UP, Status.IN_TRANSIT,
        Status.OUT_FOR_DELIVERY,
    ]  # fmt: skip
    assert [e.happened_at for e in result.events] == [
        at(2024, 7, 1, 18), at(2024, 7, 2, 12, 5), at(2024, 7, 2, 23, 40), at(2024, 7, 3, 7, 15),
    ]  # fmt: skip
    assert [e.time_source for e in result.events] == [
        "offset", "offset", "utc", "local:Europe/Amsterdam",
    ]  # fmt: skip
    hub = result.events[2]
    assert (hub.city, hub.country, hub.zip) == ("Köln", "DE", None)
    assert hub.carrier_code == "transit"
    assert hub.message == (
        "The shipment has been processed in the parcel center of Köln - Hub scan"
    )
    assert hub.extra["remark"] == "Hub scan"
    assert result.events[3].location == "Amsterdam, 1043 AG, NL"
    assert result.estimated_delivery_at == at(2024, 7, 3, 16)  # Amsterdam local, the destination
    assert result.raw_status == "transit/The shipment has been loaded onto the delivery vehicle"
    assert result.extra == {"skipped_events": 0, "shipment_id": NUMBER, "service": "parcel-de"}


def test_eta_falls_back_to_the_end_of_the_delivery_time_frame() -> None:
    body = copy.deepcopy(PARCEL_DE)
    shipment = body["shipments"][0]
    del shipment["estimatedTimeOfDelivery"]
    shipment["estimatedDeliveryTimeFrame"] = {
        "estimatedFrom": "2024-07-03T08:00:00Z",
        "estimatedThrough": "2024-07-03T20:00:00Z",
    }
    assert parse_response(NUMBER, body).estimated_delivery_at == at(2024, 7, 3, 20)
    shipment["estimatedDeliveryTimeFrame"] = "soon"
    assert parse_response(NUMBER, body).estimated_delivery_at is None


def test_the_shipment_with_the_asked_number_is_picked() -> None:
    other = {
        "id": "OTHER1",
        "events": [
            {"timestamp": "2024-07-01T10:00:00Z", "statusCode": "delivered", "status": "Delivered"}
        ],
    }
    mine = {
        "id": "jjd 0099 999999",
        "events": [
            {"timestamp": "2024-07-01T10:00:00Z", "statusCode": "transit", "status": "Sorted"}
        ],
    }
    result = parse_response("JJD0099999999", {"shipments": [other, mine]})
    assert [e.status for e in result.events] == [Status.IN_TRANSIT]

    fallback = parse_response("NOT-LISTED", {"shipments": [other, mine]})
    assert [e.status for e in fallback.events] == [Status.DELIVERED]  # none matches: the first


def test_garbage_in_one_event_skips_or_degrades_only_that_event() -> None:
    body = copy.deepcopy(PARCEL_DE)
    events = body["shipments"][0]["events"]
    events[1:1] = [
        "not an event",
        {"timestamp": 1720000000, "statusCode": "transit", "status": "epoch seconds"},
        {"timestamp": "last Tuesday", "statusCode": "delivered"},
        {"timestamp": "2024-07-02T15:00:00Z", "statusCode": 5, "status": ["weird"],
         "location": "Bonn"},
        {"timestamp": "2024-07-02T16:00:00Z", "statusCode": "transit",
         "location": {"address": {"countryCode": 49, "addressLocality": None}}},
    ]  # fmt: skip
    result = parse_response(NUMBER, body)

    assert result.outcome is Outcome.FOUND
    assert result.extra["skipped_events"] == 3
    assert [e.status for e in result.events] == [
        Status.LABEL_PURCHASED, Status.CARRIER_PICKED_UP, None, Status.IN_TRANSIT,
        Status.IN_TRANSIT, Status.OUT_FOR_DELIVERY,
    ]  # fmt: skip
    degraded = result.events[2]
    assert (degraded.carrier_code, degraded.message, degraded.location) == ("", "", "")


def test_events_with_the_same_time_keep_dhls_order_reversed() -> None:
    body = {"shipments": [{"id": NUMBER, "events": [
        {"timestamp": "2024-07-03T09:00:00Z", "statusCode": "delivered", "status": "Delivered"},
        {"timestamp": "2024-07-03T09:00:00Z", "statusCode": "transit",
         "status": "Out for delivery"},
    ]}]}  # fmt: skip
    result = parse_response(NUMBER, body)
    assert [e.status for e in result.events] == [Status.OUT_FOR_DELIVERY, Status.DELIVERED]


def test_shipment_status_stands_in_when_there_are_no_events() -> None:
    body = copy.deepcopy(PARCEL_DE)
    del body["shipments"][0]["events"]
    result = parse_response(NUMBER, body)
    assert [(e.status, e.happened_at) for e in result.events] == [
        (Status.OUT_FOR_DELIVERY, at(2024, 7, 3, 7, 15))
    ]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (None, "not a JSON object (got NoneType)"),
        ([PARCEL_DE], "not a JSON object (got list)"),
        ("<html>", "not a JSON object (got str)"),
        ({"shipments": {"id": NUMBER}}, "'shipments' is not a list"),
        ({"shipments": [1, "two"]}, "no shipment objects"),
        ({"data": []}, "no 'shipments' list"),
    ],
)
def test_bodies_of_the_wrong_shape_are_an_error_result(body: object, fragment: str) -> None:
    result = parse_response(NUMBER, body)
    assert result.outcome is Outcome.ERROR
    assert result.tracking_number == NUMBER
    assert fragment in result.message


def test_not_found_problem_and_empty_shipments_are_not_found() -> None:
    problem = {"title": "No result found", "status": 404,
               "detail": "No shipment with given tracking number found."}  # fmt: skip
    assert parse_response(NUMBER, problem) == TrackResult.not_found(
        NUMBER, "No shipment with given tracking number found."
    )
    assert parse_response(NUMBER, {"shipments": []}).outcome is Outcome.NOT_FOUND


def test_problem_answers_by_http_status() -> None:
    bad = {"title": "Bad request", "status": 400, "detail": "Invalid tracking number format."}
    invalid = problem_result(NUMBER, 400, bad)
    assert invalid == TrackResult(
        NUMBER, Outcome.INVALID, message="Invalid tracking number format."
    )
    gone = problem_result(NUMBER, 410, "not json")
    assert gone is not None
    assert (gone.outcome, gone.message) == (Outcome.ERROR, "DHL HTTP 410: no detail")
    assert problem_result(NUMBER, None, {"status": float("nan")}) is None


# --- never raises ---------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
TIMESTAMPS = st.sampled_from(
    ["2024-07-03T09:15:00", "2024-07-03T09:15:00Z", "2024-07-03T09:15:00+02:00", "2024-07-03",
     "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59", ""]
) | JSON  # fmt: skip
CODES = st.sampled_from(["pre-transit", "transit", "delivered", "failure", "unknown"]) | JSON
ADDRESS = st.fixed_dictionaries(
    {},
    optional={"countryCode": st.sampled_from(["DE", "US", "jp", ""]) | JSON,
              "postalCode": JSON, "addressLocality": JSON},
)  # fmt: skip
EVENT = st.fixed_dictionaries(
    {},
    optional={
        "timestamp": TIMESTAMPS, "statusCode": CODES, "status": st.text(max_size=40) | JSON,
        "description": JSON, "remark": JSON,
        "location": st.fixed_dictionaries({}, optional={"address": ADDRESS}) | JSON,
    },
)  # fmt: skip
SHIPMENT = st.fixed_dictionaries(
    {},
    optional={
        "id": st.sampled_from([NUMBER, NUMBER.lower()]) | JSON,
        "service": JSON, "status": EVENT | JSON, "events": st.lists(EVENT | JSON, max_size=5),
        "estimatedTimeOfDelivery": TIMESTAMPS,
        "estimatedDeliveryTimeFrame": st.fixed_dictionaries(
            {}, optional={"estimatedThrough": TIMESTAMPS, "estimatedFrom": TIMESTAMPS}
        ) | JSON,
        "destination": st.fixed_dictionaries({}, optional={"address": ADDRESS}) | JSON,
    },
)  # fmt: skip
BODIES = JSON | st.fixed_dictionaries({"shipments": st.lists(SHIPMENT | JSON, max_size=3) | JSON})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES, number=st.sampled_from([NUMBER, "00340434292135100186", " x "]))
def test_parse_response_never_raises(body: object, number: str) -> None:
    result = parse_response(number, body)
    assert isinstance(result, TrackResult)
    assert result.tracking_number == number
    assert all(e.happened_at.tzinfo is UTC for e in result.events)
    assert [e.happened_at for e in result.events] == sorted(e.happened_at for e in result.events)
