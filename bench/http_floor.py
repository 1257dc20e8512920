"""CPU one carrier request costs the polling process, and how much of it is aiohttp's alone.

    python bench/http_floor.py [--requests 20000] [--in-flight 200] [--rounds 3]

The poller of ``bench/sweep.py`` runs at about a core; most of it goes to asking carriers. This
measures the floor under that: the DHL sandbox (the sweep's routes, four scans per parcel) runs
in a child process, and this process, on the daemon's event loop and garbage-collector settings
and with the daemon's connection limits, asks it about ``--requests`` numbers, at most
``--in-flight`` at once, in three ways, one after the other, ``--rounds`` times:

* ``aiohttp``: ``session.get`` with the adapter's query and headers, ``read()``, ``orjson.loads``:
  the HTTP client alone, nothing of ours;
* ``aiohttp_parse``: the same, then :func:`carriers.dhl.parse.parse_response`: the least any
  DHL answer read into a :class:`~carriers.base.TrackResult` can cost;
* ``adapter``: ``DhlAdapter.track([number])``, what the poller calls (retry policy and rate
  limiter, the answer's checks, one number's parser bug kept to that number).

Timed with ``time.process_time`` (this process only: the sandbox's CPU is not counted). Prints
one JSON line: per way, CPU microseconds per request (the median round, and every round) and
requests per second; ``ours_us`` is the adapter's cost over ``aiohttp_parse``'s; and the ceiling
those floors put on one polling process at the sweep's 0.86 requests per update.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sweep_world import WorldSpec, bench_world_class, route_templates, sandbox_module

CARRIER = "dhl"
REQUESTS_PER_UPDATE = 0.86
"""The sweep's carrier mix asks this many requests per update (bench/README.md)."""
WAYS = ("aiohttp", "aiohttp_parse", "adapter")


def serve_sandbox(count: int, conn: Connection) -> None:
    """Child process: the DHL sandbox knowing ``count`` parcels; sends its URL, numbers and
    settings, then serves until told to stop."""
    from tracker.loop import run

    run(_serve(count, conn))


async def _serve(count: int, conn: Connection) -> None:
    from tracker.loop import settle_gc
    from tracker.sandbox.serve import serve

    module = sandbox_module(CARRIER)
    spec = WorldSpec(count, ((CARRIER, 1),), sweeps=1, latency_ms=0.0, database_url="")
    templates = route_templates(CARRIER, spec, datetime.now(UTC) - timedelta(hours=25))
    world = bench_world_class()()
    numbers = [module.sample_number(rank + 1) for rank in range(count)]
    for rank, number in enumerate(numbers):
        template = templates[rank % len(templates)]
        world.timelines[number.upper()] = template.model_copy(update={"tracking_number": number})
    runner, url = await serve(module.sandbox_app(world), 0)
    settle_gc()
    conn.send((url, numbers, module.SANDBOX_SETTINGS))
    try:
        await asyncio.to_thread(conn.recv)  # "stop"
    finally:
        await runner.cleanup()


async def measure(
    url: str, numbers: list[str], sandbox_settings: dict[str, Any], in_flight: int, rounds: int
) -> dict[str, list[tuple[float, float]]]:
    """Per way, (CPU us per request, requests per second) of each round."""
    import aiohttp
    import orjson

    from carriers.base import CarrierSettings
    from carriers.dhl import parse
    from carriers.registry import build_adapters

    settings = CarrierSettings.model_validate(
        {**sandbox_settings, "base_url": url, "requests_per_second": 1_000_000.0}
    )
    key = sandbox_settings["api_key"]
    endpoint = f"{url}/track/shipments"
    headers = {"DHL-API-Key": key, "Accept": "application/json"}
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=in_flight)  # as the daemon's
    async with aiohttp.ClientSession(connector=connector) as session:
        adapter = build_adapters({CARRIER: settings}, session)[CARRIER]
        gate = asyncio.Semaphore(in_flight)

        async def bare(number: str) -> object:
            async with (
                gate,
                session.get(
                    endpoint,
                    params={"trackingNumber": number, "language": "en"},
                    headers=headers,
                ) as response,
            ):
                return orjson.loads(await response.read())

        async def bare_parse(number: str) -> object:
            return parse.parse_response(number, await bare(number))

        async def through_adapter(number: str) -> object:
            async with gate:
                return await adapter.track([number])

        ways: dict[str, Callable[[str], Awaitable[object]]] = {
            "aiohttp": bare,
            "aiohttp_parse": bare_parse,
            "adapter": through_adapter,
        }
        for ask in ways.values():  # connections opened, code paths warm
            await asyncio.gather(*(ask(n) for n in numbers[:in_flight]))
        figures: dict[str, list[tuple[float, float]]] = {way: [] for way in WAYS}
        for _ in range(rounds):
            for way in WAYS:
                figures[way].append(await _timed(ways[way], numbers, in_flight))
        return figures


async def _timed(
    ask: Callable[[str], Awaitable[object]], numbers: list[str], in_flight: int
) -> tuple[float, float]:
    chunk = in_flight * 10  # bounded tasks at once, as the poller's groups are
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, len(numbers), chunk):
        answers = await asyncio.gather(*(ask(n) for n in numbers[start : start + chunk]))
        assert all(answers)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / len(numbers) * 1e6, len(numbers) / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="numbers asked per round")
    parser.add_argument("--in-flight", type=int, default=200, help="requests at once")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three ways")
    args = parser.parse_args()
    if args.requests < 1 or args.in_flight < 1 or args.rounds < 1:
        parser.error("--requests, --in-flight and --rounds must be at least 1")

    from tracker.loop import run, settle_gc

    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    child = context.Process(target=serve_sandbox, args=(args.requests, theirs), daemon=True)
    child.start()
    try:
        if not ours.poll(120):
            raise SystemExit("the sandbox process was not ready within 120 s")
        url, numbers, sandbox_settings = ours.recv()
        settle_gc()
        figures = run(measure(url, numbers, sandbox_settings, args.in_flight, args.rounds))
    finally:
        if child.is_alive():
            ours.send("stop")
        child.join(10)
        if child.is_alive():
            child.kill()

    median = {way: statistics.median(us for us, _ in figures[way]) for way in WAYS}
    print(
        json.dumps(
            {
                "carrier": CARRIER,
                "requests": args.requests,
                "in_flight": args.in_flight,
                "rounds": args.rounds,
                "cpu_us_per_request": {way: round(median[way], 1) for way in WAYS},
                "rounds_us": {way: [round(us, 1) for us, _ in figures[way]] for way in WAYS},
                "requests_per_s": {way: [round(rate) for _, rate in figures[way]] for way in WAYS},
                "ours_us": round(median["adapter"] - median["aiohttp_parse"], 1),
                "ceiling_updates_per_s": {
                    way: round(1e6 / (median[way] * REQUESTS_PER_UPDATE)) for way in WAYS
                },
                "python": sys.version.split()[0],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
