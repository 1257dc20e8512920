"""Statuses, event identity and the current status of a shipment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tracker.domain import (
    Status,
    TrackingEvent,
    current_status,
    status_for_api_version,
)

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def test_shopify_names_are_the_enum_values():
    assert Status.OUT_FOR_DELIVERY.shopify == "OUT_FOR_DELIVERY"
    assert {s.shopify for s in Status} == {
        "LABEL_PURCHASED",
        "LABEL_PRINTED",
        "CONFIRMED",
        "CARRIER_PICKED_UP",
        "IN_TRANSIT",
        "OUT_FOR_DELIVERY",
        "ATTEMPTED_DELIVERY",
        "READY_FOR_PICKUP",
        "DELAYED",
        "DELIVERED",
        "FAILURE",
    }


@pytest.mark.parametrize(
    ("status", "version", "sent"),
    [
        (Status.CARRIER_PICKED_UP, "2025-07", Status.IN_TRANSIT),
        (Status.CARRIER_PICKED_UP, "2025-10", Status.CARRIER_PICKED_UP),
        (Status.CARRIER_PICKED_UP, "2026-10", Status.CARRIER_PICKED_UP),
        (Status.DELAYED, "2024-10", Status.IN_TRANSIT),
        (Status.DELAYED, "2025-01", Status.DELAYED),
        (Status.DELIVERED, "2024-01", Status.DELIVERED),
        (Status.CARRIER_PICKED_UP, "unstable", Status.CARRIER_PICKED_UP),
    ],
)
def test_older_api_versions_get_a_status_they_know(status, version, sent):
    assert status_for_api_version(status, version) is sent


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="no time zone"):
        TrackingEvent(happened_at=datetime(2026, 1, 1), status=None)


def test_times_are_stored_in_utc():
    cet = timezone(timedelta(hours=1))
    event = TrackingEvent(happened_at=datetime(2026, 1, 1, 10, 0, tzinfo=cet), status=None)
    assert event.happened_at == datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    assert event.happened_at.tzinfo is UTC


def test_same_scan_twice_has_one_key_and_a_different_scan_another():
    a = TrackingEvent(T0, Status.IN_TRANSIT, "PU", "Processed", city="Leipzig", country="DE")
    again = TrackingEvent(
        T0 + timedelta(microseconds=300),
        Status.IN_TRANSIT,
        "PU",
        "Processed (re-sent text)",
        city="LEIPZIG",
        country="DE",
    )
    elsewhere = TrackingEvent(
        T0, Status.IN_TRANSIT, "PU", "Processed", city="Hamburg", country="DE"
    )
    assert a.dedupe_key == again.dedupe_key
    assert a.dedupe_key != elsewhere.dedupe_key


def test_dedupe_keys_are_the_ones_already_stored():
    """The key is stored with every event: a new way of computing it would make every scan
    seen again look new, and write it to Shopify a second time."""
    scan = TrackingEvent(
        T0 + timedelta(microseconds=300),
        Status.IN_TRANSIT,
        "PU",
        "Processed",
        city="Leipzig",
        province="SN",
        country="DE",
        zip="04109",
    )
    cet = timezone(timedelta(hours=1))
    info = TrackingEvent(datetime(2026, 11, 20, 9, 30, 5, tzinfo=cet), None, "INFO", city="Zürich")
    assert scan.dedupe_key == "b0099dc3c3ab0680237edc0158f3bc23"
    assert info.dedupe_key == "5d422ae50c771cbd7d4a7e2d7a4f3d05"


def test_events_built_by_keyword_or_position_are_the_same_and_own_their_extra():
    by_keywords = TrackingEvent(
        happened_at=T0, status=Status.DELIVERED, carrier_code="DL", time_source="offset"
    )
    by_position = TrackingEvent(T0, Status.DELIVERED, "DL", time_source="offset")
    assert by_keywords == by_position
    assert (by_keywords.extra, by_position.extra) == ({}, {})
    assert by_keywords.extra is not by_position.extra  # a new dict each, as default_factory gave
    with pytest.raises(ValueError, match="no time zone"):
        TrackingEvent(happened_at=datetime(2026, 1, 1), status=None)


def test_current_status_is_the_newest_scan_with_a_status():
    events = [
        TrackingEvent(T0, Status.LABEL_PURCHASED),
        TrackingEvent(T0 + timedelta(hours=5), Status.IN_TRANSIT),
        TrackingEvent(T0 + timedelta(hours=6), None, message="info only"),
    ]
    newest = current_status(events)
    assert newest is not None
    assert newest.status is Status.IN_TRANSIT


def test_delivered_is_not_undone_by_a_late_older_scan():
    delivered = TrackingEvent(T0 + timedelta(days=2), Status.DELIVERED)
    late = TrackingEvent(T0 + timedelta(days=1), Status.OUT_FOR_DELIVERY)
    assert current_status([delivered, late]) == delivered


def test_same_second_goes_to_the_more_advanced_status():
    out = TrackingEvent(T0, Status.OUT_FOR_DELIVERY)
    done = TrackingEvent(T0, Status.DELIVERED)
    assert current_status([done, out]) == done
    assert current_status([out, done]) == done


def test_no_status_at_all():
    assert current_status([TrackingEvent(T0, None)]) is None


@pytest.mark.parametrize(
    ("parcels", "combined"),
    [
        ([Status.IN_TRANSIT], Status.IN_TRANSIT),
        ([Status.DELIVERED, Status.IN_TRANSIT], Status.IN_TRANSIT),
        ([Status.DELIVERED, Status.OUT_FOR_DELIVERY], Status.OUT_FOR_DELIVERY),
        ([Status.DELIVERED, Status.DELIVERED], Status.DELIVERED),
        ([Status.DELIVERED, None], None),
        ([Status.IN_TRANSIT, None], Status.IN_TRANSIT),
        ([Status.DELIVERED, Status.ATTEMPTED_DELIVERY], Status.ATTEMPTED_DELIVERY),
        ([Status.DELAYED, Status.FAILURE, Status.IN_TRANSIT], Status.FAILURE),
        ([Status.READY_FOR_PICKUP, Status.OUT_FOR_DELIVERY], Status.OUT_FOR_DELIVERY),
        ([Status.CARRIER_PICKED_UP, Status.LABEL_PURCHASED], Status.LABEL_PURCHASED),
        ([None, None], None),
        ([], None),
    ],
)
def test_several_parcels_make_one_story(parcels, combined):
    from tracker.domain import fulfillment_status

    assert fulfillment_status(parcels) is combined
