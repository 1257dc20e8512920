"""The world the crash tests kill daemons in, and the truth they compare the store with.

Every carrier's sandbox and the Shopify sandbox, served by the test's own event loop around a
demo world (:mod:`tracker.sandbox.world`) whose parcels move on a compressed clock. A
:class:`Wire` sits in front of every sandbox: it slows requests down a little (so that a kill
finds work on the wire), remembers which requests are being answered and over which connection
(so that a kill can be told apart by phase), can hold the answer to one process's next
``fulfillmentEventCreate`` after Shopify stored the event (so that a kill lands between
Shopify accepting a write and the daemon recording it), and notes every request the client
hung up on.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import psutil
from aiohttp import web

from carriers.sandbox_base import EXPECTED_STATUS, Kind
from tracker.config import DEFAULT_API_VERSION
from tracker.domain import status_for_api_version
from tracker.sandbox.serve import CarrierSandbox, carrier_sandboxes, serve
from tracker.sandbox.shopify_app import build_app as build_shopify_app
from tracker.sandbox.shopify_store import ShopifyStore
from tracker.sandbox.world import DemoParcel, NumberBook, populate
from tracker.shopify.sync import normalize_tracking_number

SHOP = "crash-store.myshopify.com"
TOKEN = "shpat_crash_token"

# Seconds each kind of request waits before it is answered: a sync page is slow enough that
# restarts find one on the wire, writes and polls a little slower than a local server.
LATENCY: dict[str, tuple[float, float]] = {
    "sync": (0.10, 0.30),
    "write": (0.02, 0.08),
    "poll": (0.02, 0.12),
    "shopify": (0.0, 0.02),
}


Link = tuple[int, int]
"""A TCP connection on 127.0.0.1 as (client port, server port)."""


def links_of(pid: int) -> set[Link]:
    """The TCP connections a process holds: how the sandboxes tell its requests apart."""
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return set()
    return {(c.laddr.port, c.raddr.port) for c in connections if c.laddr and c.raddr}


@dataclass
class Call:
    """One request a sandbox is answering (or answered)."""

    kind: str  # sync, write, poll, shopify
    link: Link
    started: float
    ended: float | None = None
    outcome: str = "running"  # answered, cut (the client hung up first)
    held: bool = False


@dataclass
class Wire:
    """Requests in flight on every sandbox, their latency, and one held Shopify answer."""

    rng: random.Random
    in_flight: dict[int, Call] = field(default_factory=dict)
    cut: list[Call] = field(default_factory=list)
    hold_pid: int | None = None
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    def middleware(
        self, classify: Callable[[web.Request], Awaitable[str | None]]
    ) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def wire(request: web.Request, handler: Any) -> web.StreamResponse:
            kind = await classify(request)
            if kind is None:
                return await handler(request)  # type: ignore[no-any-return]
            transport = request.transport
            peer = transport.get_extra_info("peername") if transport else None
            own = transport.get_extra_info("sockname") if transport else None
            link = (int(peer[1]), int(own[1])) if peer and own else (-1, -1)
            call = Call(kind, link, time.monotonic())
            key = next(self._ids)
            self.in_flight[key] = call
            try:
                await asyncio.sleep(self.rng.uniform(*LATENCY[kind]))
                response = await handler(request)
                if kind == "write" and self._take_hold(call.link):
                    # Shopify stored the event; its answer waits until the caller is killed.
                    call.held = True
                    await self._release.wait()
                call.outcome = "answered"
                return response  # type: ignore[no-any-return]
            except asyncio.CancelledError:
                call.outcome = "cut"
                self.cut.append(call)
                raise
            finally:
                call.ended = time.monotonic()
                del self.in_flight[key]

        return wire

    def _take_hold(self, link: Link) -> bool:
        if self.hold_pid is None or link not in links_of(self.hold_pid):
            return False
        self.hold_pid = None
        return True

    def hold_next_write(self, pid: int) -> None:
        """Hold the answer to the next ``fulfillmentEventCreate`` process ``pid`` sends."""
        self.hold_pid = pid

    def release(self) -> None:
        """Forget the hold and let every held answer go."""
        self.hold_pid = None
        self._release.set()
        self._release = asyncio.Event()

    def running(self, kind: str, links: set[Link]) -> list[Call]:
        return [c for c in self.in_flight.values() if c.kind == kind and c.link in links]

    def held(self, links: set[Link]) -> bool:
        return any(c.held and c.link in links for c in self.in_flight.values())

    def cut_since(self, since: float, links: set[Link]) -> list[Call]:
        """Requests over ``links`` whose client hung up after ``since``."""
        return [c for c in self.cut if c.link in links and (c.ended or 0) >= since]


async def _shopify_kind(request: web.Request) -> str | None:
    if request.method != "POST" or not request.path.endswith("/graphql.json"):
        return None
    try:
        body = await request.json()  # aiohttp keeps the body for the handler
    except ValueError:
        return "shopify"
    operation = body.get("operationName") if isinstance(body, dict) else None
    return {"FulfilledOrders": "sync", "FulfillmentEventCreate": "write"}.get(
        str(operation), "shopify"
    )


async def _carrier_kind(request: web.Request) -> str | None:
    return None if request.path.startswith("/_sandbox") else "poll"


@dataclass
class CrashWorld:
    store: ShopifyStore
    carriers: dict[str, CarrierSandbox]
    parcels: dict[str, DemoParcel]  # by normalized tracking number
    wire: Wire
    seed: int
    shopify_url: str = ""
    runners: list[web.AppRunner] = field(default_factory=list)

    def config(self, database_url: str) -> dict[str, Any]:
        """``tracker run`` on this world: fast timers, short leases, every carrier."""
        return {
            "database": {"url": database_url, "pool_min_size": 1, "pool_max_size": 6},
            "shops": [
                {
                    "domain": SHOP,
                    "access_token": TOKEN,
                    "api_url": self.shopify_url,
                    "api_version": DEFAULT_API_VERSION,
                }
            ],
            "web": {"host": "127.0.0.1", "port": 0},
            "carriers": {
                code: {
                    **box.module.SANDBOX_SETTINGS,
                    "base_url": box.url,
                    "requests_per_second": 40,
                    "requests_per_day": 10_000_000,
                    "timeout_seconds": 10,
                    "max_attempts": 2,
                }
                for code, box in self.carriers.items()
            },
            "sync": {"interval": "2s", "page_size": 25, "overlap": "1s"},
            "polling": {
                "sweep_interval": "0.3s",
                "batch_size": 40,
                "lease": "4s",
                "pre_transit_every": "4s",
                "in_transit_every": "4s",
                "out_for_delivery_every": "3s",
                "not_found_every": "20s",
                # Delivered and failed parcels wait for the final poll of the test: none
                # stops being tracked before every scan of its timeline has been seen.
                "final_confirm_after": "1h",
                "circuit_failures": 50,
                "circuit_open_for": "5s",
            },
            "writeback": {"drain_interval": "0.3s", "lease": "2s"},
            "attention": {"interval": "1h"},
        }

    def reveal_everything(self) -> timedelta:
        """Move every carrier's clock past the last scan of every parcel; by how much."""
        now = datetime.now(UTC)
        last = max(
            (
                p.timeline.at(s)
                for p in self.parcels.values()
                if p.timeline
                for s in p.timeline.scans
            ),
            default=now,
        )
        delta = max(last - now, timedelta()) + timedelta(seconds=5)
        for box in self.carriers.values():
            box.world.clock.advance(delta)
        return delta

    def expected(self) -> dict[str, list[tuple[str, datetime]]]:
        """The truth: per fulfillment gid, every scan's Shopify status and time, in order."""
        truth: dict[str, list[tuple[str, datetime]]] = {}
        for fulfillment in self.store.fulfillments():
            events: list[tuple[str, datetime]] = []
            for info in fulfillment.tracking:
                parcel = self.parcels.get(normalize_tracking_number(info.number))
                if parcel is None or parcel.timeline is None:
                    continue
                overrides = getattr(self.carriers[parcel.carrier].module, "KIND_STATUS", {})
                line = parcel.timeline
                for scan in sorted(line.scans, key=lambda s: s.after_hours):
                    status = overrides.get(scan.kind, EXPECTED_STATUS[Kind(scan.kind)])
                    if status is not None:
                        shopify = status_for_api_version(status, DEFAULT_API_VERSION).shopify
                        events.append((shopify, line.at(scan)))
            truth[f"gid://shopify/Fulfillment/{fulfillment.id}"] = events
        return truth

    async def close(self) -> None:
        self.wire.release()
        for runner in self.runners:
            await runner.cleanup()


async def start_world(*, orders: int, speed: float, seed: int) -> CrashWorld:
    """A store of ``orders`` orders over every carrier, each sandbox behind one :class:`Wire`."""
    store = ShopifyStore(SHOP, TOKEN, bucket_size=2000, restore_rate=1000)
    boxes = carrier_sandboxes()
    numbers = NumberBook({code: box.module.sample_number for code, box in boxes.items()})
    parcels = populate(
        store,
        {code: box.world for code, box in boxes.items()},
        numbers,
        orders=orders,
        speed=speed,
        seed=seed,
        now=datetime.now(UTC),
    )
    by_number = {normalize_tracking_number(p.number): p for p in parcels}
    assert len(by_number) == len(parcels), "two parcels share a tracking number"
    world = CrashWorld(store, boxes, by_number, Wire(random.Random(seed)), seed)
    shopify = build_shopify_app(store)
    shopify.middlewares.append(world.wire.middleware(_shopify_kind))
    runner, world.shopify_url = await serve(shopify, 0)
    world.runners.append(runner)
    for box in boxes.values():
        app = box.module.sandbox_app(box.world)
        app.middlewares.append(world.wire.middleware(_carrier_kind))
        runner, box.url = await serve(app, 0)
        world.runners.append(runner)
    return world


async def check_against_truth(db: asyncpg.Connection, world: CrashWorld) -> tuple[int, int]:
    """The store holds exactly the truth, written in order; the database agrees with it.

    Returns (events checked, fulfillments with events).
    """
    truth = world.expected()
    wrong: list[str] = []
    for fulfillment in world.store.fulfillments():
        gid = f"gid://shopify/Fulfillment/{fulfillment.id}"
        want = truth[gid]
        got = world.store.events(fulfillment.id)
        same = [e.status for e in got] == [s for s, _ in want] and all(
            abs(e.happened_at - at) < timedelta(seconds=1)
            for e, (_, at) in zip(got, want, strict=True)
        )
        written = [e.happened_at for e in sorted(fulfillment.events, key=lambda e: e.id)]
        if not same or written != sorted(written):
            stored = [(e.status, e.happened_at.isoformat()) for e in fulfillment.events]
            wrong.append(
                f"{gid}: expected {[(s, a.isoformat()) for s, a in want]}, "
                f"store has (in the order written) {stored}"
            )
    assert not wrong, f"{len(wrong)} fulfillments differ from the truth:\n" + "\n".join(wrong[:10])

    rows = await db.fetch(
        """
        SELECT e.id, e.status, e.happened_at, e.writeback_state, e.shopify_event_id,
               s.fulfillment_id
        FROM tracking_events e JOIN shipments s ON s.id = e.shipment_id
        WHERE e.status IS NOT NULL
        """
    )
    unwritten = [dict(r) for r in rows if r["writeback_state"] != "written"]
    assert not unwritten, f"{len(unwritten)} events not written: {unwritten[:5]}"
    remote = {e.gid: e for e in world.store.all_events()}
    ids = [r["shopify_event_id"] for r in rows]
    assert len(ids) == len(set(ids)), "one Shopify event recorded for two local events"
    assert set(ids) == set(remote), (
        f"recorded but not on Shopify: {sorted(set(ids) - set(remote))[:5]}; "
        f"on Shopify but not recorded: {sorted(set(remote) - set(ids))[:5]}"
    )
    for row in rows:
        event = remote[row["shopify_event_id"]]
        assert f"gid://shopify/Fulfillment/{event.fulfillment_id}" == row["fulfillment_id"]
        assert event.status == row["status"].upper()
        assert event.happened_at == row["happened_at"].replace(microsecond=0)
    return len(remote), sum(1 for events in truth.values() if events)
