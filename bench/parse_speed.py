"""CPU the pure carrier parsers spend per shipment: carrier JSON -> TrackResult.

    python bench/parse_speed.py [--numbers 300] [--repeat 7] [--carrier dhl ...]

For each carrier, ``--numbers`` tracking numbers (the sandbox's ``sample_number``) follow the
routes of ``bench/sweep.py`` (``bench.sweep_world.route_templates``: label, pickup, then hub
scans) with four to six scans visible, and their bodies are rendered by the carrier sandbox's
own renderer, then sent through ``json.dumps`` / ``json.loads`` so that the parser gets freshly
decoded JSON as the adapter does. The bodies are grouped the way the adapter asks: one number
per body (DHL, UPS, USPS, PostNord), 30 per body (FedEx), 50 per list answer (AfterShip).

Timed with ``time.process_time``: each carrier's parse function (the one its adapter calls on a
200 answer) over all its bodies, ``--repeat`` times, best run kept. ``poller_rows`` times what
the poller does per stored event of those results (``clean_text`` of the carrier code, message
and place, ``dedupe_key``). Prints one JSON line: microseconds per shipment per carrier, the
mean over carriers, events per shipment, and the settings.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sweep_world import HOURS_PER_SWEEP, WorldSpec, route_templates, sandbox_module
from carriers.aftership import parse as aftership_parse
from carriers.aftership.render import detect_slug, render_tracking
from carriers.base import TrackResult
from carriers.dhl import parse as dhl_parse
from carriers.dhl.sandbox import render_shipments
from carriers.fedex import parse as fedex_parse
from carriers.fedex.sandbox_render import render_track_result
from carriers.postnord import parse as postnord_parse
from carriers.postnord.sandbox_render import render_response as render_postnord
from carriers.sandbox_base import Timeline
from carriers.ups import parse as ups_parse
from carriers.ups.sandbox_render import render_track_response
from carriers.usps import parse as usps_parse
from carriers.usps.sandbox_render import render_details
from tracker.text import clean_text

CARRIERS = ("dhl", "ups", "fedex", "usps", "postnord", "aftership")
FEDEX_BATCH = 30
AFTERSHIP_BATCH = 50

Job = tuple[list[str], Any]
"""The numbers asked in one request and the decoded body of the answer."""


def timelines(code: str, count: int) -> list[tuple[Timeline, datetime]]:
    """``count`` parcels of ``code`` on the sweep's routes, each with the moment it is read at."""
    spec = WorldSpec(
        shipments=count, carriers=((code, 1),), sweeps=3, latency_ms=0, database_url=""
    )
    start = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    templates = route_templates(code, spec, start)
    module = sandbox_module(code)
    parcels = []
    for i in range(count):
        number = module.sample_number(i + 1)
        timeline = templates[i % len(templates)].model_copy(update={"tracking_number": number})
        seen = start + timedelta(hours=25 + HOURS_PER_SWEEP * (i % 3))  # 4, 5 or 6 scans
        parcels.append((timeline, seen))
    return parcels


def decoded(body: object) -> Any:
    return json.loads(json.dumps(body))


def jobs_for(code: str, count: int) -> list[Job]:
    parcels = timelines(code, count)
    single: dict[str, Callable[[Timeline, datetime], dict[str, Any] | None]] = {
        "dhl": render_shipments,
        "ups": render_track_response,
        "usps": render_details,
        "postnord": render_postnord,
    }
    if code in single:
        render = single[code]
        return [([t.tracking_number], decoded(render(t, seen))) for t, seen in parcels]
    jobs: list[Job] = []
    size = FEDEX_BATCH if code == "fedex" else AFTERSHIP_BATCH
    for i in range(0, len(parcels), size):
        chunk = parcels[i : i + size]
        numbers = [t.tracking_number for t, _ in chunk]
        if code == "fedex":
            entries = [render_track_result(t, seen) for t, seen in chunk]
            body = {"transactionId": "bench", "output": {"completeTrackResults": entries}}
        else:
            trackings = [
                render_tracking(
                    t.tracking_number,
                    detect_slug(t.tracking_number),
                    seen - timedelta(days=2),
                    t,
                    seen,
                )
                for t, seen in chunk
            ]
            body = {
                "meta": {"code": 200, "message": "", "type": "OK"},
                "data": {"pagination": {"total": len(trackings)}, "trackings": trackings},
            }
        jobs.append((numbers, decoded(body)))
    return jobs


def parse_all(code: str, jobs: list[Job]) -> list[TrackResult]:
    """What the adapter's parse step makes of every job (the timed work)."""
    results: list[TrackResult] = []
    if code == "fedex":
        for numbers, body in jobs:
            results.extend(fedex_parse.parse_response(numbers, body).values())
    elif code == "aftership":
        for numbers, body in jobs:
            batch = aftership_parse.parse_batch(numbers, body)
            assert not isinstance(batch, aftership_parse.Unreadable), batch
            results.extend(r for r in batch.values() if r is not None)
    else:
        parse = {
            "dhl": dhl_parse.parse_response,
            "ups": ups_parse.parse_response,
            "usps": usps_parse.parse_response,
            "postnord": postnord_parse.parse_response,
        }[code]
        for numbers, body in jobs:
            results.append(parse(numbers[0], body))
    return results


def poller_rows(results: list[TrackResult]) -> int:
    """The per-event work of ``tracker.engine.poller`` storing ``results`` (text, dedupe key)."""
    rows = 0
    for result in results:
        for event in result.events:
            clean_text(event.carrier_code, 200)
            clean_text(event.message, 2000)
            for place in (event.city, event.province, event.country, event.zip):
                if place:
                    clean_text(place, 200)
            event.dedupe_key  # noqa: B018 (computed for its cost)
            rows += 1
    return rows


def best_of(repeat: int, work: Callable[[], object]) -> float:
    """Least CPU seconds of ``repeat`` runs of ``work`` (garbage collection off while timed)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            started = time.process_time()
            work()
            best = min(best, time.process_time() - started)
        finally:
            gc.enable()
    return best


def measure(codes: list[str], numbers: int, repeat: int) -> dict[str, Any]:
    """The figures ``main`` prints, for ``numbers`` shipments of each carrier in ``codes``."""
    us_per_shipment: dict[str, float] = {}
    events_per_shipment: dict[str, float] = {}
    every_result: list[TrackResult] = []
    for code in codes:
        jobs = jobs_for(code, numbers)
        results = parse_all(code, jobs)  # also warms up caches, as a running poller has them
        found = [r for r in results if r.outcome.value == "found"]
        if len(found) != numbers:
            raise SystemExit(f"{code}: {len(found)} of {numbers} parsed as found")
        seconds = best_of(repeat, partial(parse_all, code, jobs))
        us_per_shipment[code] = round(seconds / numbers * 1e6, 1)
        events_per_shipment[code] = round(sum(len(r.events) for r in found) / len(found), 2)
        every_result.extend(found)
    row_seconds = best_of(repeat, partial(poller_rows, every_result))
    return {
        "us_per_shipment": us_per_shipment,
        "mean_us_per_shipment": round(sum(us_per_shipment.values()) / len(codes), 1),
        "poller_rows_us_per_shipment": round(row_seconds / len(every_result) * 1e6, 1),
        "events_per_shipment": events_per_shipment,
        "numbers_per_carrier": numbers,
        "repeat": repeat,
        "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--numbers", type=int, default=300, help="shipments per carrier")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs; the best is kept")
    parser.add_argument("--carrier", action="append", choices=CARRIERS, help="default: all")
    args = parser.parse_args()
    figures = measure(args.carrier or list(CARRIERS), args.numbers, args.repeat)
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
