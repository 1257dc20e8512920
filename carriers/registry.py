"""Which adapters exist: the built-in ones plus plugins from the ``tracker.carriers`` group.

A plugin package declares, in its own ``pyproject.toml``::

    [project.entry-points."tracker.carriers"]
    acme = "acme_tracking:AcmeAdapter"

where ``AcmeAdapter(settings, session)`` follows :class:`carriers.base.Adapter`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import cast

import aiohttp

from carriers.aftership import AftershipAdapter
from carriers.base import Adapter, AdapterFactory, CarrierSettings
from carriers.dhl import DhlAdapter
from carriers.fedex import FedexAdapter
from carriers.postnord import PostnordAdapter
from carriers.ups import UpsAdapter
from carriers.usps import UspsAdapter

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "tracker.carriers"

BUILTIN: dict[str, AdapterFactory] = {
    AftershipAdapter.code: cast(AdapterFactory, AftershipAdapter),
    DhlAdapter.code: cast(AdapterFactory, DhlAdapter),
    FedexAdapter.code: cast(AdapterFactory, FedexAdapter),
    PostnordAdapter.code: cast(AdapterFactory, PostnordAdapter),
    UpsAdapter.code: cast(AdapterFactory, UpsAdapter),
    UspsAdapter.code: cast(AdapterFactory, UspsAdapter),
}

# Shopify's tracking company names (and what merchants type) -> adapter code.
_COMPANY_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bdhl\b|deutsche post", re.IGNORECASE), "dhl"),
    (re.compile(r"\bups\b|united parcel", re.IGNORECASE), "ups"),
    (re.compile(r"fed\s*ex", re.IGNORECASE), "fedex"),
    (re.compile(r"\busps\b|united states postal", re.IGNORECASE), "usps"),
    (re.compile(r"post\s*nord", re.IGNORECASE), "postnord"),
    # The long tail goes to AfterShip, which tracks these couriers (and about a thousand more).
    (
        re.compile(
            r"royal mail|\bgls\b|\bdpd\b|colissimo|la poste|chronopost|hermes|\bevri\b|"
            r"canada post|australia post|\bbring\b|\bposti\b|ontrac|lasership|purolator|"
            r"japan post|yamato|correos|poste italiane|parcelforce|\btnt\b|aramex|sf express|"
            r"\bbpost\b|postnl|swiss post|austrian post|canpar|\bosm\b|amazon logistics",
            re.IGNORECASE,
        ),
        "aftership",
    ),
]


def available_factories() -> dict[str, AdapterFactory]:
    """Built-in adapters, then plugins (a plugin may not replace a built-in)."""
    factories = dict(BUILTIN)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in factories:
            log.warning("carrier plugin %s ignored: %s is built in", entry.value, entry.name)
            continue
        try:
            factories[entry.name] = cast(AdapterFactory, entry.load())
        except Exception:
            log.exception("carrier plugin %s (%s) failed to load", entry.name, entry.value)
    return factories


def build_adapters(
    settings: Mapping[str, CarrierSettings], session: aiohttp.ClientSession
) -> dict[str, Adapter]:
    """An adapter for every configured carrier; unknown codes are refused by name."""
    factories = available_factories()
    unknown = sorted(set(settings) - set(factories))
    if unknown:
        raise ValueError(f"no adapter for carriers {', '.join(unknown)}")
    return {code: factories[code](cfg, session) for code, cfg in settings.items()}


def carrier_for_company(company: str | None) -> str | None:
    """The adapter code for a Shopify tracking company name, if one matches."""
    if not company:
        return None
    for pattern, code in _COMPANY_PATTERNS:
        if pattern.search(company):
            return code
    return None
