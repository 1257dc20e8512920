"""The demo world: a store of fulfilled orders whose DHL parcels move over (compressed) time.

Deterministic for a seed. Every parcel follows one of a few realistic profiles: straight
delivery, a failed attempt then delivery, collection from a pickup point, a customs stop, a
delay, an exception and return, a label that never moves, and numbers DHL never heard of.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from carriers.sandbox_base import CarrierWorld, Kind, Scan, Timeline
from tracker.sandbox.shopify_store import ShopifyStore

DHL_COMPANIES = ("DHL Express", "DHL Parcel", "DHL eCommerce")

# (city, postal code, ISO country)
HUBS_DE = [
    ("Leipzig", "04109", "DE"),
    ("Hamburg", "20095", "DE"),
    ("Koeln", "50667", "DE"),
    ("Frankfurt am Main", "60311", "DE"),
    ("Hannover", "30159", "DE"),
]
HUBS_EU = [
    ("Amsterdam", "1012", "NL"),
    ("Brussels", "1000", "BE"),
    ("Paris", "75001", "FR"),
    ("Copenhagen", "1050", "DK"),
    ("Stockholm", "11120", "SE"),
    ("Wien", "1010", "AT"),
]
HUBS_US = [("Cincinnati", "41048", "US"), ("New York", "10001", "US"), ("Chicago", "60601", "US")]
DESTINATIONS = [
    ("Berlin", "10115", "DE"),
    ("Muenchen", "80331", "DE"),
    ("Rotterdam", "3011", "NL"),
    ("Lyon", "69001", "FR"),
    ("Malmoe", "21122", "SE"),
    ("Boston", "02108", "US"),
    ("London", "EC1A 1BB", "GB"),
    ("Dublin", "D02 X285", "IE"),
]

PROFILES: list[tuple[str, int]] = [
    ("delivered", 46),
    ("attempt", 9),
    ("pickup_point", 7),
    ("customs", 9),
    ("delayed", 7),
    ("returned", 5),
    ("stuck_label", 4),
    ("unknown_number", 5),
    ("in_transit_long", 8),
]


@dataclass(frozen=True, slots=True)
class DemoParcel:
    number: str
    company: str
    profile: str
    timeline: Timeline | None  # None: DHL has never heard of it


def _number(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return str(rng.randrange(10**9, 10**10))  # DHL Express waybill, 10 digits
    return "JJD" + "".join(rng.choice("0123456789") for _ in range(18))  # DHL Parcel


def _scans(rng: random.Random, profile: str) -> tuple[list[Scan], float | None]:
    origin = rng.choice(HUBS_DE + HUBS_EU[:2])
    dest = rng.choice(DESTINATIONS)
    t = 0.0
    scans = [
        Scan(
            kind=Kind.LABEL, after_hours=t, city=origin[0], postal_code=origin[1], country=origin[2]
        )
    ]
    if profile == "stuck_label":
        return scans, None

    def add(kind: Kind, hours: float, place: tuple[str, str, str], message: str = "") -> None:
        nonlocal t
        t += hours
        scans.append(
            Scan(
                kind=kind,
                after_hours=round(t, 2),
                city=place[0],
                postal_code=place[1],
                country=place[2],
                message=message,
            )
        )

    add(Kind.PICKUP, rng.uniform(2, 8), origin)
    hubs = rng.sample(HUBS_DE + HUBS_EU + (HUBS_US if dest[2] == "US" else []), rng.randint(2, 3))
    for hub in hubs:
        add(Kind.TRANSIT, rng.uniform(6, 16), hub)
    if profile == "customs":
        add(Kind.CUSTOMS, rng.uniform(4, 10), hubs[-1])
        add(Kind.TRANSIT, rng.uniform(8, 20), hubs[-1])
    if profile == "delayed":
        add(Kind.DELAY, rng.uniform(3, 8), hubs[-1], "Weather conditions")
        add(Kind.TRANSIT, rng.uniform(12, 24), dest)
    if profile == "in_transit_long":
        add(Kind.TRANSIT, rng.uniform(60, 120), dest)
    if profile == "returned":
        add(Kind.EXCEPTION, rng.uniform(6, 12), hubs[-1], "Address incomplete")
        add(Kind.RETURNED, rng.uniform(12, 24), origin)
        return scans, None
    eta = t + rng.uniform(10, 30)
    add(Kind.OUT_FOR_DELIVERY, rng.uniform(6, 14), dest)
    if profile == "attempt":
        add(Kind.ATTEMPT, rng.uniform(2, 6), dest)
        add(Kind.OUT_FOR_DELIVERY, rng.uniform(16, 22), dest)
    if profile == "pickup_point":
        add(Kind.ATTEMPT, rng.uniform(2, 6), dest)
        add(Kind.PICKUP_POINT, rng.uniform(1, 3), dest)
        add(Kind.DELIVERED, rng.uniform(10, 40), dest, "Collected by the recipient")
        return scans, eta
    add(Kind.DELIVERED, rng.uniform(1, 5), dest)
    return scans, eta


def make_parcel(rng: random.Random, now: datetime, speed: float) -> DemoParcel:
    profile = rng.choices([p for p, _ in PROFILES], weights=[w for _, w in PROFILES])[0]
    number = _number(rng)
    company = rng.choice(DHL_COMPANIES)
    if profile == "unknown_number":
        return DemoParcel(number, company, profile, None)
    scans, eta = _scans(rng, profile)
    # Parcels are caught at every stage: some shipped days ago, some not yet scanned.
    head_start_hours = rng.uniform(-6, 60)
    start = now - timedelta(seconds=head_start_hours / speed)
    timeline = Timeline(
        tracking_number=number, start=start, scans=scans, eta_hours=eta, hours_per_second=speed
    )
    return DemoParcel(number, company, profile, timeline)


def populate(
    store: ShopifyStore,
    dhl: CarrierWorld,
    *,
    orders: int,
    speed: float,
    seed: int,
    now: datetime,
) -> list[DemoParcel]:
    """Fill ``store`` with ``orders`` orders and register their parcels with ``dhl``."""
    rng = random.Random(seed)
    parcels: list[DemoParcel] = []
    for i in range(orders):
        roll = rng.random()
        if roll < 0.04:  # carrier we cannot track: shown as such, never polled
            store.add_order(
                email=f"customer{i}@example.com",
                fulfillments=[[("Bob's Courier", f"BOB{rng.randrange(10**7)}", None)]],
            )
            continue
        if roll < 0.07:  # fulfilled without a tracking number
            store.add_order(email=f"customer{i}@example.com", fulfillments=[[]])
            continue
        count = 2 if roll > 0.92 else 1  # a few orders ship as two parcels
        shipped = [make_parcel(rng, now, speed) for _ in range(count)]
        parcels.extend(shipped)
        store.add_order(
            email=f"customer{i}@example.com",
            fulfillments=[[(p.company, p.number, None)] for p in shipped],
        )
    dhl.register(p.timeline for p in parcels if p.timeline is not None)
    return parcels


def add_live_order(
    store: ShopifyStore, dhl: CarrierWorld, rng: random.Random, now: datetime, speed: float
) -> DemoParcel:
    """A new order fulfilled right now, for a store that keeps selling during the demo."""
    parcel = make_parcel(rng, now, speed)
    if parcel.timeline is not None:
        parcel = DemoParcel(
            parcel.number,
            parcel.company,
            parcel.profile,
            parcel.timeline.model_copy(update={"start": now}),
        )
        dhl.register([parcel.timeline])  # type: ignore[list-item]
    store.add_order(fulfillments=[[(parcel.company, parcel.number, None)]])
    return parcel
