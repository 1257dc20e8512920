"""carriers.timezones: one table of places and zones, read the same way by every carrier."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from carriers.aftership import parse as aftership
from carriers.dhl import parse as dhl
from carriers.fedex import parse as fedex
from carriers.postnord import parse as postnord
from carriers.timezones import (
    CA_PROVINCE_ZONES,
    COUNTRY_ZONES,
    REGION_ZONES,
    US_STATE_CODES,
    US_STATE_ZONES,
    format_timestamp,
    in_zone,
    parse_timestamp,
    zone_for_place,
    zone_name,
)
from carriers.ups.times import local_moment


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_every_zone_in_the_tables_exists() -> None:
    names = {*COUNTRY_ZONES.values(), *US_STATE_ZONES.values(), *CA_PROVINCE_ZONES.values()}
    assert {name: str(ZoneInfo(name)) for name in names} == {name: name for name in names}


def test_a_country_decided_by_its_regions_has_no_single_zone() -> None:
    assert set(REGION_ZONES) == {"US", "CA"}
    assert not set(REGION_ZONES) & set(COUNTRY_ZONES)
    assert {"MX", "BR", "RU", "AU", "ID"}.isdisjoint(COUNTRY_ZONES)


def test_every_us_state_name_names_a_state_with_a_zone() -> None:
    assert set(US_STATE_CODES.values()) <= set(US_STATE_ZONES)
    assert len(US_STATE_ZONES) >= 51  # 50 states and DC, plus territories


@pytest.mark.parametrize(
    ("country", "region", "expected"),
    [
        ("DE", None, "Europe/Berlin"),
        (" se ", "ignored", "Europe/Stockholm"),
        ("US", "TN", "America/Chicago"),
        ("us", " ny ", "America/New_York"),
        ("US", "KY", "America/New_York"),
        ("US", "Texas", "America/Chicago"),
        ("US", "district of columbia", "America/New_York"),
        ("US", "PR", "America/Puerto_Rico"),
        ("CA", "bc", "America/Vancouver"),
        ("US", None, None),
        ("US", "ZZ", None),
        ("US", "AE", None),  # Armed Forces Europe: no zone can be told
        ("CA", 5, None),
        ("BR", "SP", None),
        (None, "TN", None),
        ("", None, None),
    ],
)
def test_zone_of_a_place(country: object, region: object, expected: str | None) -> None:
    assert zone_name(country, region) == expected
    zone = zone_for_place(country, region)
    assert (None if zone is None else str(zone)) == expected


@pytest.mark.parametrize(
    ("stamp", "country", "region", "expected", "source"),
    [
        ("2024-07-03T09:15:00Z", "DE", None, at(2024, 7, 3, 9, 15), "utc"),
        ("2024-07-03T11:15:00+02:00", None, None, at(2024, 7, 3, 9, 15), "offset"),
        ("2024-07-03T11:15:00", "DE", None, at(2024, 7, 3, 9, 15), "local:Europe/Berlin"),
        ("2024-01-03T11:15:00", "DE", None, at(2024, 1, 3, 10, 15), "local:Europe/Berlin"),
        ("2024-07-03T11:15:00", "US", "AZ", at(2024, 7, 3, 18, 15), "local:America/Phoenix"),
        ("2024-07-03T11:15:00", "US", None, at(2024, 7, 3, 11, 15), "local:assumed-utc"),
        ("2024-07-03", "JP", None, at(2024, 7, 3, 3), "local:date-only:Asia/Tokyo"),
        ("2024-07-03", None, None, at(2024, 7, 3, 12), "local:date-only:assumed-utc"),
    ],
)
def test_timestamps_say_how_they_were_read(
    stamp: str, country: str | None, region: str | None, expected: datetime, source: str
) -> None:
    assert parse_timestamp(stamp, country, region) == (expected, source)


@pytest.mark.parametrize("stamp", ["", "soon", "2024-02-30T10:00:00", "0001-01-01T00:00:00+05:00"])
def test_unreadable_timestamps_are_none(stamp: str) -> None:
    assert parse_timestamp(stamp, "DE") is None
    assert parse_timestamp(None) is None


def test_a_local_time_without_a_zone_is_read_as_utc_and_says_so() -> None:
    naive = datetime(2024, 7, 3, 11, 15)
    assert in_zone(naive, None) == (at(2024, 7, 3, 11, 15), "local:assumed-utc")
    assert in_zone(naive, ZoneInfo("Europe/Oslo"), date_only=True) == (
        at(2024, 7, 3, 9, 15),
        "local:date-only:Europe/Oslo",
    )


PLACES = [("DE", None), ("IS", None), ("PT", None), ("JP", None), ("US", None), ("BR", None)]


@pytest.mark.parametrize(("country", "region"), PLACES)
def test_every_carrier_reads_a_local_time_in_the_same_zone(
    country: str, region: str | None
) -> None:
    stamp = "2024-07-03T11:15:00"
    expected = parse_timestamp(stamp, country, region)
    assert dhl.parse_timestamp(stamp, country) == expected
    assert postnord.parse_timestamp(stamp, country) == expected
    assert fedex.parse_timestamp(stamp, country, region) == expected
    assert aftership.parse_timestamp(stamp, country, region) == expected
    assert local_moment("20240703", "111500", country=country, region=region) == expected


@pytest.mark.parametrize(
    ("style", "country", "written", "source"),
    [
        ("offset", "DE", "2024-07-03T11:15:00+02:00", "offset"),
        ("offset", "US", "2024-07-03T09:15:00+00:00", "offset"),
        ("utc", "DE", "2024-07-03T09:15:00Z", "utc"),
        ("local", "DE", "2024-07-03T11:15:00", "local:Europe/Berlin"),
        ("local", "IS", "2024-07-03T09:15:00", "local:Atlantic/Reykjavik"),
        ("local", "US", "2024-07-03T09:15:00Z", "utc"),  # no zone: never a zone-less time
    ],
)
def test_a_written_time_reads_back_as_the_same_moment(
    style: str, country: str, written: str, source: str
) -> None:
    moment = at(2024, 7, 3, 9, 15)
    assert format_timestamp(moment, zone_for_place(country), style) == written
    assert parse_timestamp(written, country) == (moment, source)
