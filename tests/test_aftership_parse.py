"""AfterShip: status table and the pure parser, on hand-written bodies shaped like its answers."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carriers.aftership.parse import (
    Meta,
    Unreadable,
    error_result,
    parse_batch,
    parse_response,
    parse_timestamp,
    read_meta,
)
from carriers.aftership.statuses import FALLBACK, SUBTAG_STATUS, TAG_STATUS, map_status
from carriers.aftership.zones import ISO3_TO_ISO2, country_iso2
from carriers.base import Outcome, TrackResult
from tracker.domain import Status

NUMBER = "LT123456785CN"


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def checkpoint(stamp: str, subtag: str, **fields: Any) -> dict[str, Any]:
    return {"checkpoint_time": stamp, "tag": subtag.split("_")[0], "subtag": subtag, **fields}


# A parcel from Shenzhen to Austin, listed by GET /trackings: mixed time shapes, both country
# field spellings, checkpoints deliberately not in time order.
PARCEL: dict[str, Any] = {
    "meta": {"code": 200, "message": "", "type": "OK"},
    "data": {
        "pagination": {"total": 1, "next_cursor": None, "has_next_page": False},
        "trackings": [
            {
                "id": "5b0b8c3f9e1a4d2f8c7e6a5b4c3d2e1f", "tracking_number": NUMBER,
                "slug": "yunexpress", "tag": "InTransit", "subtag": "InTransit_007",
                "subtag_message": "Departure Scan", "shipment_type": "Standard",
                "destination_country_region": "USA", "destination_state": "TX",
                "latest_estimated_delivery": {"type": "specific", "source": "Carrier EDD",
                                              "datetime": "2024-03-15T18:00:00"},
                "checkpoints": [
                    checkpoint("2024-03-09T21:15:00+08:00", "InfoReceived_001",
                               message="Electronic information submitted by shipper",
                               country_iso3="CHN", city="Shenzhen"),
                    checkpoint("2024-03-12T14:40:00", "InTransit_007", message="Departed facility",
                               city="Dallas", state="TX", zip="75261", country_region="USA",
                               subtag_message="Departure Scan", raw_tag="DEP",
                               location="Dallas, TX, 75261, USA", slug="yunexpress"),
                    checkpoint("2024-03-10T10:05:00", "InTransit_002", message="Parcel received",
                               city="Shenzhen", country_iso3="CHN", postal_code="518000"),
                    checkpoint("2024-03-11T02:00:00Z", "InTransit_006",
                               subtag_message="Customs clearance started", country_region="HKG"),
                ],
            }
        ],
    },
}  # fmt: skip


# --- status table ---------------------------------------------------------------------------

# Every subtag AfterShip documents, with the status this tracker gives it.
EXPECTED_SUBTAGS: dict[str, Status | None] = {
    **{f"Pending_00{i}": Status.CONFIRMED for i in range(1, 7)},
    "InfoReceived_001": Status.LABEL_PURCHASED,
    "InTransit_001": Status.IN_TRANSIT, "InTransit_002": Status.CARRIER_PICKED_UP,
    **{f"InTransit_00{i}": Status.IN_TRANSIT for i in range(3, 10)},
    "OutForDelivery_001": Status.OUT_FOR_DELIVERY, "OutForDelivery_002": Status.READY_FOR_PICKUP,
    "OutForDelivery_003": Status.OUT_FOR_DELIVERY, "OutForDelivery_004": Status.IN_TRANSIT,
    **{f"AttemptFail_00{i}": Status.ATTEMPTED_DELIVERY for i in range(1, 4)},
    "AvailableForPickup_001": Status.READY_FOR_PICKUP,
    **{f"Delivered_00{i}": Status.DELIVERED for i in range(1, 6)},
    **{f"Exception_{i:03d}": Status.FAILURE for i in (1, 2, 3, *range(7, 14))},
    **{f"Exception_{i:03d}": Status.DELAYED for i in (4, 5, 6, 16, 17, 18)},
    "Expired_001": None,
}  # fmt: skip

EXPECTED_TAGS: dict[str, Status | None] = {
    "InfoReceived": Status.LABEL_PURCHASED, "Pending": Status.CONFIRMED,
    "InTransit": Status.IN_TRANSIT, "OutForDelivery": Status.OUT_FOR_DELIVERY,
    "AttemptFail": Status.ATTEMPTED_DELIVERY, "AvailableForPickup": Status.READY_FOR_PICKUP,
    "Delivered": Status.DELIVERED, "Exception": Status.FAILURE, "Expired": None,
}  # fmt: skip


def test_the_tables_cover_every_documented_code() -> None:
    assert (dict(SUBTAG_STATUS), dict(TAG_STATUS), FALLBACK) == (
        EXPECTED_SUBTAGS, EXPECTED_TAGS, None,
    )  # fmt: skip


@pytest.mark.parametrize(("code", "expected"), [*EXPECTED_SUBTAGS.items(), *EXPECTED_TAGS.items()])
def test_every_code_maps_to_its_status(code: str, expected: Status | None) -> None:
    calls: list[tuple[str | None, str | None]]
    if "_" in code:  # a subtag: with its tag, in another case, on its own
        tag = code.split("_")[0]
        calls = [(tag, code), (tag.upper(), code.lower()), (None, code)]
    else:  # a tag: alone, padded, with an undocumented subtag
        calls = [(code, None), (f" {code.lower()} ", ""), (code, f"{code}_999")]
    assert [map_status(tag, subtag) for tag, subtag in calls] == [expected] * 3


@pytest.mark.parametrize(
    ("tag", "subtag", "expected"),
    [
        # An undocumented subtag: its tag decides, or without a tag the subtag's prefix.
        ("Exception", "Exception_014", Status.FAILURE),
        ("exception", "Exception_999", Status.FAILURE),
        ("InTransit", "InTransit_010", Status.IN_TRANSIT),
        (None, "Delivered_042", Status.DELIVERED),
        ("Teleported", "Teleported_001", None), ("", "", None), (None, None, None),
        (7, ["Delivered_001"], None),
        ("Delivered", "Exception_011", Status.FAILURE),  # a documented subtag wins over the tag
    ],
)  # fmt: skip
def test_unknown_codes_fall_back_explicitly(
    tag: object, subtag: object, expected: Status | None
) -> None:
    assert map_status(tag, subtag) is expected


# --- places and times -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [("DEU", "DE"), ("usa", "US"), (" CHN ", "CN"), ("HKG", "HK"), ("DE", "DE"),
     ("XYZ", None), ("ZZ", None), ("", None), (49, None), (None, None)],
)  # fmt: skip
def test_country_codes_become_iso2(code: object, expected: str | None) -> None:
    assert country_iso2(code) == expected
    assert len(ISO3_TO_ISO2) == len(set(ISO3_TO_ISO2.values())) == 250  # one to one


@pytest.mark.parametrize(
    ("stamp", "country", "state", "expected", "source"),
    [
        ("2024-03-10T08:00:00+08:00", "CN", None, at(2024, 3, 10), "offset"),
        ("2024-07-15T09:00:00+0530", None, None, at(2024, 7, 15, 3, 30), "offset"),
        ("2024-03-10T08:00:00Z", "CN", None, at(2024, 3, 10, 8), "utc"),
        ("2024-03-10T08:00:00", "CN", None, at(2024, 3, 10), "local:Asia/Shanghai"),
        ("2024-07-01T09:00:00", "DE", None, at(2024, 7, 1, 7), "local:Europe/Berlin"),
        ("2024-01-15T09:00:00", "US", "CA", at(2024, 1, 15, 17), "local:America/Los_Angeles"),
        ("2024-07-15T09:00:00", "US", "new york", at(2024, 7, 15, 13), "local:America/New_York"),
        ("2024-07-15T09:00:00", "US", "Texas", at(2024, 7, 15, 14), "local:America/Chicago"),
        ("2024-07-15T09:00:00", "US", "AZ", at(2024, 7, 15, 16), "local:America/Phoenix"),
        ("2024-07-15T09:00:00", "US", None, at(2024, 7, 15, 9), "local:assumed-utc"),
        ("2024-07-15T09:00:00", "US", "Atlantis", at(2024, 7, 15, 9), "local:assumed-utc"),
        ("2024-07-15T09:00:00", "BR", None, at(2024, 7, 15, 9), "local:assumed-utc"),
        ("2024-07-15", "DE", None, at(2024, 7, 15, 10), "local:date-only:Europe/Berlin"),
        ("2024-07-15", None, None, at(2024, 7, 15, 12), "local:date-only:assumed-utc"),
    ],
)
def test_timestamps_become_the_right_utc_instant(
    stamp: str, country: str | None, state: str | None, expected: datetime, source: str
) -> None:
    assert parse_timestamp(stamp, country, state) == (expected, source)


@pytest.mark.parametrize("stamp", ["", "yesterday", "2024-13-45T00:00:00", "9" * 80,
                                   "0001-01-01T00:00:00+05:00", 1710057600, None])  # fmt: skip
def test_unreadable_timestamps_are_none(stamp: object) -> None:
    assert parse_timestamp(stamp, "DE") is None


# --- whole answers --------------------------------------------------------------------------


def test_a_listed_tracking_is_read_oldest_first_in_utc() -> None:
    result = parse_response(NUMBER, PARCEL)

    assert result.outcome is Outcome.FOUND
    assert [(e.carrier_code, e.status, e.happened_at, e.time_source) for e in result.events] == [
        ("InfoReceived_001", Status.LABEL_PURCHASED, at(2024, 3, 9, 13, 15), "offset"),
        ("InTransit_002", Status.CARRIER_PICKED_UP, at(2024, 3, 10, 2, 5), "local:Asia/Shanghai"),
        ("InTransit_006", Status.IN_TRANSIT, at(2024, 3, 11, 2), "utc"),
        ("InTransit_007", Status.IN_TRANSIT, at(2024, 3, 12, 19, 40), "local:America/Chicago"),
    ]
    dallas = result.events[3]
    assert (dallas.city, dallas.province, dallas.zip, dallas.country, dallas.message) == (
        "Dallas", "TX", "75261", "US", "Departed facility",
    )  # fmt: skip
    assert dallas.extra == {
        "tag": "InTransit", "subtag": "InTransit_007", "subtag_message": "Departure Scan",
        "raw_tag": "DEP", "location": "Dallas, TX, 75261, USA", "slug": "yunexpress",
    }  # fmt: skip
    assert result.events[1].zip == "518000"  # later versions say postal_code
    customs = result.events[2]
    assert (customs.country, customs.message) == ("HK", "Customs clearance started")
    # The estimate is in the destination's local time: Texas, CDT.
    assert (result.estimated_delivery_at, result.raw_status, result.message) == (
        at(2024, 3, 15, 23), "InTransit/InTransit_007", "Departure Scan",
    )  # fmt: skip
    assert result.extra == {
        "skipped_events": 0, "tracking_id": "5b0b8c3f9e1a4d2f8c7e6a5b4c3d2e1f",
        "slug": "yunexpress", "service": "Standard",
    }  # fmt: skip


def tracking_with(**fields: Any) -> dict[str, Any]:
    body = copy.deepcopy(PARCEL)
    tracking = body["data"]["trackings"][0]
    tracking.update(fields)
    for key in [k for k, v in fields.items() if v is None]:
        del tracking[key]
    return body


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"latest_estimated_delivery": None,
          "courier_estimated_delivery_date": {"estimated_delivery_date": "2024-03-16"}},
         at(2024, 3, 16, 17)),  # a date alone: noon in Texas
        ({"latest_estimated_delivery": {"datetime": None, "datetime_max": "2024-03-16T20:00:00Z"}},
         at(2024, 3, 16, 20)),
        ({"latest_estimated_delivery": None,
          "aftership_estimated_delivery_date": {"estimated_delivery_date_min": "2024-03-14"}},
         at(2024, 3, 14, 17)),
        ({"latest_estimated_delivery": None, "destination_country_region": None,
          "expected_delivery": "2024-03-17T10:00:00+01:00"}, at(2024, 3, 17, 9)),
        ({"latest_estimated_delivery": "soon"}, None),
        ({"latest_estimated_delivery": {"datetime": "next week"}}, None),
    ],
)  # fmt: skip
def test_eta_comes_from_the_best_estimate_given(
    fields: dict[str, Any], expected: datetime | None
) -> None:
    assert parse_response(NUMBER, tracking_with(**fields)).estimated_delivery_at == expected


def test_numbers_are_matched_ignoring_case_and_spaces_and_absent_ones_are_none() -> None:
    body = tracking_with(tracking_number="lt 1234 5678 5cn")
    batch = parse_batch([NUMBER, "RR000000000GB"], body)
    assert not isinstance(batch, Unreadable)
    assert [r and (r.tracking_number, r.outcome) for r in batch.values()] == [
        (NUMBER, Outcome.FOUND), None,
    ]  # fmt: skip
    assert parse_response("RR000000000GB", body) == TrackResult.not_found(
        "RR000000000GB", "AfterShip returned no tracking for this number"
    )


def test_of_two_couriers_for_one_number_the_one_with_more_scans_is_read() -> None:
    body = copy.deepcopy(PARCEL)
    trackings = body["data"]["trackings"]
    trackings.insert(0, {"tracking_number": NUMBER, "slug": "china-post", "checkpoints": []})
    delivered = checkpoint("2024-03-16T12:00:00Z", "Delivered_001")
    trackings.append({"tracking_number": NUMBER, "slug": "usps", "checkpoints": [delivered]})
    result = parse_response(NUMBER, body)
    assert (result.extra["slug"], len(result.events)) == ("yunexpress", 4)


def test_garbage_in_one_checkpoint_skips_or_degrades_only_that_checkpoint() -> None:
    body = copy.deepcopy(PARCEL)
    points = body["data"]["trackings"][0]["checkpoints"]
    points[1:1] = [
        "not a checkpoint",
        {"checkpoint_time": 1710000000, "tag": "Delivered"},
        {"checkpoint_time": "the day after", "subtag": "Delivered_001"},
        {"checkpoint_time": "2024-03-10T12:00:00Z", "tag": 5, "subtag": {"x": 1},
         "message": ["Shenzhen"], "city": 7, "country_iso3": "ZZZ", "state": 3},
        {"checkpoint_time": "2024-03-10T13:00:00Z"},
    ]  # fmt: skip
    result = parse_response(NUMBER, body)

    assert (result.outcome, result.extra["skipped_events"]) == (Outcome.FOUND, 3)
    assert [e.status for e in result.events] == [
        Status.LABEL_PURCHASED, Status.CARRIER_PICKED_UP, None, None, Status.IN_TRANSIT,
        Status.IN_TRANSIT,
    ]  # fmt: skip
    degraded = result.events[2]
    assert (degraded.carrier_code, degraded.message, degraded.location, degraded.extra) == (
        "", "", "", {},
    )  # fmt: skip


@pytest.mark.parametrize(("tag", "subtag"), [("Pending", "Pending_001"), ("Expired", None),
                                              (None, None)])  # fmt: skip
def test_a_tracking_with_no_checkpoints_yet_is_not_found(
    tag: str | None, subtag: str | None
) -> None:
    body = tracking_with(tag=tag, subtag=subtag, subtag_message=tag, checkpoints=[])
    result = parse_response(NUMBER, body)
    message = f"AfterShip has no checkpoints for this number yet ({tag or 'no status'})"
    assert (result.outcome, result.message, result.events) == (Outcome.NOT_FOUND, message, ())
    in_transit = parse_response(NUMBER, tracking_with(checkpoints=None))  # tag says it moves
    assert (in_transit.outcome, in_transit.events) == (Outcome.FOUND, ())


def error_body(code: object, message: str = "", kind: str = "BadRequest") -> dict[str, Any]:
    return {"meta": {"code": code, "message": message, "type": kind}, "data": {}}


@pytest.mark.parametrize(
    ("body", "http_status", "outcome", "message"),
    [
        (error_body(4004, "No tracking.", "NotFound"), 404, Outcome.NOT_FOUND, "No tracking."),
        (error_body(4012, "Courier unknown."), 400, Outcome.NOT_FOUND, "Courier unknown."),
        (error_body(4005, "Number invalid."), 400, Outcome.INVALID, "Number invalid."),
        (error_body(4017), 400, Outcome.INVALID, "The value of tracking_number is invalid."),
        (error_body(4011.0, "Also required: zip"), 400, Outcome.INVALID, "Also required: zip"),
        (error_body(500, "Oops.", "InternalError"), 500, Outcome.ERROR,
         "AfterShip code 500 InternalError: Oops."),
        ("<html>", 404, Outcome.NOT_FOUND, "Tracking does not exist."),
        ({"meta": {"code": True}}, 418, Outcome.ERROR, "AfterShip code 418: no message"),
    ],
)  # fmt: skip
def test_error_answers_by_aftership_code(
    body: object, http_status: int, outcome: Outcome, message: str
) -> None:
    assert error_result(NUMBER, http_status, body) == TrackResult(NUMBER, outcome, message=message)


def test_success_envelopes_are_not_errors() -> None:
    assert error_result(NUMBER, 200, PARCEL) is None
    assert error_result(NUMBER, None, {"meta": {"code": 201}}) is None
    assert read_meta({"meta": {"code": 4003.0, "message": " Exists. "}}) == Meta(
        4003, "Exists.", ""
    )
    assert parse_response(NUMBER, error_body(4004)).outcome is Outcome.NOT_FOUND
    single = {"meta": {"code": 201}, "data": {"tracking": PARCEL["data"]["trackings"][0]}}
    assert len(parse_response(NUMBER, single).events) == 4  # a create answer reads the same


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (None, "not a JSON object (got NoneType)"),
        ([PARCEL], "not a JSON object (got list)"),
        ("<html>", "not a JSON object (got str)"),
        ({"meta": {"code": 200}, "data": []}, "no 'data.trackings' list"),
        ({"meta": {"code": 200}, "data": {"trackings": {"tracking_number": NUMBER}}},
         "no 'data.trackings' list"),
    ],
)  # fmt: skip
def test_bodies_of_the_wrong_shape_are_an_error_result(body: object, fragment: str) -> None:
    result = parse_response(NUMBER, body)
    assert (result.outcome, result.tracking_number) == (Outcome.ERROR, NUMBER)
    assert fragment in result.message
    assert isinstance(parse_batch([NUMBER], body), Unreadable)


# --- never raises ---------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
TIMES = st.sampled_from(
    ["2024-03-10T08:00:00", "2024-03-10T08:00:00Z", "2024-03-10T08:00:00+08:00", "2024-03-10",
     "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59", ""]
) | JSON  # fmt: skip
TAGS = st.sampled_from([*TAG_STATUS, "Nope"]) | JSON
SUBTAGS = st.sampled_from([*SUBTAG_STATUS, "Exception_099"]) | JSON
COUNTRIES = st.sampled_from(["CHN", "USA", "deu", "HK", "XXX", ""]) | JSON
CHECKPOINT = st.fixed_dictionaries({}, optional={
    "checkpoint_time": TIMES, "tag": TAGS, "subtag": SUBTAGS, "message": JSON,
    "subtag_message": JSON, "city": JSON, "state": st.sampled_from(["TX", "CA"]) | JSON,
    "zip": JSON, "postal_code": JSON, "country_iso3": COUNTRIES, "country_region": COUNTRIES,
})  # fmt: skip
ESTIMATE = st.fixed_dictionaries(
    {}, optional={"datetime": TIMES, "estimated_delivery_date": TIMES, "datetime_max": TIMES}
) | JSON  # fmt: skip
TRACKING = st.fixed_dictionaries({}, optional={
    "tracking_number": st.sampled_from([NUMBER, NUMBER.lower(), " "]) | JSON,
    "tag": TAGS, "subtag": SUBTAGS, "subtag_message": JSON, "slug": JSON, "id": JSON,
    "checkpoints": st.lists(CHECKPOINT | JSON, max_size=5) | JSON,
    "latest_estimated_delivery": ESTIMATE, "courier_estimated_delivery_date": ESTIMATE,
    "expected_delivery": TIMES, "destination_country_region": COUNTRIES,
})  # fmt: skip
META = st.fixed_dictionaries({}, optional={"code": st.integers() | JSON, "message": JSON})
LISTS = st.fixed_dictionaries({"trackings": st.lists(TRACKING | JSON, max_size=3)})
BODIES = JSON | st.fixed_dictionaries({"data": LISTS | JSON}, optional={"meta": META | JSON})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES, number=st.sampled_from([NUMBER, "1Z999AA10123456784", " x "]))
def test_parse_never_raises(body: object, number: str) -> None:
    result = parse_response(number, body)
    assert result.tracking_number == number
    assert all(e.happened_at.tzinfo is UTC for e in result.events)
    assert [e.happened_at for e in result.events] == sorted(e.happened_at for e in result.events)
    batch = parse_batch([number, "OTHER"], body)
    assert isinstance(batch, Unreadable) or set(batch) == {number, "OTHER"}
