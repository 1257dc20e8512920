"""The clients of ``bench/load_web.py``: what merchants and scripts ask the web for, and the
latencies they see.

A :class:`Client` is one merchant's browser or script: one ``aiohttp`` session, one request at a
time, no pause between requests. Each thing it does is one of the kinds in :data:`MIX`, picked
by weight: the first page of a tab, filters and sorts, searches (order number, tracking number,
surname), a shipment's page, the JSON list, item and counts, and the CSV export of a search for
an order-number prefix. After a first page it follows the page's "Next page" link or the API's
``next_cursor`` up to :data:`PAGES_FOLLOWED` times, each with probability 1/2, and not once the
run is over. What it asks for is real (:class:`Targets`: ids and tracking numbers read from the
seeded database). Every answer's latency goes to a :class:`Recorder` under its route; any answer
but 200, or none, is an error. :func:`drive` makes each kind of request ``solo`` times by one
client alone, then runs ``clients`` clients for ``seconds``.
"""

from __future__ import annotations

import asyncio
import html
import json
import random
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from bench.web_world import LAST_NAMES, ORDER_BASE, SHOPS

REQUEST_TIMEOUT = 60.0
PAGES_FOLLOWED = 4
"""At most this many "next" pages after a first page (each followed with probability 1/2)."""
_NEXT = re.compile(r'<a href="([^"]+)" rel="next">')
TABS = (
    "all",
    "attention",
    "active",
    "pre_transit",
    "in_transit",
    "out_for_delivery",
    "delivered",
    "problems",
    "untracked",
)
STATUSES = ("in_transit", "delivered", "out_for_delivery", "label_printed", "attempted_delivery")
CARRIERS = ("dhl", "ups", "fedex", "usps", "postnord", "aftership", "unknown")
FLAGS = ("stalled", "late", "not_found", "delivery_attempt_failed", "expired")
SORTS = ("order", "last_scan", "eta", "transit", "shipped")


@dataclass(frozen=True)
class Targets:
    """Real values to ask for: shipment ids, tracking numbers, the days shipments span."""

    ids: list[int]
    numbers: list[str]
    shipments: int
    today: datetime


def _query(path: str, **params: str) -> str:
    pairs = [(k, v) for k, v in params.items() if v]
    return path + ("?" + urlencode(pairs) if pairs else "")


def _table_view(rng: random.Random, targets: Targets) -> str:
    choice = rng.randrange(8)
    if choice == 0:
        return _query("/", status=rng.choice(STATUSES), carrier=rng.choice(CARRIERS))
    if choice == 1:
        return _query("/", store=rng.choice(SHOPS)[0], tab=rng.choice(("all", "active")))
    if choice == 2:
        return _query("/", tab="active", attention=",".join(rng.sample(FLAGS, 2)))
    if choice == 3:
        start = targets.today - timedelta(days=rng.randrange(7, 90))
        end = start + timedelta(days=6)
        return _query("/", shipped_from=f"{start:%Y-%m-%d}", shipped_to=f"{end:%Y-%m-%d}")
    if choice == 4:
        return _query("/", tab="active", last_scan_before=rng.choice(("2d", "5d", "1w")))
    if choice == 5:
        return _query("/", tab="in_transit", sort="eta", carrier=rng.choice(CARRIERS[:5]))
    if choice == 6:
        return _query("/", tab=rng.choice(TABS), sort=rng.choice(SORTS))
    return _query("/", sort=rng.choice(SORTS), dir=rng.choice(("asc", "desc")))


def _search(rng: random.Random, targets: Targets) -> str:
    choice = rng.randrange(4)
    if choice == 0:
        q = f"#{ORDER_BASE + rng.randrange(targets.shipments)}"
    elif choice == 1:
        q = rng.choice(targets.numbers)
    elif choice == 2:
        q = rng.choice(LAST_NAMES)
    else:
        q = f"{rng.choice(LAST_NAMES).lower()}{rng.randrange(997)}@"
    return _query("/", q=q)


@dataclass
class Recorder:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    examples: list[str] = field(default_factory=list)


class Client:
    """One merchant's browser or script: one session, one request at a time."""

    def __init__(
        self,
        session: Any,
        base: str,
        rng: random.Random,
        recorder: Recorder,
        until: float = float("inf"),
    ) -> None:
        self.session = session
        self.base = base
        self.rng = rng
        self.recorder = recorder
        self.until = until  # no more "next" pages after this (perf_counter)

    def follows(self) -> bool:
        """Whether the user goes on to the next page (half do, while the run lasts)."""
        return time.perf_counter() < self.until and self.rng.random() >= 0.5

    async def get(self, route: str, path: str) -> tuple[int, bytes]:
        started = time.perf_counter()
        status, body = 0, b""
        try:
            async with self.session.get(self.base + path, allow_redirects=False) as response:
                status, body = response.status, await response.read()
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            problem = f"HTTP {status}: {body[:200]!r}"
        self.recorder.latencies[route].append((time.perf_counter() - started) * 1000)
        if status != 200:
            self.recorder.errors[route] += 1
            if len(self.recorder.examples) < 10:
                self.recorder.examples.append(f"{route} {path}: {problem}")
        return status, body

    async def table(self, route: str, path: str) -> None:
        status, body = await self.get(route, path)
        for _ in range(PAGES_FOLLOWED):
            found = _NEXT.search(body.decode("utf-8", "replace")) if status == 200 else None
            if found is None or not self.follows():
                return
            status, body = await self.get("table_next_page", html.unescape(found.group(1)))

    async def api_list(self, path: str) -> None:
        status, body = await self.get("api_list", path)
        for _ in range(PAGES_FOLLOWED):
            cursor = json.loads(body).get("next_cursor") if status == 200 else None
            if not cursor or not self.follows():
                return
            joiner = "&" if "?" in path else "?"
            status, body = await self.get("api_next_page", f"{path}{joiner}cursor={cursor}")

    async def one(self, targets: Targets, kind: str | None = None) -> None:
        """One thing a user does (``kind``, or one picked by the mix's weights)."""
        rng = self.rng
        kind = kind or rng.choices(KINDS, weights=WEIGHTS)[0]
        if kind == "table_tab":
            tab = rng.choice(TABS)
            await self.table(kind, "/" if tab == "all" else _query("/", tab=tab))
        elif kind == "table_filter":
            await self.table(kind, _table_view(rng, targets))
        elif kind == "table_search":
            await self.table(kind, _search(rng, targets))
        elif kind == "shipment_page":
            await self.get(kind, f"/shipments/{rng.choice(targets.ids)}")
        elif kind == "api_list":
            view = _table_view(rng, targets) if rng.random() < 0.5 else f"/?tab={rng.choice(TABS)}"
            await self.api_list("/api/shipments" + view[1:])
        elif kind == "api_item":
            await self.get(kind, f"/api/shipments/{rng.choice(targets.ids)}")
        elif kind == "api_counts":
            await self.get(kind, "/api/counts" + _table_view(rng, targets)[1:])
        else:
            prefix = f"#{(ORDER_BASE + rng.randrange(targets.shipments)) // 10}"
            await self.get(kind, _query("/export.csv", q=prefix))  # 10 to 110 orders


MIX = {
    "table_tab": 20,
    "table_filter": 15,
    "table_search": 10,
    "shipment_page": 12,
    "api_list": 10,
    "api_item": 12,
    "api_counts": 4,
    "export_csv": 2,
}
KINDS, WEIGHTS = list(MIX), list(MIX.values())


async def drive(
    base: str, targets: Targets, clients: int, seconds: float, solo: int, seed: int
) -> tuple[Recorder, Recorder, float]:
    """The solo pass, then ``clients`` clients for ``seconds``; (solo, load, wall seconds)."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    solo_recorder = Recorder()
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = Client(session, base, random.Random(seed), solo_recorder)
        for _ in range(solo):
            for kind in KINDS:
                await client.one(targets, kind)

    recorder = Recorder()
    sessions = [aiohttp.ClientSession(timeout=timeout) for _ in range(clients)]
    started = time.perf_counter()
    end = started + seconds

    async def run(n: int) -> None:
        client = Client(sessions[n], base, random.Random(seed * 1000 + n), recorder, end)
        while time.perf_counter() < end:
            await client.one(targets)

    try:
        await asyncio.gather(*(run(n) for n in range(clients)))
    finally:
        wall = time.perf_counter() - started
        for session in sessions:
            await session.close()
    return solo_recorder, recorder, wall


def percentiles(values: list[float]) -> dict[str, float | int]:
    ordered = sorted(values)

    def at(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1)

    return {"n": len(ordered), "p50": at(0.5), "p95": at(0.95), "p99": at(0.99)}
