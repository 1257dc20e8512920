"""UPS Track API v1: the adapter (I/O only; parsing lives in :mod:`.parse`).

One ``GET {base}/api/track/v1/details/{number}?locale=en_US&returnMilestones=false`` per number,
with the headers UPS requires (``transId``, unique per call, and ``transactionSrc``) and an OAuth
bearer token. Tokens come from ``POST {base}/security/v1/oauth/token`` (HTTP Basic client id and
secret, form ``grant_type=client_credentials``), are cached by :class:`carriers.oauth.TokenCache`
and replaced once when UPS answers 401 (:func:`carriers.oauth.with_token`). The numbers of one
``track`` call are asked concurrently, each request waiting its turn at the adapter's
:class:`RateLimiter` and retried by :func:`request_json`.

How answers become results:

=============================  ================================================================
200 with a package             :func:`.parse.parse_response`
200 with warnings only         ``NOT_FOUND`` (or ``INVALID``) with UPS's warning
404 ``response.errors[]``      ``NOT_FOUND`` with UPS's message
400 invalid number code        ``INVALID``
401 twice, 403, token refused  :class:`CarrierAuthError` (the whole call fails)
timeouts, 5xx, 429             retried, then :class:`CarrierUnavailable` (the whole call fails)
anything else                  ``ERROR`` for that number only
=============================  ================================================================
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Sequence
from typing import ClassVar
from urllib.parse import quote, urlencode

import aiohttp

from carriers.base import CarrierAuthError, CarrierSettings, Outcome, TrackResult
from carriers.concurrent import read_isolated, track_each
from carriers.http import JsonResponse, RateLimiter, request_json
from carriers.oauth import TokenCache, read_token, with_token
from carriers.ups import parse
from tracker.text import clean_text

__all__ = ["DEFAULT_BASE_URL", "TEST_BASE_URL", "UpsAdapter"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://onlinetools.ups.com"
TEST_BASE_URL = "https://wwwcie.ups.com"
PUBLIC_TRACKING_PAGE = "https://www.ups.com/track"
TRACK_PATH = "/api/track/v1/details/"
TOKEN_PATH = "/security/v1/oauth/token"  # noqa: S105 (a path, not a secret)
TRANSACTION_SOURCE = "shopify-tracker"


class UpsAdapter:
    """UPS's Track API. Build it as ``UpsAdapter(settings, session)``."""

    code: ClassVar[str] = "ups"
    display_name: ClassVar[str] = "UPS"
    max_batch: ClassVar[int] = 1
    default_requests_per_second: ClassVar[float] = 5.0  # UPS publishes no limit: stay modest
    default_requests_per_day: ClassVar[int | None] = None  # not published

    def __init__(self, settings: CarrierSettings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        self._base = (settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._limiter = RateLimiter(
            settings.requests_per_second or self.default_requests_per_second
        )
        self._tokens = TokenCache(self._fetch_token)

    @property
    def base_url(self) -> str:
        """The API root requests go to: ``base_url`` from the settings, else production."""
        return self._base

    @property
    def tokens(self) -> TokenCache:
        """The adapter's access-token cache (``fetches`` counts tokens fetched)."""
        return self._tokens

    async def track(self, numbers: Sequence[str]) -> dict[str, TrackResult]:
        """One result per distinct number; numbers are asked concurrently, one per request.

        Raises :class:`CarrierAuthError` or :class:`CarrierUnavailable` when UPS cannot be asked;
        the other requests of the call are then cancelled.
        """
        if not numbers:
            return {}
        if not self._settings.client_id or self._settings.client_secret is None:
            raise CarrierAuthError("carriers.ups.client_id and client_secret must both be set")
        return await track_each(numbers, self._track_one)

    def public_url(self, number: str) -> str:
        """UPS's public tracking page for ``number``."""
        query = urlencode({"loc": "en_US", "tracknum": number.strip()})
        return f"{PUBLIC_TRACKING_PAGE}?{query}"

    async def _fetch_token(self) -> tuple[str, float]:
        client_id = self._settings.client_id
        secret = self._settings.client_secret
        if not client_id or secret is None:  # checked in track(); kept for direct callers
            raise CarrierAuthError("carriers.ups.client_id and client_secret must both be set")
        pair = f"{client_id}:{secret.get_secret_value()}".encode()
        basic = "Basic " + base64.b64encode(pair).decode("ascii")
        response = await request_json(
            self._session,
            "POST",
            self._base + TOKEN_PATH,
            limiter=self._limiter,
            timeout=self._settings.timeout_seconds,
            max_attempts=self._settings.max_attempts,
            headers={"Authorization": basic, "Accept": "application/json"},
            data={"grant_type": "client_credentials"},
        )
        return read_token(response, "UPS")

    async def _track_one(self, number: str) -> TrackResult:
        query_number = "".join(number.split()).upper()
        if not query_number:
            return TrackResult(number, Outcome.INVALID, message="empty tracking number")
        url = self._base + TRACK_PATH + quote(query_number, safe="")

        async def call(token: str) -> JsonResponse:
            return await request_json(
                self._session,
                "GET",
                url,
                limiter=self._limiter,
                timeout=self._settings.timeout_seconds,
                max_attempts=self._settings.max_attempts,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/json",
                    "transId": uuid.uuid4().hex,
                    "transactionSrc": TRANSACTION_SOURCE,
                },
                params={"locale": "en_US", "returnMilestones": "false"},
            )

        response = await with_token(self._tokens, call, carrier="UPS")
        log.debug("UPS answered HTTP %d for %s", response.status, query_number)
        return read_isolated(
            number,
            lambda: self._read(number, response),
            carrier="UPS",
            asked=query_number,
            logger=log,
        )

    @staticmethod
    def _read(number: str, response: JsonResponse) -> TrackResult:
        status = response.status
        if status == 403:
            detail = _error_detail(response)
            raise CarrierAuthError(f"UPS refused the account (HTTP 403): {detail}")
        if status == 200:
            if response.body is None:
                snippet = response.text[:80].replace("\n", " ")
                return TrackResult.error(number, f"UPS answered HTTP 200 with no JSON: {snippet!r}")
            return parse.parse_response(number, response.body)
        result = parse.error_result(number, status, response.body)
        return result or TrackResult.error(number, f"UPS answered HTTP {status}")


def _error_detail(response: JsonResponse) -> str:
    entries = parse.error_entries(response.body)
    if entries:
        return clean_text("; ".join(f"{code} {message}".strip() for code, message in entries))
    return response.text[:120].replace("\n", " ") or "no detail"
