"""Where a USPS scan happened -> its state and ISO country. Pure tables, no I/O.

USPS writes a scan's ``eventTimestamp`` in the local time of the place it happened. When the
answer carries no ``GMTTimestamp`` and no ``GMTOffset``, the place is all that tells what that
local time means: the scan's ``eventState`` (or, without one, the state its ``eventZIP``
belongs to) for US scans, the ``eventCountry`` for scans abroad.

The zones themselves are :mod:`carriers.timezones`' (a US state or territory by its code,
another country when it has a single zone). States that span two zones are read in the zone
most of their addresses use, so a scan in the other part is an hour off, which is why the parser
prefers USPS's GMT fields whenever they are present. Military addresses (AA, AE, AP) and
countries with several zones have no zone and are read as UTC.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping

from carriers.timezones import US_STATE_ZONES

MILITARY_STATES = frozenset({"AA", "AE", "AP"})
"""Armed Forces "states": no time zone can be told from them."""

TERRITORY_COUNTRIES = frozenset({"PR", "VI", "GU", "AS", "MP", "MH", "PW", "FM"})
"""USPS state codes that are countries of their own in ISO 3166 (the code is the same)."""

_ZIP3_RANGES: tuple[tuple[int, str], ...] = (
    (5, "NY"), (6, "PR"), (8, "VI"), (9, "PR"), (10, "MA"), (28, "RI"), (30, "NH"), (39, "ME"),
    (50, "VT"), (55, "MA"), (56, "VT"), (60, "CT"), (70, "NJ"), (90, "AE"), (100, "NY"),
    (150, "PA"), (197, "DE"), (200, "DC"), (201, "VA"), (202, "DC"), (206, "MD"), (220, "VA"),
    (247, "WV"), (270, "NC"), (290, "SC"), (300, "GA"), (320, "FL"), (340, "AA"), (341, "FL"),
    (350, "AL"), (370, "TN"), (386, "MS"), (398, "GA"), (400, "KY"), (430, "OH"), (460, "IN"),
    (480, "MI"), (500, "IA"), (530, "WI"), (550, "MN"), (569, "DC"), (570, "SD"), (580, "ND"),
    (590, "MT"), (600, "IL"), (630, "MO"), (660, "KS"), (680, "NE"), (700, "LA"), (716, "AR"),
    (730, "OK"), (750, "TX"), (800, "CO"), (820, "WY"), (832, "ID"), (840, "UT"), (850, "AZ"),
    (870, "NM"), (885, "TX"), (889, "NV"), (900, "CA"), (962, "AP"), (967, "HI"), (969, "GU"),
    (970, "OR"), (980, "WA"), (995, "AK"),
)  # fmt: skip
"""First ZIP Code prefix (three digits) of each run of prefixes USPS assigns to one state.

A run lasts until the next entry. Unassigned prefixes inside a run read as that run's state;
prefixes below 005 belong to no state. Prefixes shared with a neighbour read as the larger one:
969 (Guam) also serves the Northern Marianas, Palau, Micronesia and the Marshall Islands, and
967 (Hawaii) American Samoa's 96799.
"""
_ZIP3_STARTS = tuple(start for start, _ in _ZIP3_RANGES)

COUNTRY_NAMES: Mapping[str, str] = {
    "UNITED STATES": "US", "UNITED STATES OF AMERICA": "US", "USA": "US",
    "CANADA": "CA", "MEXICO": "MX", "UNITED KINGDOM": "GB",
    "GREAT BRITAIN": "GB", "UNITED KINGDOM OF GREAT BRITAIN AND NORTHERN IRELAND": "GB",
    "IRELAND": "IE", "GERMANY": "DE", "FRANCE": "FR", "ITALY": "IT", "SPAIN": "ES",
    "PORTUGAL": "PT", "NETHERLANDS": "NL", "BELGIUM": "BE", "SWITZERLAND": "CH",
    "AUSTRIA": "AT", "DENMARK": "DK", "SWEDEN": "SE", "NORWAY": "NO", "FINLAND": "FI",
    "POLAND": "PL", "CZECH REPUBLIC": "CZ", "GREECE": "GR", "ISRAEL": "IL", "JAPAN": "JP",
    "CHINA": "CN", "HONG KONG": "HK", "TAIWAN": "TW", "SOUTH KOREA": "KR",
    "KOREA, REPUBLIC OF (SOUTH KOREA)": "KR", "SINGAPORE": "SG", "INDIA": "IN",
    "PHILIPPINES": "PH", "AUSTRALIA": "AU", "NEW ZEALAND": "NZ", "BRAZIL": "BR",
    "PUERTO RICO": "PR", "GUAM": "GU", "VIRGIN ISLANDS": "VI",
}  # fmt: skip
"""The English country names USPS writes in ``eventCountry`` -> ISO 3166-1 alpha-2."""

_ZIP = re.compile(r"^(\d{5})(?:-?\d{4})?$")


def state_for_zip(zip_code: object) -> str | None:
    """The state a US ZIP Code (``38118``, ``38118-1234``) belongs to, by its first 3 digits."""
    if not isinstance(zip_code, str):
        return None
    match = _ZIP.match(zip_code.strip())
    if match is None:
        return None
    prefix = int(match.group(1)[:3])
    index = bisect_right(_ZIP3_STARTS, prefix) - 1
    return _ZIP3_RANGES[index][1] if index >= 0 else None


def country_code(value: object) -> str | None:
    """ISO alpha-2 from what USPS writes in a country field (``GERMANY``, ``DE``, ``de``)."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split()).upper()
    if len(text) == 2 and text.isalpha():
        return text
    return COUNTRY_NAMES.get(text)


def country_name(code: str) -> str:
    """The name USPS writes for ISO ``code`` abroad (``GERMANY``), or the code itself."""
    upper = code.strip().upper()
    for name, iso in COUNTRY_NAMES.items():
        if iso == upper:
            return name
    return upper


def country_of_state(state: str) -> str | None:
    """ISO country of a USPS state code: ``US``, or the territory's own code (``PR``)."""
    upper = state.strip().upper()
    if upper in TERRITORY_COUNTRIES:
        return upper
    if upper in US_STATE_ZONES or upper in MILITARY_STATES:
        return "US"
    return None
