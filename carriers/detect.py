"""Tracking number -> the carriers it may belong to, best first.

Format rules with check digits come from the ``tracking-numbers`` package (UPS, FedEx, USPS,
DHL Express, S10 postal items, Amazon, OnTrac, ...). Added here where it falls short: PostNord
domestic parcels (GS1 SSCC with a Nordic company prefix) and S10 items of the Nordic posts, DHL
Parcel/eCommerce formats (``JJD...``, ``GM...``, SSCC with a German prefix). Couriers with no
adapter of their own are offered to AfterShip, which tracks the long tail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracking_numbers import DEFINITIONS

_COURIER_TO_ADAPTER = {
    "ups": "ups",
    "fedex": "fedex",
    "usps": "usps",
    "dhl": "dhl",
    "amazon": "aftership",
    "ontrac": "aftership",
    "cdl": "aftership",
}
_NORDIC = {"SE", "DK", "NO", "FI"}
_SSCC = re.compile(r"^(?:00)?(\d{18})$")
_DHL_PARCEL = re.compile(r"^JJD\d{16,22}$|^JV[A-Z]{2}\d{16,20}$")
_DHL_ECOMMERCE = re.compile(r"^GM\d{16,22}$|^[0-9]{4}[A-Z]{2}\d{10,14}$")
# GS1 company prefixes by country (first three digits after the SSCC extension digit).
_GS1_PREFIX = (
    ((730, 739), "postnord"),  # Sweden
    ((570, 579), "postnord"),  # Denmark
    ((700, 709), "postnord"),  # Norway
    ((640, 649), "postnord"),  # Finland
    ((400, 440), "dhl"),  # Germany
)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A carrier ``number`` may belong to; ``checksum_valid`` when its check digit holds."""

    carrier: str
    checksum_valid: bool
    product: str


def detect(number: str) -> list[Candidate]:
    """Candidate carriers for ``number``, checksum-valid ones first; empty when none fits."""
    compact = "".join(number.split()).upper()
    found: list[Candidate] = []
    for definition in DEFINITIONS:
        match = definition.test(compact)
        if match is None:
            continue
        carrier = _carrier_of(match.courier.code, compact)
        if carrier is not None:
            found.append(Candidate(carrier, match.valid, match.product.name))
    found.extend(_own_rules(compact))
    best: dict[str, Candidate] = {}
    for candidate in found:
        kept = best.get(candidate.carrier)
        if kept is None or (candidate.checksum_valid and not kept.checksum_valid):
            best[candidate.carrier] = candidate
    return sorted(best.values(), key=lambda c: (not c.checksum_valid, c.carrier == "aftership"))


def resolve_carrier(given: str | None, number: str) -> tuple[str | None, str]:
    """The carrier to poll and where that came from: ``shopify``, ``detected`` or ``unknown``.

    The merchant's choice stands unless the number carries a valid check digit of another
    carrier and does not fit the given one at all (a wrong carrier picked in the admin).
    """
    candidates = detect(number)
    valid = [c for c in candidates if c.checksum_valid]
    if given is not None:
        if valid and given not in {c.carrier for c in candidates}:
            return valid[0].carrier, "detected"
        return given, "shopify"
    if candidates:
        return candidates[0].carrier, "detected"
    return None, "unknown"


def _carrier_of(courier: str, number: str) -> str | None:
    if courier == "s10":
        country = number[-2:]
        if country in _NORDIC:
            return "postnord"
        if country == "US":
            return "usps"
        return "aftership"
    return _COURIER_TO_ADAPTER.get(courier, "aftership")


def _own_rules(number: str) -> list[Candidate]:
    found = []
    sscc = _SSCC.match(number)
    if sscc:
        digits = sscc.group(1)
        prefix = int(digits[1:4])
        valid = gs1_check_digit(digits[:-1]) == int(digits[-1])
        for (low, high), carrier in _GS1_PREFIX:
            if low <= prefix <= high:
                found.append(Candidate(carrier, valid, "SSCC-18"))
    if _DHL_PARCEL.match(number):
        found.append(Candidate("dhl", False, "DHL Parcel"))
    elif _DHL_ECOMMERCE.match(number):
        found.append(Candidate("dhl", False, "DHL eCommerce"))
    return found


def gs1_check_digit(body: str) -> int:
    """GS1 mod-10: weights 3 and 1 from the right."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10
