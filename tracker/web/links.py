"""Carriers' public tracking pages, from each adapter's ``public_url``.

Adapters are built once when the web app starts (every adapter the registry knows, with the
configured settings or the defaults, on an HTTP session they never use here), since a shipment's
carrier may have an adapter that is not enabled for polling.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping

import aiohttp
from aiohttp import web

from carriers.base import CarrierSettings
from carriers.registry import available_factories

log = logging.getLogger(__name__)


class TrackingLinks:
    """``links(carrier, number)``: the carrier's public page, or None (no adapter, or it failed)."""

    def __init__(self) -> None:
        self._pages: dict[str, Callable[[str], str]] = {}

    @property
    def carriers(self) -> list[str]:
        """Every carrier code with an adapter, sorted."""
        return sorted(self._pages)

    def load(self, settings: Mapping[str, CarrierSettings], session: aiohttp.ClientSession) -> None:
        for code, factory in available_factories().items():
            try:
                adapter = factory(settings.get(code) or CarrierSettings(), session)
            except Exception:  # a plugin's problem must not take the status table down
                log.exception("carrier %s: no public tracking links (the adapter failed)", code)
                continue
            self._pages[code] = adapter.public_url

    def __call__(self, carrier: str, number: str) -> str | None:
        page = self._pages.get(carrier)
        if page is None:
            return None
        try:
            return page(number)
        except Exception:
            log.exception("carrier %s: public_url failed", carrier)
            return None


def links_context(
    links: TrackingLinks, settings: Mapping[str, CarrierSettings]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` entry that loads ``links`` for as long as the app runs."""

    async def context(_app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as session:
            links.load(settings, session)
            yield

    return context
