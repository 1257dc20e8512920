"""A Shopify Admin GraphQL client that stays inside the store's cost bucket.

Every document it sends is a ``.graphql`` file in ``graphql/`` beside this module, named by its
operation. The client keeps its own estimate of the store's leaky bucket from
``extensions.cost.throttleStatus`` and waits before a request would be throttled. THROTTLED
answers, 429 and (for queries only) 5xx, INTERNAL_SERVER_ERROR and timeouts are retried with
tenacity, bounded and honouring ``Retry-After``. Shopify answers INTERNAL_SERVER_ERROR (HTTP 200,
with or without ``data``) "instead of 500 in most circumstances": like a 5xx, it may or may not
have been applied. A mutation is never retried once it may have reached Shopify:
:class:`ShopifyOutcomeUnknown` tells the caller to find out what happened instead. The bucket
and the retry policy are in :mod:`tracker.shopify.pacing`.

Throttling, a refused token and a closed shop are the store's state, not one request's: a
THROTTLED answer pauses every request of the client (longer each time in a row), and a 401, or a
shop frozen (402), locked (423) or inactive (SHOP_INACTIVE), stops all calls to the store for a
while (2 s, doubling up to 5 min) so it costs one request per pause, not one per job; the first
answer that is not such a refusal lifts it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from importlib import resources
from typing import Any

import aiohttp

from carriers.http import parse_retry_after
from carriers.oauth import TokenCache
from tracker.config import ShopConfig
from tracker.shopify.errors import (
    GraphQLError,
    ShopifyAuthError,
    ShopifyError,
    ShopifyOutcomeUnknown,
    ShopifyShopClosed,
    ShopifyUnavailable,
    error_text,
    has_code,
    shop_closed,
)
from tracker.shopify.pacing import CostBucket, Retry, is_throttled, retry_policy, throttle_wait

__all__ = [
    "GraphQLError",
    "ShopifyAuthError",
    "ShopifyClient",
    "ShopifyError",
    "ShopifyOutcomeUnknown",
    "ShopifyShopClosed",
    "ShopifyUnavailable",
    "load_document",
]

log = logging.getLogger(__name__)

USER_AGENT = "shopify-shipment-tracker/0.1"
DEFAULT_QUERY_COST = 50.0
DEFAULT_MUTATION_COST = 10.0
THROTTLE_FLOOR_SECONDS = 0.5
"""The least wait after a THROTTLED answer, doubled for each one in a row (up to a minute)."""
AUTH_RETRY_FIRST_SECONDS = 2.0
AUTH_RETRY_MAX_SECONDS = 300.0


@functools.cache
def load_document(name: str) -> str:
    """The text of ``graphql/<name>.graphql``."""
    return (resources.files(__package__) / "graphql" / f"{name}.graphql").read_text("utf-8")


class _TokenRefused(Exception):
    """Internal: a granted token got 401; fetch another once."""


class ShopifyClient:
    """One store's Admin GraphQL endpoint."""

    def __init__(
        self,
        shop: ShopConfig,
        session: aiohttp.ClientSession,
        *,
        timeout: float = 30.0,
        max_attempts: int = 6,
    ) -> None:
        self.shop = shop
        self.bucket = CostBucket()
        self._session = session
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._costs: dict[str, float] = {}
        self._lock = asyncio.Lock()
        self._calibrating = asyncio.Lock()
        self.throttled_answers = 0
        self.customer_data = True
        self._throttled_in_a_row = 0
        self._resume_at = 0.0  # monotonic: no request before this (THROTTLED)
        self.auth_refused: str | None = None
        """Why the store refuses our calls (token refused, shop closed), while it does."""
        self._refusal: type[ShopifyAuthError] = ShopifyAuthError
        self.refused_requests = 0
        self._auth_retry_at = 0.0
        self._auth_pause = AUTH_RETRY_FIRST_SECONDS
        self.served_api_version: str | None = None
        """``X-Shopify-API-Version`` of the last answer: differs from the configured version when
        Shopify no longer supports that one and answered with the oldest it does."""
        self._grant: TokenCache | None = None
        if shop.access_token is None:
            self._grant = TokenCache(self._fetch_granted_token)

    async def _access_token(self) -> str:
        if self.shop.access_token is not None:
            return self.shop.access_token.get_secret_value()
        assert self._grant is not None
        return await self._grant.get()

    async def _fetch_granted_token(self) -> tuple[str, float]:
        """The client-credentials grant: ``POST /admin/oauth/access_token``."""
        assert self.shop.client_id is not None
        assert self.shop.client_secret is not None
        form = {
            "grant_type": "client_credentials",
            "client_id": self.shop.client_id,
            "client_secret": self.shop.client_secret.get_secret_value(),
        }
        url = f"{self.shop.admin_url}/admin/oauth/access_token"
        try:
            async with self._session.post(
                url, data=form, timeout=aiohttp.ClientTimeout(total=self._timeout)
            ) as response:
                status, text = response.status, await response.text(errors="replace")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ShopifyUnavailable(f"{self.domain}: token grant failed: {exc}") from None
        if status in (400, 401, 403):
            raise ShopifyAuthError(
                f"{self.domain}: the client-credentials grant was refused (HTTP {status})"
            )
        try:
            body = json.loads(text)
            token = str(body["access_token"])
            lifetime = float(body.get("expires_in", 86399))
        except (ValueError, KeyError, TypeError):
            raise ShopifyUnavailable(f"{self.domain}: unreadable token grant answer") from None
        log.info("%s: obtained an access token (valid %.0f s)", self.domain, lifetime)
        return token, lifetime

    @property
    def domain(self) -> str:
        return self.shop.domain

    async def query(self, name: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run the query document ``name``; retried on throttling, 5xx and timeouts.

        Documents that read customer data declare ``$withCustomer``. A store whose app is not
        approved for protected customer data refuses those fields (ACCESS_DENIED): the client
        then reads without them from that moment on, and says so once in the log.
        """
        variables = dict(variables or {})
        if "$withCustomer" in load_document(name):
            variables["withCustomer"] = self.customer_data
            try:
                return await self._execute(name, variables, mutation=False)
            except GraphQLError as exc:
                if not self.customer_data or not has_code(exc.errors, "ACCESS_DENIED"):
                    raise
                self.without_customer_data()
                variables["withCustomer"] = False
        return await self._execute(name, variables, mutation=False)

    def without_customer_data(self) -> None:
        """Shopify refused customer fields (ACCESS_DENIED): read without them from now on."""
        if self.customer_data:
            self.customer_data = False
            log.warning(
                "%s: the app may not read customer names and e-mails (protected customer "
                "data); tracking continues without them",
                self.domain,
            )

    async def mutate(self, name: str, variables: dict[str, Any]) -> dict[str, Any]:
        """Run the mutation document ``name``; never retried once it may have been applied."""
        return await self._execute(name, variables, mutation=True)

    async def _execute(
        self, name: str, variables: dict[str, Any], *, mutation: bool
    ) -> dict[str, Any]:
        retrying = retry_policy(self.domain, name, self._max_attempts)
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        return await self._send(name, variables, mutation=mutation)
                    except _TokenRefused:
                        # A granted token expired early or was revoked: one fresh grant.
                        return await self._send(name, variables, mutation=mutation, retried=True)
        except Retry as exc:
            raise ShopifyUnavailable(f"{self.domain} {name}: {exc}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _reserve(self, name: str, mutation: bool) -> float:
        """Wait until the bucket has room for this request; return the points reserved."""
        default = DEFAULT_MUTATION_COST if mutation else DEFAULT_QUERY_COST
        cost = min(self._costs.get(name, default), self.bucket.maximum)
        pause = self._resume_at - time.monotonic()
        if pause > 0:  # the store throttled us: every request waits, not only the one refused
            await asyncio.sleep(pause)
        async with self._lock:
            wait = self.bucket.take(cost, time.monotonic())
        if wait > 0:
            log.debug("shopify %s: waiting %.2f s for the cost bucket", self.domain, wait)
            await asyncio.sleep(wait)
        return cost

    async def _send(
        self, name: str, variables: dict[str, Any], *, mutation: bool, retried: bool = False
    ) -> dict[str, Any]:
        if self.auth_refused is not None and time.monotonic() < self._auth_retry_at:
            raise self._refusal(self.auth_refused, paused=True)
        if self.bucket.calibrated:
            return await self._send_reserved(name, variables, mutation=mutation, retried=retried)
        # Until the first answer tells us the store's bucket, send one request at a time.
        async with self._calibrating:
            return await self._send_reserved(name, variables, mutation=mutation, retried=retried)

    async def _send_reserved(
        self, name: str, variables: dict[str, Any], *, mutation: bool, retried: bool
    ) -> dict[str, Any]:
        try:
            token = await self._access_token()
        except ShopifyAuthError as exc:
            raise self._refused(str(exc)) from None
        cost = await self._reserve(name, mutation)
        try:
            status, retry_after, text = await self._post(name, variables, token, mutation=mutation)
        except BaseException:
            self.bucket.settle(cost, None, time.monotonic())
            raise
        if status == 401 and self._grant is not None and not retried:
            self.bucket.settle(cost, None, time.monotonic())
            self._grant.invalidate(token)
            raise _TokenRefused
        return self._read(name, cost, status, retry_after, text, mutation=mutation)

    async def _post(
        self, name: str, variables: dict[str, Any], token: str, *, mutation: bool
    ) -> tuple[int, float | None, str]:
        headers = {
            "X-Shopify-Access-Token": token,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        body = {"query": load_document(name), "variables": variables, "operationName": name}
        try:
            async with self._session.post(
                self.shop.graphql_url,
                json=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                served = response.headers.get("X-Shopify-API-Version")
                if served:
                    self.served_api_version = served
                text = await response.text(errors="replace")
        except aiohttp.ClientConnectorError as exc:
            # Never reached Shopify: safe to retry even a mutation.
            raise Retry(f"cannot connect: {exc}", None) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            what = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            if mutation:
                raise ShopifyOutcomeUnknown(f"{self.domain} {name}: {what}") from None
            raise Retry(what, None) from None
        return status, retry_after, text

    def _read(
        self,
        name: str,
        cost: float,
        status: int,
        retry_after: float | None,
        text: str,
        *,
        mutation: bool,
    ) -> dict[str, Any]:
        try:
            payload: Any = json.loads(text)
        except ValueError:
            payload = None
        extensions = payload.get("extensions") if isinstance(payload, dict) else None
        cost_info = extensions.get("cost") if isinstance(extensions, dict) else None
        if not isinstance(cost_info, dict):
            cost_info = {}
        requested = cost_info.get("requestedQueryCost")
        if isinstance(requested, int | float):
            self._costs[name] = float(requested)
        self.bucket.settle(cost, cost_info.get("throttleStatus"), time.monotonic())

        if status == 401:
            raise self._refused(
                f"{self.domain}: HTTP 401: the access token was refused (revoked, rotated or the"
                " app uninstalled); calls to this store pause and are retried with backoff until"
                " it is valid again"
            )
        if status == 403:
            raise ShopifyAuthError(f"{self.domain}: HTTP 403: the access token lacks a scope")
        errors = payload.get("errors") if isinstance(payload, dict) else None
        closed = shop_closed(status, errors)
        if closed is not None:
            state, why = closed
            raise self._refused(
                f"{self.domain}: {why}; calls to this store pause and are retried with backoff"
                " until it is open again",
                ShopifyShopClosed,
                f"the shop is still {state}",
            )
        if status == 429:
            raise self._throttled("HTTP 429 throttled", retry_after or 1.0)
        if status >= 500 or has_code(errors, "INTERNAL_SERVER_ERROR"):
            # Shopify's stand-in for a 500, even beside data: applied or not, nobody knows.
            what = (
                f"HTTP {status}"
                if status >= 500
                else f"INTERNAL_SERVER_ERROR: {error_text(errors)}"
            )
            if mutation:
                raise ShopifyOutcomeUnknown(f"{self.domain} {name}: {what}")
            raise Retry(what, retry_after)
        if payload is None:
            if mutation:
                raise ShopifyOutcomeUnknown(f"{self.domain} {name}: unreadable answer")
            raise Retry(f"HTTP {status}: not JSON: {text[:100]!r}", None)
        if not isinstance(payload, dict):
            raise GraphQLError(f"{self.domain} {name}: unexpected answer {text[:100]!r}", [])
        if errors:
            if is_throttled(errors):
                self._accepted()
                raise self._throttled("THROTTLED", throttle_wait(cost_info))
            raise GraphQLError(
                f"{self.domain} {name}: {error_text(errors)}",
                errors if isinstance(errors, list) else [errors],
            )
        if status != 200:
            raise GraphQLError(f"{self.domain} {name}: HTTP {status}: {text[:200]}", [])
        data = payload.get("data")
        if not isinstance(data, dict):
            raise GraphQLError(f"{self.domain} {name}: answer without data", [])
        self._throttled_in_a_row = 0
        self._accepted()
        return data

    def _throttled(self, what: str, wait: float) -> Retry:
        """Pause every request of this client: the store's bucket is empty, not one request's.

        Shopify's figures say how long the bucket needs; a THROTTLED answer they do not explain
        (another app draining the bucket between our requests) waits longer each time in a row.
        """
        self.throttled_answers += 1
        self._throttled_in_a_row += 1
        floor = THROTTLE_FLOOR_SECONDS * 2 ** min(self._throttled_in_a_row - 1, 7)
        wait = min(max(wait, floor), 60.0)
        self._resume_at = max(self._resume_at, time.monotonic() + wait)
        return Retry(f"{what}; waiting {wait:.1f} s", wait)

    def _refused(
        self,
        message: str,
        kind: type[ShopifyAuthError] = ShopifyAuthError,
        still: str = "the access token is still refused",
    ) -> ShopifyAuthError:
        """The store refused our token or is closed: stop calling it a while, longer each time."""
        self.refused_requests += 1
        pause = self._auth_pause
        self._auth_retry_at = time.monotonic() + pause
        self._auth_pause = min(pause * 2, AUTH_RETRY_MAX_SECONDS)
        if self.auth_refused != message:
            log.error("%s; next try in %.0f s", message, pause)
        else:
            log.warning("%s: %s; next try in %.0f s", self.domain, still, pause)
        self.auth_refused, self._refusal = message, kind
        return kind(message)

    def _accepted(self) -> None:
        """An answer that is no refusal: the token is good and the shop open (again)."""
        if self.auth_refused is not None:
            closed = self._refusal is ShopifyShopClosed
            again = "the shop is open" if closed else "the access token is accepted"
            log.warning("%s: %s again; calls resume", self.domain, again)
        self.auth_refused, self._refusal = None, ShopifyAuthError
        self._auth_pause = AUTH_RETRY_FIRST_SECONDS
