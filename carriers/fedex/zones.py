"""Where a FedEx scan happened -> its time zone, for times FedEx writes without an offset. Pure.

FedEx gives every scan location a ``countryCode`` and, in the US and Canada, a
``stateOrProvinceCode``. A state or province picks its zone from :data:`US_STATE_ZONES` /
:data:`CA_PROVINCE_ZONES` (states split between two zones take the zone most of their people
live in); any other country is looked up in :data:`COUNTRY_ZONES`, which lists only countries with
a single zone. Anything else has no known zone and the caller reads the time as UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

COUNTRY_ZONES: Mapping[str, str] = {
    "AE": "Asia/Dubai", "AR": "America/Argentina/Buenos_Aires", "AT": "Europe/Vienna",
    "BE": "Europe/Brussels", "BG": "Europe/Sofia", "CH": "Europe/Zurich", "CN": "Asia/Shanghai",
    "CO": "America/Bogota", "CR": "America/Costa_Rica", "CZ": "Europe/Prague",
    "DE": "Europe/Berlin", "DK": "Europe/Copenhagen", "DO": "America/Santo_Domingo",
    "EE": "Europe/Tallinn", "EG": "Africa/Cairo", "ES": "Europe/Madrid", "FI": "Europe/Helsinki",
    "FR": "Europe/Paris", "GB": "Europe/London", "GR": "Europe/Athens", "GT": "America/Guatemala",
    "HK": "Asia/Hong_Kong", "HR": "Europe/Zagreb", "HU": "Europe/Budapest", "IE": "Europe/Dublin",
    "IL": "Asia/Jerusalem", "IN": "Asia/Kolkata", "IT": "Europe/Rome", "JP": "Asia/Tokyo",
    "KR": "Asia/Seoul", "LT": "Europe/Vilnius", "LU": "Europe/Luxembourg", "LV": "Europe/Riga",
    "MY": "Asia/Kuala_Lumpur", "NL": "Europe/Amsterdam", "NO": "Europe/Oslo",
    "NZ": "Pacific/Auckland", "PA": "America/Panama", "PE": "America/Lima",
    "PH": "Asia/Manila", "PL": "Europe/Warsaw", "PR": "America/Puerto_Rico",
    "PT": "Europe/Lisbon", "RO": "Europe/Bucharest", "SA": "Asia/Riyadh", "SE": "Europe/Stockholm",
    "SG": "Asia/Singapore", "SI": "Europe/Ljubljana", "SK": "Europe/Bratislava",
    "TH": "Asia/Bangkok", "TR": "Europe/Istanbul", "TW": "Asia/Taipei", "VN": "Asia/Ho_Chi_Minh",
    "ZA": "Africa/Johannesburg",
}  # fmt: skip
"""ISO country -> IANA zone, for countries with one zone. US, CA, MX, BR, RU, AU, ... are absent."""

US_STATE_ZONES: Mapping[str, str] = {
    "AK": "America/Anchorage", "AL": "America/Chicago", "AR": "America/Chicago",
    "AZ": "America/Phoenix", "CA": "America/Los_Angeles", "CO": "America/Denver",
    "CT": "America/New_York", "DC": "America/New_York", "DE": "America/New_York",
    "FL": "America/New_York", "GA": "America/New_York", "HI": "Pacific/Honolulu",
    "IA": "America/Chicago", "ID": "America/Boise", "IL": "America/Chicago",
    "IN": "America/Indiana/Indianapolis", "KS": "America/Chicago", "KY": "America/New_York",
    "LA": "America/Chicago", "MA": "America/New_York", "MD": "America/New_York",
    "ME": "America/New_York", "MI": "America/Detroit", "MN": "America/Chicago",
    "MO": "America/Chicago", "MS": "America/Chicago", "MT": "America/Denver",
    "NC": "America/New_York", "ND": "America/Chicago", "NE": "America/Chicago",
    "NH": "America/New_York", "NJ": "America/New_York", "NM": "America/Denver",
    "NV": "America/Los_Angeles", "NY": "America/New_York", "OH": "America/New_York",
    "OK": "America/Chicago", "OR": "America/Los_Angeles", "PA": "America/New_York",
    "PR": "America/Puerto_Rico", "RI": "America/New_York", "SC": "America/New_York",
    "SD": "America/Chicago", "TN": "America/Chicago", "TX": "America/Chicago",
    "UT": "America/Denver", "VA": "America/New_York", "VT": "America/New_York",
    "WA": "America/Los_Angeles", "WI": "America/Chicago", "WV": "America/New_York",
    "WY": "America/Denver",
}  # fmt: skip
"""US state -> the zone most of its people live in."""

CA_PROVINCE_ZONES: Mapping[str, str] = {
    "AB": "America/Edmonton", "BC": "America/Vancouver", "MB": "America/Winnipeg",
    "NB": "America/Moncton", "NL": "America/St_Johns", "NS": "America/Halifax",
    "NT": "America/Yellowknife", "NU": "America/Iqaluit", "ON": "America/Toronto",
    "PE": "America/Halifax", "QC": "America/Toronto", "SK": "America/Regina",
    "YT": "America/Whitehorse",
}  # fmt: skip
"""Canadian province or territory -> its (main) zone."""

_BY_STATE: Mapping[str, Mapping[str, str]] = {"US": US_STATE_ZONES, "CA": CA_PROVINCE_ZONES}


def zone_name(country: object, state: object = None) -> str | None:
    """The IANA zone name of a place, when :mod:`zones` knows one."""
    if not isinstance(country, str):
        return None
    country_code = country.strip().upper()
    states = _BY_STATE.get(country_code)
    if states is not None:
        return states.get(state.strip().upper()) if isinstance(state, str) else None
    return COUNTRY_ZONES.get(country_code)


def zone_for(country: object, state: object = None) -> tzinfo | None:
    """The time zone of a place (ISO ``country``, FedEx ``stateOrProvinceCode``), if known."""
    name = zone_name(country, state)
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
