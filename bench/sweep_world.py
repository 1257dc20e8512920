"""The world of ``bench/sweep.py``: which shipments exist, what their carriers say, and the
child process that seeds them into PostgreSQL and serves every carrier's sandbox.

Deterministic for a given (shipments, carriers, sweeps): shipment ``i`` goes to a carrier by a
smooth weighted round robin over the carrier weights (the demo's mix by default), so every claim
of a few hundred due shipments sees the same mix; its number is the carrier sandbox's
``sample_number`` of its rank within that carrier. Every parcel is in transit with four scans
already visible (label, pickup, two hub scans), and one more hub scan becomes visible each time
the sandbox clocks move on by :data:`HOURS_PER_SWEEP`, so every poll of every sweep finds new
events and no parcel reaches a final status during the run.

The sandboxes are the carriers' own ``sandbox_app(world)`` with two bench-only changes: a
middleware that waits ``latency_ms`` before each request is handled (network and carrier
latency) and a :class:`BenchWorld` with no rate limit and no request log (a test aid that would
only cost the sandbox CPU here). Nothing in ``carriers/`` is changed. The process runs on the
loop the daemon and ``tracker sandbox`` run on (:func:`tracker.loop.run`: uvloop), with their
garbage collector settings (:func:`tracker.loop.settle_gc`, once the world is built).
"""

from __future__ import annotations

import asyncio
import importlib
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from types import ModuleType
from typing import Any

SHOP_DOMAIN = "bench-store.myshopify.com"
API_VERSION = "2026-10"
HOURS_PER_SWEEP = 10.0
"""How far the sandbox clocks move between two sweeps: one more hub scan per parcel."""
TEMPLATES_PER_CARRIER = 16
"""Different routes per carrier; parcel ``j`` of a carrier follows route ``j % 16``."""
COPY_ROWS = 50_000
"""Shipments per COPY statement while seeding."""

SHIPMENT_COLUMNS = (
    "shop_id",
    "order_id",
    "order_name",
    "fulfillment_id",
    "tracking_number",
    "tracking_company",
    "carrier",
    "carrier_source",
    "fulfilled_at",
    "next_poll_at",
)


@dataclass(frozen=True)
class WorldSpec:
    """What the child process builds; sent to it pickled."""

    shipments: int
    carriers: tuple[tuple[str, int], ...]  # (code, weight)
    sweeps: int
    latency_ms: float
    database_url: str
    seed: int = 5


def default_mix() -> tuple[tuple[str, int], ...]:
    """The demo's carrier weights (``tracker.sandbox.world.CARRIER_MIX``)."""
    from tracker.sandbox.world import CARRIER_MIX

    return tuple((code, weight) for code, (weight, _, _) in CARRIER_MIX.items())


def weighted_cycle(weights: Iterable[tuple[str, int]]) -> list[str]:
    """One period of a smooth weighted round robin: each code ``weight`` times, spread out."""
    items = [(code, weight) for code, weight in weights if weight > 0]
    total = sum(weight for _, weight in items)
    current = dict.fromkeys((code for code, _ in items), 0)
    cycle: list[str] = []
    for _ in range(total):
        for code, weight in items:
            current[code] += weight
        best = max(current, key=lambda code: current[code])
        current[best] -= total
        cycle.append(best)
    return cycle


def assignments(spec: WorldSpec) -> Iterator[tuple[int, str, int]]:
    """``(shipment index, carrier, rank within the carrier)`` for every shipment, in order."""
    cycle = weighted_cycle(spec.carriers)
    ranks = dict.fromkeys(cycle, 0)
    for i in range(spec.shipments):
        code = cycle[i % len(cycle)]
        rank = ranks[code]
        ranks[code] = rank + 1
        yield i, code, rank


def sandbox_module(code: str) -> ModuleType:
    return importlib.import_module(f"carriers.{code}.sandbox")


def company_name(code: str) -> str:
    from tracker.sandbox.world import CARRIER_MIX

    return CARRIER_MIX[code][2][0] if code in CARRIER_MIX else code


# -- seeding -------------------------------------------------------------------------------


async def seed(spec: WorldSpec, numbers: dict[str, list[str]]) -> None:
    """One shop and ``spec.shipments`` due shipments, by COPY in batches of :data:`COPY_ROWS`."""
    import asyncpg

    conn = await asyncpg.connect(spec.database_url)
    try:
        shop_id = await conn.fetchval(
            "INSERT INTO shops (domain, api_version) VALUES ($1, $2) RETURNING id",
            SHOP_DOMAIN,
            API_VERSION,
        )
        now = datetime.now(UTC)
        fulfilled_at = now - timedelta(days=1)
        due_from = now - timedelta(hours=1)  # one microsecond apart: claimed in seeded order
        companies = {code: company_name(code) for code, _ in spec.carriers}
        rows: list[tuple[Any, ...]] = []
        for i, code, rank in assignments(spec):
            rows.append(
                (
                    shop_id,
                    f"gid://shopify/Order/{1_000_000 + i}",
                    f"#{100_000 + i}",
                    f"gid://shopify/Fulfillment/{1_000_000 + i}",
                    numbers[code][rank],
                    companies[code],
                    code,
                    "shopify",
                    fulfilled_at,
                    due_from + timedelta(microseconds=i),
                )
            )
            if len(rows) == COPY_ROWS:
                await conn.copy_records_to_table(
                    "shipments", records=rows, columns=SHIPMENT_COLUMNS
                )
                rows = []
        if rows:
            await conn.copy_records_to_table("shipments", records=rows, columns=SHIPMENT_COLUMNS)
        await conn.execute("ANALYZE shipments")
    finally:
        await conn.close()


# -- sandboxes -----------------------------------------------------------------------------


def bench_world_class() -> type[Any]:
    """:class:`carriers.sandbox_base.CarrierWorld` without its rate limit and request log."""
    from aiohttp import web

    from carriers.sandbox_base import CarrierWorld

    class BenchWorld(CarrierWorld):
        def over_rate_limit(self) -> bool:
            return False

        def log(self, request: web.Request, numbers: Iterable[str], status: int) -> None:
            return None

    return BenchWorld


def route_templates(code: str, spec: WorldSpec, start: datetime) -> list[Any]:
    """:data:`TEMPLATES_PER_CARRIER` in-transit timelines in the carrier's region."""
    from carriers.sandbox_base import Kind, Scan, Timeline
    from tracker.sandbox.world import CARRIER_MIX, REGIONS

    region = CARRIER_MIX[code][1] if code in CARRIER_MIX else "eu"
    hubs, destinations = REGIONS[region]
    rng = random.Random(f"{spec.seed}:{code}")
    templates = []
    for _ in range(TEMPLATES_PER_CARRIER):
        origin, dest = rng.choice(hubs), rng.choice(destinations)

        def scan(kind: Kind, hours: float, place: tuple[str, str, str]) -> Scan:
            city, postal_code, country = place
            return Scan(
                kind=kind, after_hours=hours, city=city, postal_code=postal_code, country=country
            )

        scans = [scan(Kind.LABEL, 0, origin), scan(Kind.PICKUP, 2, origin)]
        # Two hub scans visible at once, then one more per sweep (and two spare).
        last = 10.0 + HOURS_PER_SWEEP * (spec.sweeps + 2)
        hours = 10.0
        while hours <= last:
            scans.append(scan(Kind.TRANSIT, hours, rng.choice(hubs)))
            hours += HOURS_PER_SWEEP
        scans.append(scan(Kind.OUT_FOR_DELIVERY, hours, dest))
        scans.append(scan(Kind.DELIVERED, hours + 4, dest))
        templates.append(
            Timeline(
                tracking_number="TEMPLATE",
                start=start,
                scans=scans,
                eta_hours=hours + 4,
            )
        )
    return templates


def latency_middleware(latency_ms: float) -> Callable[..., Awaitable[Any]]:
    """Wait ``latency_ms`` before the carrier's handler sees the request."""
    from aiohttp import web

    delay = latency_ms / 1000

    @web.middleware
    async def latency(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        await asyncio.sleep(delay)
        return await handler(request)

    return latency


async def _serve(spec: WorldSpec, conn: Connection) -> None:
    from aiohttp import web

    from tracker.loop import settle_gc
    from tracker.sandbox.serve import serve

    codes = [code for code, _ in spec.carriers]
    modules = {code: sandbox_module(code) for code in codes}
    numbers: dict[str, list[str]] = {code: [] for code in codes}
    for _, code, rank in assignments(spec):
        numbers[code].append(modules[code].sample_number(rank + 1))

    started = time.perf_counter()
    await seed(spec, numbers)
    seed_seconds = time.perf_counter() - started

    start = datetime.now(UTC) - timedelta(hours=25)  # label, pickup and two hub scans visible
    world_class = bench_world_class()
    worlds: dict[str, Any] = {}
    runners: list[web.AppRunner] = []
    settings: dict[str, dict[str, Any]] = {}
    for code in codes:
        world = world_class()
        templates = route_templates(code, spec, start)
        for rank, number in enumerate(numbers[code]):
            template = templates[rank % len(templates)]
            world.timelines[number.upper()] = template.model_copy(
                update={"tracking_number": number}
            )
        numbers[code] = []
        worlds[code] = world
        app = modules[code].sandbox_app(world)
        if spec.latency_ms > 0:
            app.middlewares.append(latency_middleware(spec.latency_ms))
        runner, url = await serve(app, 0)
        runners.append(runner)
        settings[code] = {**modules[code].SANDBOX_SETTINGS, "base_url": url}
    settle_gc()  # as `tracker sandbox` does: the world, built once, is out of the collector's walks
    conn.send(("ready", {"carriers": settings, "seed_seconds": round(seed_seconds, 2)}))
    try:
        while True:
            message = await asyncio.to_thread(conn.recv)
            if message[0] == "advance":
                for world in worlds.values():
                    world.clock.advance(timedelta(hours=message[1]))
                conn.send(("advanced", None))
            elif message[0] == "cpu":
                conn.send(("cpu", time.process_time()))
            else:
                return
    finally:
        for runner in runners:
            await runner.cleanup()


def run_world(spec: WorldSpec, conn: Connection) -> None:
    """Child process: seed, serve the sandboxes, obey ``advance`` / ``cpu`` / ``stop``."""
    from tracker.loop import run  # uvloop, as ``tracker sandbox`` and the daemon run on

    try:
        run(_serve(spec, conn))
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        raise
