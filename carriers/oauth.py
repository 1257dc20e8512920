"""OAuth2 client-credentials tokens for carriers that need them (UPS, FedEx, USPS).

Each carrier's token endpoint differs in how it wants the credentials (HTTP Basic and a form,
a form with the id and secret, a JSON body); the adapter supplies that as ``fetch_token``. What
is shared: the token is cached until shortly before it expires, fetched by one caller at a
time, and a 401 on an API call throws it away and retries that call once with a fresh one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from carriers.base import CarrierAuthError, CarrierResponseError
from carriers.http import JsonResponse

log = logging.getLogger(__name__)

REFRESH_MARGIN_SECONDS = 120.0
"""A token this close to expiry is replaced before use."""


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_at: float  # time.monotonic()


def read_token(response: JsonResponse, carrier: str) -> tuple[str, float]:
    """``(access_token, lifetime seconds)`` from a token endpoint's answer.

    ``expires_in`` may be a number or a string (UPS sends ``"14399"``); a missing or unreadable
    one counts as 30 minutes. 400/401/403 mean the credentials were refused.
    """
    if response.status in (400, 401, 403):
        detail = response.text[:200].replace("\n", " ")
        raise CarrierAuthError(
            f"{carrier} refused the client credentials (HTTP {response.status}): {detail}"
        )
    if response.status != 200 or not isinstance(response.body, dict):
        raise CarrierResponseError(f"{carrier} token endpoint answered HTTP {response.status}")
    body: Mapping[str, Any] = response.body
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise CarrierResponseError(f"{carrier} token endpoint sent no access_token")
    try:
        lifetime = float(body.get("expires_in", 1800))
    except (TypeError, ValueError):
        lifetime = 1800.0
    return token, max(lifetime, 1.0)


class TokenCache:
    """One carrier account's current token."""

    def __init__(
        self,
        fetch_token: Callable[[], Awaitable[tuple[str, float]]],
        *,
        margin: float = REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch_token
        self._margin = margin
        self._clock = clock
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def get(self) -> str:
        """A token valid for at least ``margin`` more seconds (or half the life of a short one)."""
        async with self._lock:
            token = self._token
            if token is None or self._clock() >= token.expires_at:
                value, lifetime = await self._fetch()
                self.fetches += 1
                margin = min(self._margin, lifetime / 2)
                token = Token(value, self._clock() + lifetime - margin)
                self._token = token
                log.debug("new access token, valid for %.0f s", lifetime)
            return token.value

    def invalidate(self, value: str) -> None:
        """Forget ``value`` (the API refused it); a newer token fetched meanwhile is kept."""
        if self._token is not None and self._token.value == value:
            self._token = None


async def with_token(
    tokens: TokenCache,
    call: Callable[[str], Awaitable[JsonResponse]],
    *,
    carrier: str,
) -> JsonResponse:
    """``call(token)``; on 401, one retry with a fresh token; a second 401 is an auth error."""
    token = await tokens.get()
    response = await call(token)
    if response.status != 401:
        return response
    log.info("%s refused the access token; fetching a new one", carrier)
    tokens.invalidate(token)
    response = await call(await tokens.get())
    if response.status == 401:
        raise CarrierAuthError(f"{carrier} refused a freshly issued access token (HTTP 401)")
    return response
