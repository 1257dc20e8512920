"""USPS Tracking API v3: the adapter (I/O only; parsing lives in :mod:`.parse`).

One ``GET {base}/tracking/v3/tracking/{number}?expand=DETAIL`` per number, with an OAuth 2.0
bearer token from ``POST {base}/oauth2/v3/token`` (JSON body ``{client_id, client_secret,
grant_type: client_credentials, scope: tracking}``; the token lasts about 8 hours and is shared
by every request through a :class:`TokenCache`). The numbers of one ``track`` call are asked
concurrently, each request waiting its turn at the adapter's :class:`RateLimiter` (USPS's
default quota is about 60 requests an hour) and retried by :func:`request_json`.

How answers become results:

======================  =====================================================================
200                      :func:`.parse.parse_response`
404 error body           ``NOT_FOUND`` (a new label is unknown to USPS for a while, too)
400                      ``INVALID`` with USPS's message
401                      the token is renewed and the request sent once more; a second 401,
                         or a token endpoint refusing the credentials: :class:`CarrierAuthError`
403                      :class:`CarrierAuthError` (the app lacks the tracking product/scope)
timeouts, 5xx, 429       retried, then :class:`CarrierUnavailable` (the whole call fails)
anything else            ``ERROR`` for that number only
======================  =====================================================================
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar
from urllib.parse import quote

import aiohttp

from carriers.base import CarrierAuthError, CarrierSettings, Outcome, TrackResult
from carriers.concurrent import read_isolated, track_each
from carriers.http import JsonResponse, RateLimiter, request_json
from carriers.oauth import TokenCache, read_token, with_token
from carriers.usps import parse

__all__ = ["DEFAULT_BASE_URL", "TEST_BASE_URL", "UspsAdapter"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://apis.usps.com"
TEST_BASE_URL = "https://apis-tem.usps.com"
PUBLIC_TRACKING_PAGE = "https://tools.usps.com/go/TrackConfirmAction"
TRACKING_PATH = "/tracking/v3/tracking/"
OAUTH_TOKEN_ENDPOINT = "/oauth2/v3/token"  # noqa: S105 - a path, not a secret
TOKEN_REQUESTS_PER_SECOND = 1.0
"""The OAuth API has its own quota; a token is fetched about once in 8 hours anyway."""


class UspsAdapter:
    """USPS's tracking API. Build it as ``UspsAdapter(settings, session)``."""

    code: ClassVar[str] = "usps"
    display_name: ClassVar[str] = "USPS"
    max_batch: ClassVar[int] = 1
    default_requests_per_second: ClassVar[float] = 60 / 3600  # the default hourly quota
    default_requests_per_day: ClassVar[int | None] = 1440

    def __init__(self, settings: CarrierSettings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        self.base_url = (settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._limiter = RateLimiter(
            settings.requests_per_second or self.default_requests_per_second
        )
        self._token_limiter = RateLimiter(TOKEN_REQUESTS_PER_SECOND)
        self.tokens = TokenCache(self._fetch_token)

    async def track(self, numbers: Sequence[str]) -> dict[str, TrackResult]:
        """One result per distinct number; numbers are asked concurrently, one per request.

        Raises :class:`CarrierAuthError` or :class:`CarrierUnavailable` when USPS cannot be
        asked; the other requests of the call are then cancelled.
        """
        if not numbers:
            return {}
        secret = self._settings.client_secret
        if not self._settings.client_id or secret is None or not secret.get_secret_value():
            raise CarrierAuthError("carriers.usps.client_id and client_secret must both be set")
        return await track_each(numbers, self._track_one)

    def public_url(self, number: str) -> str:
        """USPS's public tracking page for ``number``."""
        return f"{PUBLIC_TRACKING_PAGE}?tLabels={quote(''.join(number.split()), safe='')}"

    async def _fetch_token(self) -> tuple[str, float]:
        secret = self._settings.client_secret
        assert secret is not None  # checked in track()
        response = await request_json(
            self._session,
            "POST",
            self.base_url + OAUTH_TOKEN_ENDPOINT,
            limiter=self._token_limiter,
            timeout=self._settings.timeout_seconds,
            max_attempts=self._settings.max_attempts,
            headers={"Accept": "application/json"},
            json_body={
                "client_id": self._settings.client_id,
                "client_secret": secret.get_secret_value(),
                "grant_type": "client_credentials",
                "scope": "tracking",
            },
        )
        return read_token(response, "USPS")

    async def _track_one(self, number: str) -> TrackResult:
        query_number = "".join(number.split())
        if not query_number:
            return TrackResult(number, Outcome.INVALID, message="empty tracking number")
        url = self.base_url + TRACKING_PATH + quote(query_number, safe="")

        async def ask(token: str) -> JsonResponse:
            return await request_json(
                self._session,
                "GET",
                url,
                limiter=self._limiter,
                timeout=self._settings.timeout_seconds,
                max_attempts=self._settings.max_attempts,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                params={"expand": "DETAIL"},
            )

        response = await with_token(self.tokens, ask, carrier="USPS")
        log.debug("USPS answered HTTP %d for %s", response.status, query_number)
        return read_isolated(
            number,
            lambda: self._read(number, response),
            carrier="USPS",
            asked=query_number,
            logger=log,
        )

    @staticmethod
    def _read(number: str, response: JsonResponse) -> TrackResult:
        status = response.status
        if status == 403:
            detail = _error_detail(response)
            raise CarrierAuthError(f"USPS refused access to tracking (HTTP 403): {detail}")
        if status == 200:
            if response.body is None:
                snippet = response.text[:80].replace("\n", " ")
                return TrackResult.error(
                    number, f"USPS answered HTTP 200 with no JSON: {snippet!r}"
                )
            return parse.parse_response(number, response.body)
        result = parse.error_result(number, status, response.body)
        if result is not None:
            return result
        return TrackResult.error(number, f"USPS answered HTTP {status}: {_error_detail(response)}")


def _error_detail(response: JsonResponse) -> str:
    body = response.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = error.get("message")
            if isinstance(message, str) and message.strip():
                return message.strip()
    return response.text[:120].replace("\n", " ") or "no detail"
