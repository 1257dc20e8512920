"""The demo world: a store of fulfilled orders whose parcels move over (compressed) time.

Deterministic for a seed. Parcels go with every carrier that has a sandbox, each following one
of a few realistic profiles: straight delivery, a failed attempt then delivery, collection from
a pickup point, a customs stop, a delay, an exception and return, a label that never moves, and
numbers the carrier never heard of.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from carriers.sandbox_base import CarrierWorld, Kind, Scan, Timeline
from tracker.sandbox.shopify_store import ShopifyStore

Place = tuple[str, str, str]  # city, postal code, ISO country

REGIONS: dict[str, tuple[list[Place], list[Place]]] = {
    # carrier: (hubs, destinations)
    "eu": (
        [
            ("Leipzig", "04109", "DE"),
            ("Hamburg", "20095", "DE"),
            ("Koeln", "50667", "DE"),
            ("Amsterdam", "1012", "NL"),
            ("Brussels", "1000", "BE"),
            ("Paris", "75001", "FR"),
        ],
        [
            ("Berlin", "10115", "DE"),
            ("Muenchen", "80331", "DE"),
            ("Rotterdam", "3011", "NL"),
            ("Lyon", "69001", "FR"),
            ("London", "EC1A 1BB", "GB"),
            ("Dublin", "D02 X285", "IE"),
        ],
    ),
    "us": (
        [
            ("Louisville", "40209", "US"),
            ("Memphis", "38118", "US"),
            ("Chicago", "60601", "US"),
            ("Dallas", "75201", "US"),
            ("Jersey City", "07302", "US"),
        ],
        [
            ("Boston", "02108", "US"),
            ("Denver", "80202", "US"),
            ("Seattle", "98101", "US"),
            ("Miami", "33101", "US"),
            ("Austin", "78701", "US"),
        ],
    ),
    "nordic": (
        [
            ("Stockholm", "11120", "SE"),
            ("Goeteborg", "41101", "SE"),
            ("Copenhagen", "1050", "DK"),
            ("Oslo", "0150", "NO"),
        ],
        [
            ("Malmoe", "21122", "SE"),
            ("Uppsala", "75310", "SE"),
            ("Aarhus", "8000", "DK"),
            ("Helsinki", "00100", "FI"),
        ],
    ),
}

# carrier code: (weight, region, company names merchants type)
CARRIER_MIX: dict[str, tuple[int, str, tuple[str, ...]]] = {
    "dhl": (30, "eu", ("DHL Express", "DHL Parcel", "DHL eCommerce")),
    "ups": (18, "us", ("UPS",)),
    "fedex": (15, "us", ("FedEx",)),
    "usps": (15, "us", ("USPS",)),
    "postnord": (12, "nordic", ("PostNord", "PostNord Sverige")),
    "aftership": (10, "eu", ("Royal Mail", "GLS", "DPD", "Colissimo")),
}

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
    carrier: str
    number: str
    company: str
    profile: str
    timeline: Timeline | None  # None: the carrier has never heard of it


@dataclass
class NumberBook:
    """Fresh, well-formed numbers per carrier, from each sandbox's ``sample_number``."""

    samplers: Mapping[str, Callable[[int], str]]
    _counters: dict[str, itertools.count[int]] = field(default_factory=dict)

    def next(self, carrier: str) -> str:
        counter = self._counters.setdefault(carrier, itertools.count(1))
        return self.samplers[carrier](next(counter))


def _scans(rng: random.Random, profile: str, region: str) -> tuple[list[Scan], float | None]:
    hubs, destinations = REGIONS[region]
    origin = rng.choice(hubs)
    dest = rng.choice(destinations)
    t = 0.0
    scans = [
        Scan(
            kind=Kind.LABEL, after_hours=t, city=origin[0], postal_code=origin[1], country=origin[2]
        )
    ]
    if profile == "stuck_label":
        return scans, None

    def add(kind: Kind, hours: float, place: Place, message: str = "") -> None:
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
    route = rng.sample(hubs, min(len(hubs), rng.randint(2, 3)))
    for hub in route:
        add(Kind.TRANSIT, rng.uniform(6, 16), hub)
    if profile == "customs":
        add(Kind.CUSTOMS, rng.uniform(4, 10), route[-1])
        add(Kind.TRANSIT, rng.uniform(8, 20), route[-1])
    if profile == "delayed":
        add(Kind.DELAY, rng.uniform(3, 8), route[-1], "Weather conditions")
        add(Kind.TRANSIT, rng.uniform(12, 24), dest)
    if profile == "in_transit_long":
        add(Kind.TRANSIT, rng.uniform(60, 120), dest)
    if profile == "returned":
        add(Kind.EXCEPTION, rng.uniform(6, 12), route[-1], "Address incomplete")
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


def make_parcel(
    rng: random.Random,
    numbers: NumberBook,
    now: datetime,
    speed: float,
    *,
    head_start: tuple[float, float] = (-6, 60),
) -> DemoParcel:
    carriers = [c for c in CARRIER_MIX if c in numbers.samplers]
    carrier = rng.choices(carriers, weights=[CARRIER_MIX[c][0] for c in carriers])[0]
    _, region, companies = CARRIER_MIX[carrier]
    profile = rng.choices([p for p, _ in PROFILES], weights=[w for _, w in PROFILES])[0]
    number = numbers.next(carrier)
    company = rng.choice(companies)
    if profile == "unknown_number":
        return DemoParcel(carrier, number, company, profile, None)
    scans, eta = _scans(rng, profile, region)
    # Parcels are caught at every stage: some shipped days ago, some not yet scanned.
    start = now - timedelta(seconds=rng.uniform(*head_start) / speed)
    timeline = Timeline(
        tracking_number=number, start=start, scans=scans, eta_hours=eta, hours_per_second=speed
    )
    return DemoParcel(carrier, number, company, profile, timeline)


def _register(worlds: Mapping[str, CarrierWorld], parcels: list[DemoParcel]) -> None:
    for parcel in parcels:
        if parcel.timeline is not None:
            worlds[parcel.carrier].register([parcel.timeline])


def populate(
    store: ShopifyStore,
    worlds: Mapping[str, CarrierWorld],
    numbers: NumberBook,
    *,
    orders: int,
    speed: float,
    seed: int,
    now: datetime,
) -> list[DemoParcel]:
    """Fill ``store`` with ``orders`` orders and register their parcels with the carriers."""
    rng = random.Random(seed)
    parcels: list[DemoParcel] = []
    for i in range(orders):
        email = f"customer{i}@example.com"
        roll = rng.random()
        if roll < 0.03:  # a courier nobody can track: shown as such, never polled
            store.add_order(
                email=email, fulfillments=[[("Bob's Courier", f"BOB{rng.randrange(10**7)}", None)]]
            )
            continue
        if roll < 0.06:  # fulfilled without a tracking number
            store.add_order(email=email, fulfillments=[[]])
            continue
        count = 2 if roll > 0.92 else 1  # a few orders ship as two parcels
        shipped = [make_parcel(rng, numbers, now, speed) for _ in range(count)]
        parcels.extend(shipped)
        store.add_order(email=email, fulfillments=[[(p.company, p.number, None)] for p in shipped])
    _register(worlds, parcels)
    return parcels


def add_live_order(
    store: ShopifyStore,
    worlds: Mapping[str, CarrierWorld],
    numbers: NumberBook,
    rng: random.Random,
    now: datetime,
    speed: float,
) -> DemoParcel:
    """A new order fulfilled right now, for a store that keeps selling during the demo."""
    parcel = make_parcel(rng, numbers, now, speed, head_start=(0, 0))
    _register(worlds, [parcel])
    store.add_order(fulfillments=[[(parcel.company, parcel.number, None)]])
    return parcel
