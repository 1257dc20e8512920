"""The world of ``bench/load_web.py``: N shipments as a merchant's status table shows them.

Deterministic for a given (shipments, seed). Three stores (60/30/10 %); carriers and tracking
numbers as ``bench/sweep_world.py`` assigns them (the demo's mix, each carrier sandbox's
``sample_number``); customers from a small list of names, so a search for a surname finds a few
per cent of the rows and one for an order number a handful. Shipments were fulfilled evenly
over :data:`HISTORY_DAYS`, in the order of their ids (as a real store's arrive), and each
follows one of the :data:`PROFILES` that cover its age (delivered long ago, in transit, out for
delivery, failed attempt, waiting at a pickup point, returned, never polled, not found,
expired, no tracking number, unknown carrier, cancelled, stalled, late...): most are delivered,
a few per cent are on their way, and every tab and filter of the table has rows. Attention
flags are then computed by the daemon's own ``refresh_attention``.

Seeding, in one transaction: the shipments' and events' secondary indexes are dropped, rows
are copied in (``COPY_ROWS`` shipments a statement, their events right after), the indexes are
built again from their own definitions and attention is refreshed; then both tables are
``VACUUM ANALYZE``\\ d, as autovacuum would have done on a database that got there by itself.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from bench.sweep_world import (
    COPY_ROWS,
    WorldSpec,
    assignments,
    company_name,
    default_mix,
    sandbox_module,
)

SHOPS = (
    ("bench-table-a.myshopify.com", 6),
    ("bench-table-b.myshopify.com", 3),
    ("bench-table-c.myshopify.com", 1),
)
API_VERSION = "2026-10"
ORDER_BASE = 100_000
"""Shipment ``i`` belongs to order ``#<ORDER_BASE + i>``."""
FIRST_NAMES = (
    "Anna", "Ben", "Clara", "David", "Elif", "Finn", "Greta", "Hugo", "Ida", "Jonas",
    "Karin", "Liam", "Maja", "Noah", "Olga", "Paul", "Rosa", "Sven", "Tara", "Umar",
)  # fmt: skip
LAST_NAMES = (
    "Berg", "Carlsson", "Dietrich", "Eriksen", "Fischer", "Garcia", "Hansen", "Iversen",
    "Jensen", "Keller", "Lindqvist", "Moreau", "Nielsen", "Olsen", "Petersen", "Quist",
    "Rossi", "Schmidt", "Tanaka", "Ullmann", "Vogel", "Weber", "Xavier", "Yilmaz", "Zimmer",
    "Andersson", "Bauer", "Costa", "Dubois", "Evans",
)  # fmt: skip
CITIES = (
    ("Leipzig", "04109", "DE"), ("Louisville", "40209", "US"), ("Memphis", "38118", "US"),
    ("Malmo", "21119", "SE"), ("Copenhagen", "2300", "DK"), ("Chicago", "60666", "US"),
    ("Koeln", "50667", "DE"), ("Oslo", "0150", "NO"), ("Rotterdam", "3011", "NL"),
)  # fmt: skip

SHIPMENT_COLUMNS = (
    "shop_id", "order_id", "order_name", "fulfillment_id", "tracking_number",
    "tracking_company", "carrier", "carrier_source", "customer_name", "customer_email",
    "fulfilled_at", "status", "status_at", "carrier_state", "carrier_message",
    "estimated_delivery_at", "first_eta", "last_event_id", "active", "next_poll_at",
    "last_polled_at", "retired_reason", "stopped_reason", "last_scan_at", "not_found_since",
    "final_confirmed",
)  # fmt: skip
EVENT_COLUMNS = (
    "shipment_id", "status", "happened_at", "carrier_code", "message", "city", "country", "zip",
    "dedupe_key", "discovered_at", "writeback_state", "shopify_event_id", "written_at",
)  # fmt: skip

PRE = ("label_printed",)
MOVING = ("label_printed", "carrier_picked_up", "in_transit", "in_transit")
DONE = (*MOVING, "out_for_delivery", "delivered")


HISTORY_DAYS = 120.0
"""Shipments were fulfilled over this many days, evenly, in the order of their ids."""
AGE_STEP = 0.1
"""Days per step of :func:`profile_table`."""


@dataclass(frozen=True)
class Profile:
    """A kind of shipment: how common it is among shipments of the ages it covers, its scans,
    its state and its ages (days)."""

    name: str
    weight: int  # of each 1,000 shipments of an age within ``age``, before normalizing
    path: tuple[str, ...]  # statuses of its events, oldest first; the last is its status
    age: tuple[float, float]  # fulfilled this many days ago
    last_scan: tuple[float, float]  # this many days ago (after=False) or after fulfilment
    carrier_state: str = "found"
    active: bool = True
    stopped_reason: str | None = None
    retired_reason: str | None = None
    eta_days: float | None = None  # first ETA, days from now (negative: past)
    carrier: bool = True  # False: no adapter knows its carrier
    tracked: bool = True  # False: fulfilled without a tracking number
    after: bool = False  # last_scan counts from fulfilment (finished parcels)


ATTEMPTED = (*MOVING, "out_for_delivery", "attempted_delivery")
PROFILES = (
    Profile("delivered", 900, DONE, (3.5, 120), (1.5, 5), active=False, after=True),
    Profile("delivered_recently", 250, DONE, (1.5, 3.5), (0, 1), eta_days=-1),
    Profile("in_transit", 450, MOVING, (1, 5), (0, 1.5), eta_days=2),
    Profile("picked_up", 250, MOVING[:2], (0.3, 2), (0, 0.3), eta_days=3),
    Profile("out_for_delivery", 80, (*MOVING, "out_for_delivery"), (1.5, 5), (0, 0.4)),
    Profile("delayed", 30, (*MOVING, "delayed"), (2, 8), (0, 2), eta_days=1),
    Profile("attempted", 25, ATTEMPTED, (2, 8), (0, 2)),
    Profile("at_pickup_point", 30, (*MOVING, "ready_for_pickup"), (3, 14), (0, 9)),
    Profile("returned", 10, (*MOVING, "failure"), (10, 60), (5, 9), active=False, after=True),
    Profile("label_only", 120, PRE, (0, 3), (0, 3)),
    Profile("never_polled", 500, (), (0, 0.5), (0, 0.5), carrier_state="pending"),
    Profile("not_found", 40, (), (1, 6), (1, 6), carrier_state="not_found"),
    Profile(
        "expired", 10, MOVING, (40, 90), (2, 6), active=False, stopped_reason="expired", after=True
    ),
    Profile("stalled", 15, MOVING, (10, 25), (8, 10)),
    Profile("late", 20, MOVING, (8, 14), (0, 2), eta_days=-4),
    Profile("carrier_error", 10, MOVING, (1, 4), (0, 1), carrier_state="carrier_error"),
    Profile("no_tracking_number", 8, (), (0, 120), (0, 0), "untracked", False, tracked=False),
    Profile("unknown_carrier", 12, (), (0, 120), (0, 0), "no_adapter", carrier=False),
    Profile(
        "cancelled",
        12,
        MOVING[:2],
        (2, 60),
        (0.5, 2),
        active=False,
        retired_reason="fulfillment or order cancelled",
        after=True,
    ),
)


def profile_table() -> list[tuple[list[Profile], list[float]]]:
    """Per :data:`AGE_STEP` of age: the profiles covering it and their weights per day."""
    table = []
    for step in range(int(HISTORY_DAYS / AGE_STEP) + 1):
        age = (step + 0.5) * AGE_STEP
        found = [p for p in PROFILES if p.age[0] <= age < p.age[1]]
        table.append((found, [p.weight / (p.age[1] - p.age[0]) for p in found]))
    return table


def shop_cycle() -> list[int]:
    """Store index per shipment, by ``i % 10``."""
    return [index for index, (_, weight) in enumerate(SHOPS) for _ in range(weight)]


@dataclass
class Batch:
    shipments: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]


def rows(
    spec: WorldSpec, shop_ids: list[int], first_shipment: int, first_event: int, now: datetime
) -> Iterator[Batch]:
    """Shipments and their events, :data:`COPY_ROWS` shipments a batch.

    Ids are predicted (the tables are empty and their identity sequences restarted): shipment
    ``i`` is ``first_shipment + i``, events are numbered in the order they are made.
    """
    rng = random.Random(spec.seed)
    table = profile_table()
    shops = shop_cycle()
    modules = {code: sandbox_module(code) for code, _ in spec.carriers}
    companies = {code: company_name(code) for code, _ in spec.carriers}
    event_id = first_event
    batch = Batch([], [])
    day = timedelta(days=1)
    for i, code, rank in assignments(spec):
        age = HISTORY_DAYS * (1 - (i + 0.5) / spec.shipments)
        choices, weights = table[int(age / AGE_STEP)]
        profile = rng.choices(choices, weights)[0]
        shipment_id = first_shipment + i
        fulfilled_at = now - age * day
        scan = rng.uniform(*profile.last_scan) * day
        last_scan = min(fulfilled_at + scan, now) if profile.after else now - min(scan, age * day)
        first, last = FIRST_NAMES[i % 20], LAST_NAMES[(i // 20) % 30]
        number = modules[code].sample_number(rank + 1) if profile.tracked else ""
        carrier = code if profile.carrier else None
        events = []
        n = len(profile.path)
        for k, status in enumerate(profile.path):
            happened = fulfilled_at + (last_scan - fulfilled_at) * ((k + 1) / n)
            city, zip_code, country = CITIES[(i + k) % len(CITIES)]
            written = profile.active and k == n - 1 and i % 50 == 0
            events.append(
                (
                    shipment_id,
                    status,
                    happened,
                    f"S{k}",
                    f"{status.replace('_', ' ')} at {city}",
                    city,
                    country,
                    zip_code,
                    f"bench:{k}",
                    happened + timedelta(minutes=20),
                    "pending" if written else "written",
                    None if written else f"gid://shopify/FulfillmentEvent/{event_id}",
                    None if written else happened + timedelta(minutes=21),
                )
            )
            event_id += 1
        eta = None if profile.eta_days is None else now + profile.eta_days * day
        found = profile.carrier_state in ("found", "carrier_error")
        batch.shipments.append(
            (
                shop_ids[shops[i % len(shops)]],
                f"gid://shopify/Order/{5_000_000 + i}",
                f"#{ORDER_BASE + i}",
                f"gid://shopify/Fulfillment/{7_000_000 + i}",
                number,
                companies[code] if profile.carrier else "Bench Local Courier",
                carrier,
                "shopify" if profile.carrier else "unknown",
                f"{first} {last}",
                f"{first.lower()}.{last.lower()}{i % 997}@example.com",
                fulfilled_at,
                profile.path[-1] if n else None,
                last_scan if n else None,
                profile.carrier_state,
                "" if found or profile.carrier_state == "pending" else profile.carrier_state,
                eta,
                eta,
                event_id - 1 if n else None,
                profile.active,
                now + rng.uniform(0.1, 6) * timedelta(hours=1),
                last_scan if found else None,
                profile.retired_reason,
                profile.stopped_reason,
                last_scan if n else None,
                fulfilled_at if profile.carrier_state == "not_found" else None,
                not profile.active and n > 0,
            )
        )
        batch.events.extend(events)
        if len(batch.shipments) == COPY_ROWS:
            yield batch
            batch = Batch([], [])
    if batch.shipments:
        yield batch


async def _secondary_indexes(conn: Any, table: str) -> list[tuple[str, str]]:
    """(name, definition) of the indexes of ``table`` that back no constraint."""
    found = await conn.fetch(
        """
        SELECT i.relname AS name, pg_get_indexdef(i.oid) AS definition
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indrelid = $1::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)
        ORDER BY i.relname
        """,
        table,
    )
    return [(r["name"], r["definition"]) for r in found]


async def seed(database_url: str, shipments: int, seed: int = 7) -> dict[str, Any]:
    """Seed an empty, migrated database; what was made and how long it took."""
    import asyncpg

    from tracker.config import AttentionConfig
    from tracker.engine.attention import refresh_attention

    started = time.perf_counter()
    spec = WorldSpec(shipments, default_mix(), 1, 0.0, database_url, seed)
    conn = await asyncpg.connect(database_url, server_settings={"timezone": "UTC"})
    try:
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM shipments)"):
            raise RuntimeError("the database already has shipments: seed an empty one")
        await conn.execute("SET maintenance_work_mem = '256MB'")
        shop_ids = [
            await conn.fetchval(
                "INSERT INTO shops (domain, api_version) VALUES ($1, $2) RETURNING id",
                domain,
                API_VERSION,
            )
            for domain, _ in SHOPS
        ]
        async with conn.transaction():  # all or nothing: a failure leaves the indexes
            for table in ("shipments", "tracking_events"):
                await conn.execute(f"ALTER TABLE {table} ALTER COLUMN id RESTART WITH 1")
            indexes = [
                *await _secondary_indexes(conn, "shipments"),
                *await _secondary_indexes(conn, "tracking_events"),
            ]
            for name, _ in indexes:
                await conn.execute(f'DROP INDEX "{name}"')
            now = datetime.now(UTC)
            events = 0
            for batch in rows(spec, shop_ids, 1, 1, now):
                await conn.copy_records_to_table(
                    "shipments", records=batch.shipments, columns=SHIPMENT_COLUMNS
                )
                await conn.copy_records_to_table(
                    "tracking_events", records=batch.events, columns=EVENT_COLUMNS
                )
                events += len(batch.events)
            got = await conn.fetchrow(
                "SELECT (SELECT max(id) FROM shipments) AS s,"
                " (SELECT max(id) FROM tracking_events) AS e"
            )
            if got is None or got["s"] != shipments or (got["e"] or 0) != events:
                raise RuntimeError(f"ids are not the predicted ones: {dict(got or {})}")
            copied = time.perf_counter() - started
            for _, definition in indexes:
                await conn.execute(definition)
            indexed = time.perf_counter() - started
            # The daemon's own SQL, on this connection (it only needs ``execute``): no pool's
            # command timeout, which 1,000,000 shipments may pass.
            flagged = await refresh_attention(cast(Any, conn), AttentionConfig())
            flags_seconds = time.perf_counter() - indexed - started
        await conn.execute("VACUUM ANALYZE shipments, tracking_events")
    finally:
        await conn.close()
    return {
        "seeded_shipments": shipments,
        "seeded_events": events,
        "attention_flags": flagged,
        "seed_copy_seconds": round(copied, 1),
        "seed_index_seconds": round(indexed - copied, 1),
        "seed_attention_seconds": round(flags_seconds, 1),
        "seed_seconds": round(time.perf_counter() - started, 1),
    }
