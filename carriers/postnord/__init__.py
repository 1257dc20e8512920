"""PostNord Track & Trace v7: the adapter (I/O only; parsing lives in :mod:`.parse`).

One ``GET {base}/rest/shipment/v7/trackandtrace/id/{id}/public?apikey=K&locale=en`` per number
(``findByIdentifierPublicRecipientView``). The key travels as a query parameter, so URLs are
only ever logged without their query, and error texts have the key masked. The numbers of one
``track`` call are asked concurrently, each request waiting its turn at the adapter's
:class:`RateLimiter` and retried by :func:`request_json`.

How answers become results:

======================  =====================================================================
200                      :func:`.parse.parse_response` (empty ``shipments``: ``NOT_FOUND``,
                         an ``invalidIdentifier`` fault: ``INVALID``)
400 / 404 with a body    :func:`.parse.fault_result` (identifier faults ``INVALID``, 404
                         ``NOT_FOUND``, the rest ``ERROR``)
401 / 403                :class:`CarrierAuthError` (the whole call fails)
timeouts, 5xx, 429       retried, then :class:`CarrierUnavailable` (the whole call fails)
anything else            ``ERROR`` for that number only
======================  =====================================================================

A number with characters other than letters and digits (after removing spaces) is ``INVALID``
without a request: PostNord accepts only ``A-Z a-z 0-9`` in the identifier.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar
from urllib.parse import quote, urlencode

import aiohttp

from carriers.base import (
    CarrierAuthError,
    CarrierSettings,
    CarrierUnavailable,
    Outcome,
    TrackResult,
)
from carriers.concurrent import read_isolated, track_each
from carriers.http import JsonResponse, RateLimiter, request_json
from carriers.postnord import parse

__all__ = ["DEFAULT_BASE_URL", "TEST_BASE_URL", "PostnordAdapter"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api2.postnord.com"
TEST_BASE_URL = "https://atapi2.postnord.com"
API_PATH = "/rest/shipment/v7/trackandtrace/id/{id}/public"
PUBLIC_TRACKING_PAGE = "https://tracking.postnord.com/en/"
LOCALE = "en"


class PostnordAdapter:
    """PostNord's public Track & Trace API. Build it as ``PostnordAdapter(settings, session)``."""

    code: ClassVar[str] = "postnord"
    display_name: ClassVar[str] = "PostNord"
    max_batch: ClassVar[int] = 1
    default_requests_per_second: ClassVar[float] = 4.0  # not published: stay modest
    default_requests_per_day: ClassVar[int | None] = None  # not published

    def __init__(self, settings: CarrierSettings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        self._base = (settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._limiter = RateLimiter(
            settings.requests_per_second or self.default_requests_per_second
        )

    async def track(self, numbers: Sequence[str]) -> dict[str, TrackResult]:
        """One result per distinct number; numbers are asked concurrently, one per request.

        Raises :class:`CarrierAuthError` or :class:`CarrierUnavailable` when PostNord cannot be
        asked; the other requests of the call are then cancelled.
        """
        if not numbers:
            return {}
        if self._settings.api_key is None or not self._settings.api_key.get_secret_value():
            raise CarrierAuthError("carriers.postnord.api_key is not set")
        return await track_each(numbers, self._track_one)

    def public_url(self, number: str) -> str:
        """PostNord's public tracking page for ``number``."""
        return f"{PUBLIC_TRACKING_PAGE}?{urlencode({'id': ''.join(number.split())})}"

    async def _track_one(self, number: str) -> TrackResult:
        identifier = "".join(number.split())
        if not identifier:
            return TrackResult(number, Outcome.INVALID, message="empty tracking number")
        if not (identifier.isascii() and identifier.isalnum()):
            return TrackResult(
                number, Outcome.INVALID, message="PostNord numbers are letters and digits only"
            )
        api_key = self._settings.api_key
        assert api_key is not None  # checked in track()
        secret = api_key.get_secret_value()
        url = self._base + API_PATH.format(id=quote(identifier, safe=""))
        try:
            response = await request_json(
                self._session,
                "GET",
                url,
                limiter=self._limiter,
                timeout=self._settings.timeout_seconds,
                max_attempts=self._settings.max_attempts,
                headers={"Accept": "application/json"},
                params={"apikey": secret, "locale": LOCALE},
            )
        except CarrierUnavailable as exc:
            raise CarrierUnavailable(_mask(str(exc), secret), retry_after=exc.retry_after) from None
        log.debug("PostNord answered HTTP %d for %s", response.status, identifier)
        return read_isolated(
            number,
            lambda: self._read(number, response),
            carrier="PostNord",
            asked=identifier,
            logger=log,
        )

    @staticmethod
    def _read(number: str, response: JsonResponse) -> TrackResult:
        status = response.status
        if status in (401, 403):
            raise CarrierAuthError(
                f"PostNord rejected the API key (HTTP {status}): {_detail(response)}"
            )
        if status == 200:
            if response.body is None:
                snippet = response.text[:80].replace("\n", " ")
                return TrackResult.error(
                    number, f"PostNord answered HTTP 200 with no JSON: {snippet!r}"
                )
            return parse.parse_response(number, response.body)
        if status in (400, 404):
            result = parse.fault_result(number, response.body, status)
            if result is not None:
                return result
        return TrackResult.error(number, f"PostNord answered HTTP {status}: {_detail(response)}")


def _detail(response: JsonResponse) -> str:
    body = response.body
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str) and message.strip():
            return message.strip()
    return response.text[:120].replace("\n", " ") or "no detail"


def _mask(text: str, secret: str) -> str:
    """``text`` with the API key replaced, should a library have put the whole URL in it."""
    return text.replace(secret, "***") if secret else text
