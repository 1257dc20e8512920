"""DHL Shipment Tracking - Unified: the adapter (I/O only; parsing lives in :mod:`.parse`).

One ``GET {base}/track/shipments?trackingNumber=N&language=en`` per number, authenticated by the
``DHL-API-Key`` header. The numbers of one ``track`` call are asked concurrently, each request
waiting its turn at the adapter's :class:`RateLimiter` and retried by :func:`request_json`.

How answers become results:

======================  =====================================================================
200 with shipments       :func:`.parse.parse_response`
404 problem+json         ``NOT_FOUND`` with DHL's ``detail``
400 / 422                ``INVALID`` with DHL's ``detail``
401 / 403                :class:`CarrierAuthError` (the whole call fails)
timeouts, 5xx, 429       retried, then :class:`CarrierUnavailable` (the whole call fails)
anything else            ``ERROR`` for that number only
======================  =====================================================================
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar
from urllib.parse import urlencode

import aiohttp

from carriers.base import CarrierAuthError, CarrierSettings, Outcome, TrackResult
from carriers.concurrent import read_isolated, track_each
from carriers.dhl import parse
from carriers.http import JsonResponse, RateLimiter, request_json

__all__ = ["DEFAULT_BASE_URL", "TEST_BASE_URL", "DhlAdapter"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api-eu.dhl.com"
TEST_BASE_URL = "https://api-test.dhl.com"
PUBLIC_TRACKING_PAGE = "https://www.dhl.com/global-en/home/tracking/tracking-parcel.html"


class DhlAdapter:
    """DHL's unified tracking API. Build it as ``DhlAdapter(settings, session)``."""

    code: ClassVar[str] = "dhl"
    display_name: ClassVar[str] = "DHL"
    max_batch: ClassVar[int] = 1
    default_requests_per_second: ClassVar[float] = 1.0  # starter plan
    default_requests_per_day: ClassVar[int | None] = 250

    def __init__(self, settings: CarrierSettings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        self._url = (settings.base_url or DEFAULT_BASE_URL).rstrip("/") + "/track/shipments"
        self._limiter = RateLimiter(
            settings.requests_per_second or self.default_requests_per_second
        )

    async def track(self, numbers: Sequence[str]) -> dict[str, TrackResult]:
        """One result per distinct number; numbers are asked concurrently, one per request.

        Raises :class:`CarrierAuthError` or :class:`CarrierUnavailable` when DHL cannot be asked;
        the other requests of the call are then cancelled.
        """
        if not numbers:
            return {}
        if self._settings.api_key is None:
            raise CarrierAuthError("carriers.dhl.api_key is not set")
        return await track_each(numbers, self._track_one)

    def public_url(self, number: str) -> str:
        """DHL's public tracking page for ``number``."""
        query = urlencode({"submit": "1", "tracking-id": number.strip()})
        return f"{PUBLIC_TRACKING_PAGE}?{query}"

    async def _track_one(self, number: str) -> TrackResult:
        query_number = "".join(number.split())
        if not query_number:
            return TrackResult(number, Outcome.INVALID, message="empty tracking number")
        api_key = self._settings.api_key
        assert api_key is not None  # checked in track()
        response = await request_json(
            self._session,
            "GET",
            self._url,
            limiter=self._limiter,
            timeout=self._settings.timeout_seconds,
            max_attempts=self._settings.max_attempts,
            headers={"DHL-API-Key": api_key.get_secret_value(), "Accept": "application/json"},
            params={"trackingNumber": query_number, "language": "en"},
        )
        log.debug("DHL answered HTTP %d for %s", response.status, query_number)
        return read_isolated(
            number,
            lambda: self._read(number, response),
            carrier="DHL",
            asked=query_number,
            logger=log,
        )

    @staticmethod
    def _read(number: str, response: JsonResponse) -> TrackResult:
        status = response.status
        if status in (401, 403):
            detail = _problem_detail(response)
            raise CarrierAuthError(f"DHL rejected the API key (HTTP {status}): {detail}")
        if status == 200:
            if response.body is None:
                snippet = response.text[:80].replace("\n", " ")
                return TrackResult.error(number, f"DHL answered HTTP 200 with no JSON: {snippet!r}")
            return parse.parse_response(number, response.body)
        result = parse.problem_result(number, status, response.body)
        if result is not None:
            return result
        return TrackResult.error(number, f"DHL answered HTTP {status}: {_problem_detail(response)}")


def _problem_detail(response: JsonResponse) -> str:
    body = response.body
    if isinstance(body, dict):
        for key in ("detail", "title", "message"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return response.text[:120].replace("\n", " ") or "no detail"
