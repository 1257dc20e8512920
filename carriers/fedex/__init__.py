"""FedEx Track API v1: the adapter (I/O only; parsing lives in :mod:`.parse`).

Up to 30 numbers per ``POST {base}/track/v1/trackingnumbers`` with a bearer token from
``POST {base}/oauth/token`` (client credentials as form fields; the token lasts an hour and is
cached in a :class:`TokenCache`). The batches of one ``track`` call are sent concurrently, each
request waiting its turn at the adapter's :class:`RateLimiter` and retried by
:func:`request_json`.

How answers become results:

=========================  ===================================================================
200                         :func:`.parse.parse_response`: per number the parcel, "not found"
                            (``TRACKING.TRACKINGNUMBER.NOTFOUND``), or an error
200 that is not JSON        each number of the batch asked again on its own; alone, ``ERROR``
400                         the same: alone, ``INVALID`` / ``ERROR`` from FedEx's error code
401                         one retry with a fresh token, then :class:`CarrierAuthError`
403, refused credentials    :class:`CarrierAuthError` (the whole call fails)
timeouts, 5xx, 429          retried, then :class:`CarrierUnavailable` (the whole call fails)
anything else               ``ERROR`` for the numbers of that request
=========================  ===================================================================
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import ClassVar
from urllib.parse import quote

import aiohttp

from carriers.base import CarrierAuthError, CarrierError, CarrierSettings, Outcome, TrackResult
from carriers.concurrent import gather_all
from carriers.fedex import parse
from carriers.http import JsonResponse, RateLimiter, request_json
from carriers.oauth import TokenCache, read_token, with_token

__all__ = ["DEFAULT_BASE_URL", "TEST_BASE_URL", "FedexAdapter"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://apis.fedex.com"
TEST_BASE_URL = "https://apis-sandbox.fedex.com"
OAUTH_PATH = "/oauth/token"
TRACK_PATH = "/track/v1/trackingnumbers"
PUBLIC_TRACKING_PAGE = "https://www.fedex.com/fedextrack/"
LOCALE = "en_US"


class FedexAdapter:
    """FedEx's Track API. Build it as ``FedexAdapter(settings, session)``."""

    code: ClassVar[str] = "fedex"
    display_name: ClassVar[str] = "FedEx"
    max_batch: ClassVar[int] = 30
    default_requests_per_second: ClassVar[float] = 140.0  # 1,400 per 10 s per project
    default_requests_per_day: ClassVar[int | None] = 100_000

    def __init__(self, settings: CarrierSettings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        base = (settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._token_url = base + OAUTH_PATH
        self._track_url = base + TRACK_PATH
        self._limiter = RateLimiter(
            settings.requests_per_second or self.default_requests_per_second
        )
        self._tokens = TokenCache(self._fetch_token)

    async def track(self, numbers: Sequence[str]) -> dict[str, TrackResult]:
        """One result per distinct number, asked ``max_batch`` at a time.

        Raises :class:`CarrierAuthError` or :class:`CarrierUnavailable` when FedEx cannot be
        asked; the other requests of the call are then cancelled.
        """
        unique = list(dict.fromkeys(numbers))
        if not unique:
            return {}
        if not self._settings.client_id or self._settings.client_secret is None:
            raise CarrierAuthError("carriers.fedex.client_id and client_secret must be set")
        results: dict[str, TrackResult] = {}
        asked: dict[str, list[str]] = {}  # number as FedEx gets it -> numbers as given
        for number in unique:
            query = "".join(number.split())
            if query:
                asked.setdefault(query, []).append(number)
            else:
                blank = TrackResult(number, Outcome.INVALID, message="empty tracking number")
                results[number] = blank
        queries = list(asked)
        batches = [queries[i : i + self.max_batch] for i in range(0, len(queries), self.max_batch)]
        for answer in await gather_all(self._track_batch(batch) for batch in batches):
            for query, result in answer.items():
                for number in asked[query]:
                    results[number] = result if number == query else _renamed(result, number)
        return {number: results[number] for number in unique}

    def public_url(self, number: str) -> str:
        """FedEx's public tracking page for ``number``."""
        return f"{PUBLIC_TRACKING_PAGE}?trknbr={quote(''.join(number.split()), safe='')}"

    async def _track_batch(self, batch: list[str]) -> dict[str, TrackResult]:
        """Results for ``batch``; an answer we cannot use is retried number by number."""
        response = await with_token(
            self._tokens, lambda token: self._post_track(batch, token), carrier="FedEx"
        )
        log.debug("FedEx answered HTTP %d for %d numbers", response.status, len(batch))
        if response.status == 403:  # 401 was already retried once by with_token
            raise CarrierAuthError(f"FedEx refused access (HTTP 403): {_detail(response)}")
        usable = response.status == 200 and response.body is not None
        if not usable and response.status in (200, 400) and len(batch) > 1:
            log.info("FedEx could not answer %d numbers together; asking one by one", len(batch))
            singles = await gather_all(self._track_batch([n]) for n in batch)
            return {n: r for single in singles for n, r in single.items()}
        try:
            return self._read(batch, response)
        except CarrierError:
            raise
        except Exception:  # a parser bug must not fail the other batches
            log.exception("could not read FedEx's answer for %d numbers", len(batch))
            message = "could not read FedEx's answer (see the daemon log)"
            return {number: TrackResult.error(number, message) for number in batch}

    @staticmethod
    def _read(batch: list[str], response: JsonResponse) -> dict[str, TrackResult]:
        if response.status == 200:
            if response.body is None:
                snippet = response.text[:80].replace("\n", " ")
                message = f"FedEx answered HTTP 200 with no JSON: {snippet!r}"
                return {number: TrackResult.error(number, message) for number in batch}
            return parse.parse_response(batch, response.body)
        return parse.error_results(batch, response.status, response.body)

    async def _post_track(self, batch: list[str], token: str) -> JsonResponse:
        return await request_json(
            self._session,
            "POST",
            self._track_url,
            limiter=self._limiter,
            timeout=self._settings.timeout_seconds,
            max_attempts=self._settings.max_attempts,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "X-locale": LOCALE,
                "x-customer-transaction-id": str(uuid.uuid4()),
            },
            json_body={
                "includeDetailedScans": True,
                "trackingInfo": [{"trackingNumberInfo": {"trackingNumber": n}} for n in batch],
            },
        )

    async def _fetch_token(self) -> tuple[str, float]:
        secret = self._settings.client_secret
        client_id = self._settings.client_id
        if not client_id or secret is None:  # checked in track(); kept for direct callers
            raise CarrierAuthError("carriers.fedex.client_id and client_secret must be set")
        response = await request_json(
            self._session,
            "POST",
            self._token_url,
            limiter=self._limiter,
            timeout=self._settings.timeout_seconds,
            max_attempts=self._settings.max_attempts,
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret.get_secret_value(),
            },
        )
        return read_token(response, "FedEx")


def _detail(response: JsonResponse) -> str:
    body = response.body
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list):
        for error in errors:
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                return str(error["message"])
    return response.text[:120].replace("\n", " ") or "no detail"


def _renamed(result: TrackResult, number: str) -> TrackResult:
    """``result`` for another spelling of the same number (``"1234 5678"`` for ``"12345678"``)."""
    return TrackResult(
        number,
        result.outcome,
        events=result.events,
        estimated_delivery_at=result.estimated_delivery_at,
        message=result.message,
        raw_status=result.raw_status,
        extra=dict(result.extra),
    )
