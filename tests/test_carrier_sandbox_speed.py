"""The carrier sandboxes' cheaper paths say exactly what the plain ones said.

- Answers are written by orjson, yet keep ``web.json_response``'s ``Content-Type`` (charset
  included) and its JSON, non-ASCII text too; a scripted lone surrogate, which orjson refuses,
  is still answered (by ``json.dumps``), not a 500.
- :meth:`Timeline.visible` stops at the first scan still to come: the scans and times it gives
  are those of the plain definition (every scan whose :meth:`Timeline.at` has passed, in script
  order), for shuffled scripts, equal hours and compressed time.
- :func:`carriers.timezones.format_timestamp` formats by hand what ``isoformat`` and
  ``strftime`` wrote, for every year, zone and style.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import aiohttp
import pytest

from carriers.dhl.sandbox import SANDBOX_SETTINGS, sandbox_app
from carriers.sandbox_base import CarrierWorld, Kind, Scan, Timeline
from carriers.timezones import format_timestamp, zone_for_place
from tracker.sandbox.serve import serve

NUMBER = "JJD000390007001"


@pytest.fixture
async def dhl() -> AsyncIterator[tuple[CarrierWorld, str]]:
    world = CarrierWorld()
    runner, url = await serve(sandbox_app(world), 0)
    try:
        yield world, url
    finally:
        await runner.cleanup()


def _parcel(message: str) -> Timeline:
    start = datetime.now(UTC) - timedelta(hours=5)
    scans = [
        Scan(kind=Kind.PICKUP, after_hours=0, city="Zürich", country="CH"),
        Scan(kind=Kind.TRANSIT, after_hours=1, city="Leipzig", country="DE", message=message),
    ]
    return Timeline(tracking_number=NUMBER, start=start, scans=scans)


async def _track(url: str) -> tuple[int, str, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{url}/track/shipments",
            params={"trackingNumber": NUMBER},
            headers={"DHL-API-Key": SANDBOX_SETTINGS["api_key"]},
        ) as response,
    ):
        return response.status, response.headers["Content-Type"], await response.read()


@pytest.mark.parametrize("message", ["Zugestellt in 東京 🙂", 'a\nb\t"c"\u2028'])
async def test_answers_keep_the_json_content_type_and_their_text(
    dhl: tuple[CarrierWorld, str], message: str
) -> None:
    world, url = dhl
    world.register([_parcel(message)])
    status, content_type, body = await _track(url)
    assert (status, content_type) == (200, "application/json; charset=utf-8")
    shipment = json.loads(body)["shipments"][0]
    assert shipment["events"][0]["remark"] == message
    assert shipment["events"][1]["location"]["address"]["addressLocality"] == "Zürich"


async def test_a_lone_surrogate_in_a_script_is_answered_not_a_server_error(
    dhl: tuple[CarrierWorld, str],
) -> None:
    world, url = dhl
    world.register([_parcel("broken \ud800 text")])
    status, content_type, body = await _track(url)
    assert (status, content_type) == (200, "application/json; charset=utf-8")
    assert json.loads(body)["shipments"][0]["events"][0]["remark"] == "broken \ud800 text"


def _plainly_visible(timeline: Timeline, now: datetime) -> list[tuple[datetime, Scan]]:
    ordered = sorted(timeline.scans, key=lambda scan: scan.after_hours)
    return [(timeline.at(scan), scan) for scan in ordered if timeline.at(scan) <= now]


@pytest.mark.parametrize("seed", range(20))
def test_visible_scans_are_those_whose_time_has_come(seed: int) -> None:
    rng = random.Random(seed)
    hours = [round(rng.choice([0, 0.5, 1, 1, 7.25, 20, 33.3]) * rng.randint(0, 4), 2)]
    hours += [round(rng.uniform(0, 90), rng.choice([0, 2, 6])) for _ in range(rng.randint(0, 12))]
    rng.shuffle(hours)
    scans = [
        Scan(kind=rng.choice(list(Kind)), after_hours=h, message=str(i))
        for i, h in enumerate(hours)
    ]
    zone = timezone(timedelta(hours=rng.choice([-7, 0, 2, 5.5])))
    start = datetime(2026, 3, 28, 23, 59, 59, 999_999, tzinfo=UTC).astimezone(zone)
    timeline = Timeline(
        tracking_number="N",
        start=start,
        scans=scans,
        hours_per_second=rng.choice([0.0, 1 / 7, 3.0]),
    )
    moments = [timeline.at(scan) for scan in scans]
    probes = (
        moments + [m - timedelta(microseconds=1) for m in moments] + [start - timedelta(days=1)]
    )
    for now in probes:
        assert timeline.visible(now) == _plainly_visible(timeline, now)


def test_timestamps_are_written_as_isoformat_and_strftime_wrote_them() -> None:
    rng = random.Random(7)
    zones = [None, zone_for_place("DE"), zone_for_place("IN"), zone_for_place("US", "AZ")]
    zones += [zone_for_place("US", "NY"), zone_for_place("NZ"), timezone(timedelta(hours=-3))]
    first = datetime(1, 1, 2, tzinfo=UTC)
    for _ in range(20_000):
        moment = first + timedelta(microseconds=rng.randrange(315_000_000_000_000_000))
        zone = rng.choice(zones)
        in_utc = moment.astimezone(UTC)
        if zone is None:
            assert format_timestamp(moment, zone, "offset") == in_utc.isoformat(timespec="seconds")
            assert format_timestamp(moment, zone, "local") == in_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            local = moment.astimezone(zone)
            assert format_timestamp(moment, zone, "offset") == local.isoformat(timespec="seconds")
            assert format_timestamp(moment, zone, "local") == local.replace(tzinfo=None).isoformat(
                timespec="seconds"
            )
        assert format_timestamp(moment, zone, "utc") == in_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
