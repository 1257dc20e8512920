"""AfterShip Tracking API (version 2024-10): the adapter (I/O only; parsing lives in :mod:`.parse`).

AfterShip tracks a number only once it is registered. For each ``track`` call the adapter

1. reads every number, ``GET {base}/tracking/2024-10/trackings?tracking_numbers=a,b,...``, at
   most 50 numbers per request;
2. registers those the answer does not list, one ``POST {base}/tracking/2024-10/trackings``
   each, body ``{"tracking_number": N}`` (AfterShip detects the courier); "already exists"
   (``meta.code`` 4003) counts as registered;
3. reads the newly registered ones, in the same call.

Reading first keeps what the adapter must know in AfterShip's account, not in the process: a
restarted daemon, or another replica, reads the numbers registered before in batches of 50
instead of registering each again (a create request apiece at 10 a second by default: 2.8
hours of creates for 100,000 numbers), and the process holds nothing per number. A number
polled for the first time costs one list request more per 50 such numbers.

Every request carries the ``as-api-key`` header and is retried by :func:`request_json`.
AfterShip limits each endpoint separately (from 2024-07: 6 list and 20 create requests per
second), so the two endpoints have separate :class:`RateLimiter` s. The engine paces a call's
first list request for every replica together; in a daemon (:meth:`use_shared_pacing`) the
creates, the second read and the halves of an unusable list answer take slots of the same
shared pacing (the creates under an endpoint of their own), so that replicas registering at once
keep AfterShip's limits between them too. Retries of a request are paced by this process alone.

Confirmed from AfterShip's public docs (aftership.com/docs/tracking, versions 2024-07..2026-07,
and the generated tracking SDKs): the base path ``https://api.aftership.com/tracking/2024-10``
(2025-01 migration guide), the ``as-api-key`` header (legacy ``aftership-api-key`` is not
accepted by versioned APIs), the flat create body (versioned SDK README), ``tracking_numbers``
(comma-separated, "Supports up to 50 tracking numbers"), the envelope ``{meta {code, message,
type}, data}`` and its codes (SDK error list), the per-endpoint rate limits (rate-limit page).
Not confirmed: which checkpoint country field 2024-10 sends (``country_iso3`` or
``country_region``; both are read) and the public tracking page URL.

How answers become results:

=========================================  ==================================================
POST 201/200, or 400 with code 4003         registered
POST 4004 / 4012 (courier not recognized)   ``NOT_FOUND`` (registration is tried again later)
POST 4005 / 4007 / 4008 / 4010 / 4011 /     ``INVALID``
4017
GET 200, tracking listed                    :func:`.parse.parse_tracking`
GET 200, tracking not listed                registered and read once more, else
                                            ``NOT_FOUND``
GET 200 unreadable, or 400                  the batch is split in halves and asked again; a
                                            single number left is ``ERROR`` / ``INVALID``
GET other 4xx                               ``ERROR`` for every number of the request
401 / 403                                   :class:`CarrierAuthError` (the whole call fails)
timeouts, 5xx, 429                          retried, then :class:`CarrierUnavailable`
=========================================  ==================================================
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import aiohttp

from carriers.aftership import parse
from carriers.base import CarrierAuthError, CarrierSettings, Outcome, SharedPacing, TrackResult
from carriers.concurrent import gather_all
from carriers.http import JsonResponse, RateLimiter, request_json

__all__ = ["API_PATH", "DEFAULT_BASE_URL", "TEST_BASE_URL", "AftershipAdapter"]

log = logging.getLogger(__name__)

_Item = TypeVar("_Item")
_Answer = TypeVar("_Answer")

DEFAULT_BASE_URL = "https://api.aftership.com"
TEST_BASE_URL = DEFAULT_BASE_URL
"""AfterShip runs no separate test host: test with a test account's key on production."""

API_PATH = "/tracking/2024-10"
PUBLIC_TRACKING_PAGE = "https://www.aftership.com/track/"
CREATE_REQUESTS_PER_SECOND = 10.0
"""Create budget when none is configured: half of AfterShip's 20 per second."""


class AftershipAdapter:
    """AfterShip's multi-carrier Tracking API.

    Build it as ``AftershipAdapter(settings, session)``. It holds nothing per number: AfterShip's
    list says which numbers are registered.
    """

    code: ClassVar[str] = "aftership"
    display_name: ClassVar[str] = "AfterShip"
    max_batch: ClassVar[int] = 50
    default_requests_per_second: ClassVar[float] = 5.0  # AfterShip: 6 list calls per second
    default_requests_per_day: ClassVar[int | None] = None  # no daily quota published

    def __init__(self, settings: CarrierSettings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        self._url = (settings.base_url or DEFAULT_BASE_URL).rstrip("/") + API_PATH + "/trackings"
        rate = settings.requests_per_second
        self._list_rate = rate or self.default_requests_per_second
        self._create_rate = rate or CREATE_REQUESTS_PER_SECOND
        self._list_limiter = RateLimiter(self._list_rate)
        self._create_limiter = RateLimiter(self._create_rate)
        self._pacing: SharedPacing | None = None

    def use_shared_pacing(self, pacing: SharedPacing) -> None:
        """Take a slot of ``pacing`` (shared by every replica) for each create, each second read
        and each half of a list asked again; the daemon calls this once. Without it only this
        process's limiters apply."""
        self._pacing = pacing

    async def track(self, numbers: Sequence[str]) -> dict[str, TrackResult]:
        """One result per distinct number: read in batches of 50, registering what is not listed.

        Raises :class:`CarrierAuthError` or :class:`CarrierUnavailable` when AfterShip cannot
        be asked; the other requests of the call are then cancelled.
        """
        unique = list(dict.fromkeys(numbers))
        results: dict[str, TrackResult] = {}
        queries: dict[str, str] = {}
        for number in unique:
            query = "".join(number.split())
            if not query or "," in query:
                results[number] = TrackResult(
                    number, Outcome.INVALID, message="not a single tracking number"
                )
            else:
                queries[number] = query
        if queries:
            if self._settings.api_key is None:
                raise CarrierAuthError("carriers.aftership.api_key is not set")
            answers = await self._track_queries(list(dict.fromkeys(queries.values())))
            for number, query in queries.items():
                results[number] = dataclasses.replace(answers[query], tracking_number=number)
        return {number: results[number] for number in unique}

    def public_url(self, number: str) -> str:
        """AfterShip's public tracking page for ``number``."""
        return PUBLIC_TRACKING_PAGE + quote("".join(number.split()), safe="")

    async def _track_queries(self, queries: list[str]) -> dict[str, TrackResult]:
        found = await self._read_all(queries)
        unlisted = [q for q in queries if found.get(q) is None]
        refused: dict[str, TrackResult] = {}
        if unlisted:
            log.debug("AfterShip does not list %d numbers; registering them", len(unlisted))
            refused = await self._register_all(unlisted)
            registered = [q for q in unlisted if q not in refused]
            found |= await self._read_all(registered, first=False)
        answers: dict[str, TrackResult] = {}
        for query in queries:
            result = refused.get(query) or found.get(query)
            if result is None:
                result = TrackResult.not_found(query, "AfterShip does not list this tracking yet")
            answers[query] = result
        return answers

    async def _register_all(self, queries: list[str]) -> dict[str, TrackResult]:
        """Register ``queries``; the result of those AfterShip refused (the rest are registered)."""
        outcomes = await self._shared_turns(
            "create", self._create_rate, queries, self._register_one
        )
        return {q: r for q, r in zip(queries, outcomes, strict=True) if r is not None}

    async def _register_one(self, query: str) -> TrackResult | None:
        response = await self._request(
            "POST", self._create_limiter, json_body={"tracking_number": query}
        )
        meta = parse.read_meta(response.body)
        log.debug("AfterShip create %s: HTTP %d, code %s", query, response.status, meta.code)
        if response.status in (200, 201) or meta.code == parse.ALREADY_EXISTS:
            return None
        result = parse.error_result(query, response.status, response.body)
        if result is None:
            return TrackResult.error(
                query, f"AfterShip answered HTTP {response.status} to registering: "
                f"{_snippet(response)}"
            )  # fmt: skip
        return result

    async def _read_all(
        self, queries: list[str], *, first: bool = True
    ) -> dict[str, TrackResult | None]:
        """Read ``queries``, 50 a request. The engine paced the ``first`` read of a call (one
        request: it hands over at most ``max_batch`` numbers); a later one takes shared slots."""
        size = self.max_batch
        chunks = [queries[i : i + size] for i in range(0, len(queries), size)]
        if first:
            parts = await gather_all(self._read_chunk(chunk) for chunk in chunks)
        else:
            parts = await self._shared_turns("", self._list_rate, chunks, self._read_chunk)
        found: dict[str, TrackResult | None] = {}
        for part in parts:
            found |= part
        return found

    async def _shared_turns(
        self,
        endpoint: str,
        rate: float,
        items: Sequence[_Item],
        send: Callable[[_Item], Coroutine[Any, Any, _Answer]],
    ) -> list[_Answer]:
        """``send`` each item, concurrently as far as the shared pacing grants slots (all at
        once without it); the answers in the items' order."""
        answers: list[_Answer] = []
        while len(answers) < len(items):
            rest = items[len(answers) :]
            granted = len(rest)
            if self._pacing is not None:
                granted = await self._pacing.take(endpoint, rate, len(rest))
            answers += await gather_all(send(item) for item in rest[:granted])
        return answers

    async def _read_chunk(self, chunk: list[str]) -> dict[str, TrackResult | None]:
        """One list request; an answer that cannot be read is asked again in halves."""
        response = await self._request(
            "GET", self._list_limiter, params={"tracking_numbers": ",".join(chunk)}
        )
        log.debug("AfterShip list of %d numbers: HTTP %d", len(chunk), response.status)
        if response.status == 200:
            batch = _parse_batch(chunk, response)
            if not isinstance(batch, parse.Unreadable):
                return batch
            problem = batch.reason
        elif response.status == 400:
            problem = f"AfterShip refused the list request (HTTP 400): {_snippet(response)}"
        else:
            message = f"AfterShip answered HTTP {response.status}: {_snippet(response)}"
            return {query: TrackResult.error(query, message) for query in chunk}
        if len(chunk) > 1:
            half = len(chunk) // 2
            log.info("AfterShip list answer unusable (%s); asking again in halves", problem)
            found: dict[str, TrackResult | None] = {}
            for part in (chunk[:half], chunk[half:]):  # one after the other, each a shared slot
                found |= (await self._shared_turns("", self._list_rate, [part], self._read_chunk))[
                    0
                ]
            return found
        single = parse.error_result(chunk[0], response.status, response.body)
        return {chunk[0]: single or TrackResult.error(chunk[0], problem)}

    async def _request(
        self,
        method: str,
        limiter: RateLimiter,
        *,
        params: dict[str, str] | None = None,
        json_body: object = None,
    ) -> JsonResponse:
        api_key = self._settings.api_key
        assert api_key is not None  # checked in track()
        response = await request_json(
            self._session,
            method,
            self._url,
            limiter=limiter,
            timeout=self._settings.timeout_seconds,
            max_attempts=self._settings.max_attempts,
            headers={"as-api-key": api_key.get_secret_value(), "Accept": "application/json"},
            params=params,
            json_body=json_body,
        )
        if response.status in (401, 403):
            raise CarrierAuthError(
                f"AfterShip rejected the API key (HTTP {response.status}): {_snippet(response)}"
            )
        return response


def _parse_batch(chunk: list[str], response: JsonResponse) -> parse.BatchResult:
    if response.body is None:
        snippet = response.text[:80].replace("\n", " ")
        return parse.Unreadable(f"AfterShip answered HTTP 200 with no JSON: {snippet!r}")
    try:
        return parse.parse_batch(chunk, response.body)
    except Exception:  # a parser bug must not fail the other numbers
        log.exception("could not read AfterShip's list answer")
        return parse.Unreadable("could not read AfterShip's answer (see the daemon log)")


def _snippet(response: JsonResponse) -> str:
    meta = parse.read_meta(response.body)
    if meta.message:
        return f"{meta.message} (code {meta.code})" if meta.code is not None else meta.message
    return response.text[:120].replace("\n", " ") or "no detail"
