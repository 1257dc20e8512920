"""HTTP for adapters: one JSON request with retries, per-process pacing, ``Retry-After``.

:func:`request_json` is how every built-in adapter (and any plugin that wants to) asks its
carrier: it retries what is worth retrying (timeouts, resets, 5xx, 429; never another 4xx),
honours a carrier's ``Retry-After`` through the adapter's :class:`RateLimiter`, and turns a
carrier that cannot be asked into :class:`~carriers.base.CarrierUnavailable`. What to do with
the answer is the adapter's: see the contract in :mod:`carriers.base`.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import aiohttp
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
)

from carriers.base import CarrierResponseError, CarrierUnavailable
from carriers.describe import (
    readable_snippet,
    redact,
    secret_values,
    transport_problem,
    without_query,
)

log = logging.getLogger(__name__)


MAX_RETRY_WAIT = 30.0
"""The longest pause honoured in process, between tries or at the :class:`RateLimiter`. A carrier
asking for a longer one (``Retry-After``) gets no request until then: the call fails at once with
:class:`CarrierUnavailable` and the engine's backoff takes over."""

MAX_RETRY_AFTER = 86_400.0
"""A ``Retry-After`` longer than a day is read as a day."""


class RateLimiter:
    """At most ``rate`` requests per second from this process, spaced evenly.

    Waiters are served in arrival order. ``defer(seconds)`` holds back every request not sent
    yet, those already waiting their turn included, for a carrier's ``Retry-After``. A request
    that would have to wait more than ``max_hold`` seconds for such a pause is not sent:
    :meth:`acquire` raises :class:`CarrierUnavailable` at once, with the time left.
    """

    def __init__(self, rate: float, *, max_hold: float = MAX_RETRY_WAIT) -> None:
        self._interval = 1.0 / rate
        self._next = 0.0
        self._resume_at = 0.0
        self._max_hold = max_hold

    async def acquire(self) -> None:
        slot = self._take_turn()
        while True:
            now = time.monotonic()
            held = self._resume_at - now
            if held > self._max_hold:
                raise CarrierUnavailable(
                    f"the carrier asked for a pause (Retry-After); {held:.0f} s of it left",
                    retry_after=held,
                )
            if slot < self._resume_at:  # a pause began after this request took its turn
                slot = self._take_turn()
            if slot <= now:
                return
            await asyncio.sleep(slot - now)

    def defer(self, seconds: float) -> None:
        """Send nothing more for ``seconds``."""
        if math.isfinite(seconds) and seconds > 0:
            self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    def _take_turn(self) -> float:
        slot = max(time.monotonic(), self._next, self._resume_at)
        self._next = slot + self._interval
        return slot


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    None when there is no usable value; at most :data:`MAX_RETRY_AFTER`.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        current = time.time() if now is None else now
        seconds = moment.timestamp() - current
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


class _Retryable(Exception):
    """Internal: one attempt failed in a way worth another try."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _pause_before_try(attempt: int, failure: _Retryable) -> float:
    """Before try ``attempt`` (2, 3, ...): the carrier's Retry-After, else 0.5 s, 1 s, 2 s, ..."""
    if failure.retry_after is not None:
        return min(failure.retry_after, MAX_RETRY_WAIT)
    return float(min(0.5 * 2 ** (attempt - 2), MAX_RETRY_WAIT))


def _asked_to_wait_long(failure: BaseException | None) -> bool:
    """The carrier asked for a longer pause than we wait in process: no more tries."""
    return (
        isinstance(failure, _Retryable)
        and failure.retry_after is not None
        and failure.retry_after > MAX_RETRY_WAIT
    )


class JsonResponse:
    """A carrier answer that is not a transport failure: any status, body parsed if JSON.

    ``text`` is the body as text, decoded when first asked for (only error messages need it).
    """

    __slots__ = ("_encoding", "_raw", "_text", "body", "headers", "status")

    def __init__(
        self,
        status: int,
        body: Any,
        headers: Mapping[str, str],
        text: str | None = None,
        *,
        raw: bytes = b"",
        encoding: str = "utf-8",
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers
        self._text = text
        self._raw = raw
        self._encoding = encoding

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self._raw.decode(self._encoding, errors="replace")
        return self._text

    def __repr__(self) -> str:
        return f"JsonResponse(status={self.status}, text={self.text[:80]!r})"


async def request_json(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    limiter: RateLimiter,
    timeout: float,
    max_attempts: int,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    json_body: Any = None,
    data: Mapping[str, str] | None = None,
) -> JsonResponse:
    """Send one carrier request with the shared retry policy.

    Timeouts, connection errors, 5xx, 408 and 429 are retried (honouring ``Retry-After``) up to
    ``max_attempts`` tries, then raise :class:`CarrierUnavailable`; so is a 2xx answer whose body
    is neither JSON nor labelled as JSON (an HTML maintenance page or a text notice from
    something in front of the API). A ``Retry-After`` longer than :data:`MAX_RETRY_WAIT` is not
    waited for: :class:`CarrierUnavailable` at once, and the limiter sends nothing until it has
    passed. Every other answer, 4xx included, is returned for the adapter to read: a 404 is
    often the carrier's "not found"; a body labelled JSON that does not parse has ``body`` None.

    Error messages name the request without its query string and without the values of
    credentials (headers, parameters or form fields named like a key, token, secret or
    password), and quote an HTML page by its title.

    The first try is sent straight away; tenacity runs the retries, so the common case (one
    answer, first time) costs no retry machinery.
    """
    request = _Request(session, method, url, timeout, headers, params, json_body, data, limiter)
    try:
        await limiter.acquire()
        return await request.send()
    except _Retryable as first:
        if max_attempts <= 1 or _asked_to_wait_long(first):
            raise CarrierUnavailable(str(first), retry_after=first.retry_after) from first
        failure = first
    log.info("carrier request failed (attempt 1), retrying: %s", failure)
    retrying = AsyncRetrying(
        stop=lambda state: (
            state.attempt_number + 1 >= max_attempts
            or _asked_to_wait_long(state.outcome.exception() if state.outcome else None)
        ),
        wait=lambda state: _pause_before_try(state.attempt_number + 2, _failure_of(state)),
        retry=retry_if_exception_type(_Retryable),
        before_sleep=lambda state: log.info(
            "carrier request failed (attempt %d), retrying: %s",
            state.attempt_number + 1,
            _failure_of(state),
        ),
        reraise=True,
    )
    await asyncio.sleep(_pause_before_try(2, failure))
    try:
        async for attempt in retrying:
            with attempt:
                await limiter.acquire()
                return await request.send()
    except _Retryable as exc:
        raise CarrierUnavailable(str(exc), retry_after=exc.retry_after) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _failure_of(state: RetryCallState) -> _Retryable:
    exc = state.outcome.exception() if state.outcome else None
    assert isinstance(exc, _Retryable)  # retry_if_exception_type(_Retryable)
    return exc


@functools.lru_cache(maxsize=64)
def _client_timeout(total: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total)


@dataclass(frozen=True, slots=True)
class _Request:
    """One carrier request, sent once per try by :func:`request_json`."""

    session: aiohttp.ClientSession
    method: str
    url: str
    timeout: float
    headers: Mapping[str, str] | None
    params: Mapping[str, str] | None
    json_body: Any
    data: Mapping[str, str] | None
    limiter: RateLimiter

    def where(self) -> str:
        """The request for messages: method and URL without its query."""
        return f"{self.method} {without_query(self.url)}"

    def redact(self, message: str) -> str:
        """``message`` without the values of this request's credentials."""
        return redact(message, secret_values(self.headers, self.params, self.data, self.json_body))

    async def send(self) -> JsonResponse:
        try:
            async with self.session.request(
                self.method,
                self.url,
                headers=self.headers,
                params=self.params,
                json=self.json_body,
                data=self.data,
                timeout=_client_timeout(self.timeout),
            ) as response:
                raw = await response.read()
                status = response.status
                response_headers = response.headers
                encoding = response.get_encoding() if raw else "utf-8"
        except TimeoutError as exc:
            raise _Retryable(f"{self.where()}: timed out after {self.timeout:g} s", None) from exc
        except aiohttp.ClientError as exc:
            raise _Retryable(
                f"{self.where()}: {self.redact(transport_problem(exc))}", None
            ) from exc

        if status in (408, 429) or status >= 500:
            retry_after = parse_retry_after(response_headers.get("Retry-After"))
            if retry_after is not None:
                self.limiter.defer(retry_after)
            text = raw.decode(encoding, errors="replace")
            detail = self.redact(readable_snippet(text)) or "no detail"
            raise _Retryable(f"{self.where()}: HTTP {status}: {detail}", retry_after)
        body, readable = _json_or_none(raw, encoding)
        answer = JsonResponse(status, body, response_headers, raw=raw, encoding=encoding)
        if 200 <= status < 300 and not readable and raw.strip():
            content_type = response_headers.get("Content-Type", "").lower()
            if "json" not in content_type:
                detail = self.redact(readable_snippet(answer.text))
                kind = content_type.split(";")[0].strip() or "no content type"
                raise _Retryable(
                    f"{self.where()}: HTTP {status} with {kind}, not JSON: {detail}", None
                )
        return answer


def _json_or_none(raw: bytes, encoding: str = "utf-8") -> tuple[Any, bool]:
    """``(parsed body, True)``, or ``(None, False)`` for a body that is not JSON.

    orjson reads UTF-8 bodies; anything it refuses (another charset, a lone surrogate escape,
    NaN) is read again by the standard library, so a body counts as JSON exactly when
    :func:`json.loads` would take it, and reads the same. orjson would read an integer wider than
    64 bits as a float (a 22-digit tracking number sent as a JSON number would lose digits), so a
    body that may hold one goes to the standard library too.
    """
    if not raw:
        return None, False
    if encoding.lower().replace("_", "-") in _UTF8 and not _may_hold_wide_integer(raw):
        try:
            return orjson.loads(raw), True
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(raw.decode(encoding, errors="replace")), True
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return None, False


_UTF8 = frozenset({"utf-8", "utf8"})
_NUMBER_SHAPES = bytes(
    ord("d") if chr(c).isdigit() and c < 128 else ord("p") if chr(c) in ":[," else ord("x")
    for c in range(256)
)
_WIDE_NUMBER = b"p" + b"d" * 19


def _may_hold_wide_integer(raw: bytes) -> bool:
    """Whether a JSON number of 19 or more digits may start in ``raw``: digits right after
    ``:``, ``[`` or ``,`` (whitespace and signs between ignored). Some strings match too
    ("Ref: 12345..."); those bodies are only read more slowly. A regular expression takes ten
    times as long as orjson takes to read the whole body; this takes less."""
    return _WIDE_NUMBER in (b":" + raw).translate(_NUMBER_SHAPES, b" \t\r\n-")


def require_json_object(response: JsonResponse, what: str) -> dict[str, Any]:
    """The body as a JSON object, or :class:`CarrierResponseError` naming what was expected."""
    if not isinstance(response.body, dict):
        snippet = response.text[:120].replace("\n", " ")
        raise CarrierResponseError(
            f"{what}: expected a JSON object, got HTTP {response.status} {snippet!r}"
        )
    return response.body
